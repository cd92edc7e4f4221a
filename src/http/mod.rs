//! The HTTP edge: the public and admin routers, the tower stack, the accept loop, and the
//! extractors that turn requests into domain types. The only module (with `error`) that knows
//! about axum.

mod client_ip;
pub mod error;
mod extract;
pub(crate) mod layers;
pub mod routes;
pub mod server;

use axum::Router;
use axum::routing::get;

use crate::app::AppState;
use crate::config::{CorsSettings, ServerSettings};
pub use client_ip::ClientIp;
use error::ApiError;

/// The public listener's routes.
pub fn api_router(state: AppState, server: &ServerSettings, cors: &CorsSettings) -> Router {
    let mut router = layers::mint_routes(&state)
        .route("/openapi.json", get(routes::openapi::openapi_json))
        .route("/livez", get(routes::health::livez))
        .route("/readyz", get(routes::health::readyz));
    if state.dev {
        router = router
            .route("/dev/", get(routes::dev::example_page))
            .route("/dev/tokenmint.js", get(routes::dev::client_script));
    }
    layers::common(finish(router, state.clone()), &state, server, Some(cors))
}

/// The admin listener's routes: probes and metrics, kept off the public ingress.
pub fn admin_router(state: AppState, server: &ServerSettings) -> Router {
    let router = Router::new()
        .route("/livez", get(routes::health::livez))
        .route("/readyz", get(routes::health::admin_readyz))
        .route("/metrics", get(routes::health::metrics));
    layers::common(finish(router, state.clone()), &state, server, None)
}

/// 404 and 405 as problem documents, like every other failure.
fn finish(router: Router<AppState>, state: AppState) -> Router {
    router
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state)
}
