//! The HTTP edge: application state, the public and admin routers, and the extractors that
//! turn requests into domain types. The only module (with `error`) that knows about axum.

mod extract;
mod layers;
pub mod routes;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::auth::Authenticator;
use crate::config::ServerSettings;
use crate::error::ApiError;
use crate::policy::Policy;
use crate::token::SharedMinter;
pub use routes::health::Health;

/// What every handler can reach. Cheap to clone: every field is shared.
#[derive(Clone)]
pub struct AppState {
    pub authenticator: Arc<Authenticator>,
    pub policy: Arc<Policy>,
    pub minter: Arc<SharedMinter>,
    pub health: Arc<Health>,
    /// Largest accepted body, for the 413 message.
    pub body_limit_bytes: usize,
}

/// The public listener's routes.
pub fn api_router(state: AppState, server: &ServerSettings) -> Router {
    let router = Router::new()
        .route("/v1/tokens", post(routes::tokens::mint_token))
        .route("/openapi.json", get(routes::openapi::openapi_json))
        .merge(probe_routes());
    layers::apply(finish(router, state), server)
}

/// The admin listener's routes: probes here, so the public ingress need not expose them.
pub fn admin_router(state: AppState, server: &ServerSettings) -> Router {
    layers::apply(finish(probe_routes(), state), server)
}

fn probe_routes() -> Router<AppState> {
    Router::new().route("/livez", get(routes::health::livez)).route("/readyz", get(routes::health::readyz))
}

/// 404 and 405 as problem documents, like every other failure.
fn finish(router: Router<AppState>, state: AppState) -> Router {
    router
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state)
}
