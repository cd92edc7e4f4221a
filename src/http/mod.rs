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
use axum::routing::{MethodRouter, get};

use crate::app::AppState;
use crate::config::{CorsSettings, ServerSettings};
pub use client_ip::ClientIp;
use error::ApiError;

/// The public listener's routes.
pub fn api_router(state: AppState, server: &ServerSettings, cors: &CorsSettings) -> Router {
    let mut routes = layers::mint_routes(&state)
        .route("/openapi.json", get(routes::openapi::openapi_json))
        .route("/livez", get(routes::health::livez))
        .route("/readyz", get(routes::health::readyz));
    if state.dev {
        routes = routes
            .route("/dev/", get(routes::dev::example_page))
            .route("/dev/tokenmint.js", get(routes::dev::client_script));
    }
    layers::common(routes.finish(state.clone()), &state, server, Some(cors))
}

/// The admin listener's routes: probes and metrics, kept off the public ingress.
pub fn admin_router(state: AppState, server: &ServerSettings) -> Router {
    let routes = Routes::default()
        .route("/livez", get(routes::health::livez))
        .route("/readyz", get(routes::health::admin_readyz))
        .route("/metrics", get(routes::health::metrics));
    layers::common(routes.finish(state.clone()), &state, server, None)
}

/// A listener's routes and their paths. The paths are the metrics' route labels: the layers
/// around the whole router ([`layers::common`]) run before axum has matched a route.
#[derive(Default)]
pub(crate) struct Routes {
    router: Router<AppState>,
    paths: Vec<&'static str>,
}

/// A listener's router, ready for [`layers::common`].
pub(crate) struct Routed {
    router: Router,
    paths: Vec<&'static str>,
}

impl Routes {
    pub(crate) fn route(mut self, path: &'static str, method_router: MethodRouter<AppState>) -> Self {
        self.router = self.router.route(path, method_router);
        self.paths.push(path);
        self
    }

    /// 404 and 405 as problem documents, like every other failure.
    pub(crate) fn finish(self, state: AppState) -> Routed {
        let router = self
            .router
            .fallback(|| async { ApiError::NotFound })
            .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
            .with_state(state);
        Routed { router, paths: self.paths }
    }
}
