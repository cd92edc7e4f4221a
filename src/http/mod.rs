//! The HTTP edge: application state, the public and admin routers, the tower stack, the
//! accept loop, and the extractors that turn requests into domain types. The only module
//! (with `error`) that knows about axum.

mod client_ip;
mod extract;
pub(crate) mod layers;
pub mod routes;
pub mod server;

use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::Router;
use axum::routing::{get, post};

use crate::auth::Authenticator;
use crate::config::{CorsSettings, ServerSettings};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::policy::Policy;
use crate::ratelimit::RateLimiter;
use crate::token::Minters;
pub use client_ip::{ClientIp, ForwardingTrust};
pub use layers::with_rate_limit_fields;
pub use routes::health::Health;

/// What every handler and layer can reach. Middleware clones it on every request, so it is one
/// `Arc`: a clone is one atomic increment, whatever `App` holds.
#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl std::ops::Deref for AppState {
    type Target = App;

    fn deref(&self) -> &App {
        &self.0
    }
}

/// The application's shared parts.
pub struct App {
    /// Authentication and rate limits are swapped whole by a reload too (an unchanged one is
    /// kept as it is, with its caches and counts).
    pub authenticator: ArcSwap<Authenticator>,
    /// The policy and the minters (one per Twilio account) are swapped whole by a reload (`crate::reload`); a request
    /// loads each once, without a lock, and keeps that version to the end.
    pub policy: ArcSwap<Policy>,
    pub minters: ArcSwap<Minters>,
    pub health: Arc<Health>,
    pub limiter: ArcSwap<RateLimiter>,
    pub metrics: Metrics,
    /// Peers whose forwarding header names the client, and which header that is.
    pub forwarding: client_ip::ForwardingTrust,
    /// Largest accepted body, for the 413 message.
    pub body_limit_bytes: usize,
}

/// The public listener's routes.
pub fn api_router(state: AppState, server: &ServerSettings, cors: &CorsSettings) -> Router {
    let tokens = layers::token_route(Router::new().route("/v1/tokens", post(routes::tokens::mint_token)), &state);
    let router = Router::new()
        .merge(tokens)
        .route("/oauth2/token", post(routes::exchange::exchange))
        .route("/openapi.json", get(routes::openapi::openapi_json))
        .route("/livez", get(routes::health::livez))
        .route("/readyz", get(routes::health::readyz));
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
