//! The tower stack, built and configured here and nowhere else. Read top to bottom: the outer
//! layers first.
//!
//! Every route (and the 404 fallback) gets [`common`]; the token route adds [`token_route`]:
//! the per-IP limit before authentication (so bad credentials cannot burn CPU), then
//! authentication, then the per-identity limit.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONNECTION, CONTENT_TYPE, COOKIE, PROXY_AUTHORIZATION, RETRY_AFTER,
};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{BoxError, Router};
use std::net::SocketAddr;
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use tracing::Span;

use super::AppState;
use super::client_ip::{self, ClientIp};
use crate::auth::{AuthError, bearer_credential};
use crate::config::{CorsSettings, ServerSettings};
use crate::error::ApiError;
use crate::metrics::{Metrics, method_label};
use crate::ratelimit::{RateLimitError, RateLimitFields};

const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The layers every route of a listener gets. `cors` is `None` on the admin listener.
pub fn common(router: Router, state: &AppState, server: &ServerSettings, cors: Option<&CorsSettings>) -> Router {
    let metrics = state.metrics.clone();
    let shed = metrics.clone();
    router.layer(DefaultBodyLimit::max(server.body_limit_bytes)).layer(
        ServiceBuilder::new()
            // Before tracing, so no credential ever reaches a log line.
            .layer(SetSensitiveRequestHeadersLayer::new([AUTHORIZATION, PROXY_AUTHORIZATION, COOKIE]))
            .layer(SetRequestIdLayer::x_request_id(UniqueRequestIds))
            // The span gives debug-level events their request context; the access line itself
            // is written by `track_metrics`.
            .layer(
                TraceLayer::new_for_http().make_span_with(request_span).on_request(()).on_failure(()).on_response(()),
            )
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(middleware::from_fn_with_state(state.clone(), close_while_draining))
            // Outside everything that can refuse a request, so 429s, 503s and preflights count.
            .layer(middleware::from_fn_with_state(metrics, track_metrics))
            .layer(CatchPanicLayer::custom(panic_response))
            .option_layer(cors.map(cors_layer))
            // Tokens must never sit in a cache; nothing else here is worth caching either.
            .layer(SetResponseHeaderLayer::if_not_present(CACHE_CONTROL, HeaderValue::from_static("no-store")))
            .layer(middleware::from_fn_with_state(state.clone(), resolve_client_ip))
            // Overload: refuse at once with 503 instead of queueing. The semaphore is shared by
            // every route (a plain ConcurrencyLimitLayer would get one per route).
            .layer(HandleErrorLayer::new(move |error: BoxError| {
                let shed = shed.clone();
                async move { overload_response(error, &shed) }
            }))
            .load_shed()
            .layer(GlobalConcurrencyLimitLayer::new(server.max_concurrent_requests))
            .timeout(server.request_timeout()),
    )
}

/// The layers of a route that mints: per-IP limit, authentication, per-identity limit.
/// (`route_layer` runs bottom to top: the last added runs first.)
pub fn token_route(router: axum::Router<AppState>, state: &AppState) -> axum::Router<AppState> {
    router
        .route_layer(middleware::from_fn_with_state(state.clone(), limit_per_identity))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .route_layer(middleware::from_fn_with_state(state.clone(), limit_per_ip))
}

fn cors_layer(settings: &CorsSettings) -> CorsLayer {
    let origins = settings.allowed_origins.iter().filter_map(|origin| HeaderValue::from_str(origin).ok());
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([AUTHORIZATION, CONTENT_TYPE])
        .expose_headers([X_REQUEST_ID, RETRY_AFTER, RATELIMIT, RATELIMIT_POLICY])
        .max_age(Duration::from_secs(settings.max_age_secs))
}

/// Request ids from [`crate::ids`]; a client's own `x-request-id` is kept.
#[derive(Clone, Copy)]
struct UniqueRequestIds;

impl MakeRequestId for UniqueRequestIds {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&crate::ids::unique_hex()).ok().map(RequestId::new)
    }
}

/// One span per request, at debug level: at the default `info` a span per request would cost
/// a third of the throughput (bench/load.sh), and the info-level lines name their request
/// themselves. `identity` is filled in once the caller is authenticated.
fn request_span(request: &Request<Body>) -> Span {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str);
    let request_id = request_id(request);
    tracing::debug_span!("request", method = %request.method(), route, request_id, identity = tracing::field::Empty)
}

fn request_id(request: &Request) -> &str {
    request.headers().get(X_REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// Counts and times every request by route template (never the raw path), method and status,
/// and writes the access line: at `info` for a refusal or failure, at `debug` for a success (a
/// minted token already has its audit line at `info`).
async fn track_metrics(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    // MatchedPath is an Arc inside: cloning it is cheaper than copying the route string.
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = method_label(request.method().as_str());
    let id = request.headers().get(X_REQUEST_ID).cloned();
    let response = next.run(request).await;
    let status = response.status();
    let elapsed = started.elapsed();
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let labels = [route, method, status.as_str()];
    metrics.http_requests.with_label_values(&labels).inc();
    metrics.http_duration.with_label_values(&labels).observe(elapsed.as_secs_f64());
    let request_id = id.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("");
    let latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    if status.is_success() || status.is_informational() {
        tracing::debug!(method, route, status = status.as_u16(), latency_us, request_id, "answered");
    } else {
        tracing::info!(method, route, status = status.as_u16(), latency_us, request_id, "answered");
    }
    response
}

/// While draining, every response asks the client to close its connection, so keep-alive clients
/// reconnect through the load balancer (to another replica) instead of reusing this one.
async fn close_while_draining(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    if state.health.is_draining() {
        response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

async fn resolve_client_ip(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    if let Some(peer) = peer {
        let ip = client_ip::resolve(peer, request.headers(), &state.trusted_proxies);
        request.extensions_mut().insert(ClientIp(ip));
    }
    next.run(request).await
}

async fn limit_per_ip(State(state): State<AppState>, request: Request, next: Next) -> Result<Response, ApiError> {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str);
    let Some(ClientIp(ip)) = request.extensions().get::<ClientIp>().copied() else {
        return Ok(next.run(request).await);
    };
    let fields = state.limiter.check_ip(route, ip).await.inspect_err(|e| count_refusal(&state.metrics, e))?;
    Ok(with_rate_limit_fields(next.run(request).await, &fields))
}

/// Verifies the bearer credential and puts the [`crate::auth::Principal`] in the request.
async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Result<Response, ApiError> {
    let header = request.headers().get(AUTHORIZATION).map(|v| v.to_str().map_err(|_| AuthError::Malformed)).transpose();
    let result = match header.and_then(bearer_credential) {
        Ok(credential) => state.authenticator.authenticate(credential).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(principal) => {
            Span::current().record("identity", principal.identity.as_str());
            request.extensions_mut().insert(principal);
            Ok(next.run(request).await)
        }
        Err(e) => {
            state.metrics.auth_failures.with_label_values(&[e.reason()]).inc();
            tracing::info!(reason = e.reason(), request_id = request_id(&request), "authentication failed");
            Err(e.into())
        }
    }
}

async fn limit_per_identity(State(state): State<AppState>, request: Request, next: Next) -> Result<Response, ApiError> {
    let Some(principal) = request.extensions().get::<crate::auth::Principal>() else {
        return Err(ApiError::Internal("the identity limit ran before authentication".into()));
    };
    let key = format!("{}:{}", principal.source, principal.identity);
    let fields =
        state.limiter.check_identity(&key, &principal.roles).await.inspect_err(|e| count_refusal(&state.metrics, e))?;
    Ok(with_rate_limit_fields(next.run(request).await, &fields))
}

fn count_refusal(metrics: &Metrics, error: &RateLimitError) {
    if let RateLimitError::Limited(limited) = error {
        metrics.rate_limited.with_label_values(&[limited.scope.label()]).inc();
    }
}

/// Adds one quota's members to the `RateLimit-Policy` and `RateLimit` list fields.
pub fn with_rate_limit_fields(mut response: Response, fields: &RateLimitFields) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [(RATELIMIT_POLICY, &fields.policy), (RATELIMIT, &fields.state)] {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.append(name, value);
        }
    }
    response
}

/// The panic payload is not logged: it could quote a secret.
fn panic_response(_payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::Internal("a request handler panicked".into()).into_response()
}

fn overload_response(error: BoxError, metrics: &Metrics) -> ApiError {
    if error.is::<tower::load_shed::error::Overloaded>() {
        metrics.requests_shed.inc();
        ApiError::Unavailable("the service is at capacity; retry shortly")
    } else if error.is::<tower::timeout::error::Elapsed>() {
        ApiError::Unavailable("the request took too long; retry")
    } else {
        ApiError::Internal(format!("middleware error: {error}"))
    }
}
