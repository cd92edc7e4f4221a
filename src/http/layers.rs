//! The tower stack, built in one place and read top to bottom (outermost first). Rate limiting
//! and metrics slot in here.

use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, MatchedPath};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, COOKIE, PROXY_AUTHORIZATION};
use axum::http::{HeaderValue, Request};
use axum::response::{IntoResponse, Response};
use axum::{BoxError, Router};
use tower::ServiceBuilder;
use tower_http::LatencyUnit;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::{Level, Span};

use crate::config::ServerSettings;
use crate::error::ApiError;

pub fn apply(router: Router, server: &ServerSettings) -> Router {
    router.layer(DefaultBodyLimit::max(server.body_limit_bytes)).layer(
        ServiceBuilder::new()
            // Before tracing, so no credential ever reaches a log line.
            .layer(SetSensitiveRequestHeadersLayer::new([AUTHORIZATION, PROXY_AUTHORIZATION, COOKIE]))
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(request_span)
                    .on_request(())
                    .on_failure(())
                    .on_response(DefaultOnResponse::new().level(Level::INFO).latency_unit(LatencyUnit::Micros)),
            )
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(CatchPanicLayer::custom(panic_response))
            // Tokens must never sit in a cache; nothing else here is worth caching either.
            .layer(SetResponseHeaderLayer::if_not_present(CACHE_CONTROL, HeaderValue::from_static("no-store")))
            .layer(HandleErrorLayer::new(timeout_response))
            .timeout(server.request_timeout()),
    )
}

/// One span per request; `identity` is filled in once the caller is authenticated.
fn request_span(request: &Request<Body>) -> Span {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str);
    let request_id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
    tracing::info_span!(
        "request",
        method = %request.method(),
        route,
        request_id,
        identity = tracing::field::Empty,
    )
}

/// The panic payload is not logged: it could quote a secret.
fn panic_response(_payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::Internal("a request handler panicked".into()).into_response()
}

async fn timeout_response(error: BoxError) -> ApiError {
    if error.is::<tower::timeout::error::Elapsed>() {
        ApiError::Unavailable("the request took too long; retry")
    } else {
        ApiError::Internal(format!("middleware error: {error}"))
    }
}
