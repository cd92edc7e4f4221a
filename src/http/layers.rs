//! The tower stack, built and configured here and nowhere else. Read top to bottom: the outer
//! layers first.
//!
//! [`common`] goes around each listener's whole router (the 404 fallback included); the routes
//! that mint come from [`mint_routes`], each behind the per-IP limit (before any credential is
//! looked at, so bad credentials cannot burn CPU); `POST /v1/tokens` then authenticates its
//! bearer credential and spends the principal's quota, while the token exchange does that with
//! the subject token from its body.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::header::Entry;
use axum::http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONNECTION, CONTENT_TYPE, COOKIE, PROXY_AUTHORIZATION, RETRY_AFTER,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::FutureExt;
use std::net::SocketAddr;
use tokio::sync::Semaphore;
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::{Instrument, Span};

use super::client_ip::{self, ClientIp};
use super::error::{ApiError, OAuthError, RATELIMIT, RATELIMIT_POLICY, with_rate_limit_fields};
use super::{Routed, Routes, routes};
use crate::app::AppState;
use crate::auth::{Accepted, AuthError, bearer_credential};
use crate::config::{CorsSettings, ServerSettings};
use crate::issue::IssueError;
use crate::metrics::method_label;

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The layers around a listener's whole router. `cors` is `None` on the admin listener.
///
/// Around the router rather than on each route (`Router::layer`): axum boxes each route layer
/// and clones the boxes with the route on every request, and each `from_fn` middleware clones
/// what is under it again, so per-route layers cost about twenty allocations a request
/// (BENCHMARKS.md). Two layers: [`observe`] does what every request needs (sensitive headers,
/// request id, span, client address, the capacity and time bounds, the panic guard,
/// `Cache-Control`, metrics, the access line), CORS is tower-http's.
pub fn common(routed: Routed, state: &AppState, server: &ServerSettings, cors: Option<&CorsSettings>) -> Router {
    let common = Common {
        state: state.clone(),
        capacity: Arc::new(Semaphore::new(server.max_concurrent_requests)),
        request_timeout: server.request_timeout(),
        paths: routed.paths.into(),
    };
    let stack = ServiceBuilder::new()
        .layer(middleware::from_fn_with_state(common, observe))
        .option_layer(cors.map(cors_layer))
        .layer(DefaultBodyLimit::max(server.body_limit_bytes))
        .service(routed.router);
    Router::new().fallback_service(stack)
}

/// What [`observe`] needs beyond the application: the listener's bounds and paths.
#[derive(Clone)]
struct Common {
    state: AppState,
    /// Requests in progress on the listener, shared by every route (a permit per request).
    capacity: Arc<Semaphore>,
    request_timeout: Duration,
    /// The router's paths (all literal): a request's route label is its path if it is one of
    /// these, else `unmatched`, so the labels stay bounded whatever clients send.
    paths: Arc<[&'static str]>,
}

impl Common {
    fn route_of(&self, request: &Request) -> &'static str {
        let path = request.uri().path();
        self.paths.iter().find(|known| **known == path).copied().unwrap_or("unmatched")
    }
}

/// The routes that mint, each with the same gate. A new mint route is a new envelope here, not
/// a new flow.
pub(super) fn mint_routes(state: &AppState) -> Routes {
    let gate =
        |envelope, credential| middleware::from_fn_with_state((state.clone(), Gate { envelope, credential }), gate);
    Routes::default()
        .route("/v1/tokens", post(routes::tokens::mint_token).route_layer(gate(Envelope::Problem, Credential::Bearer)))
        .route("/oauth2/token", post(routes::exchange::exchange).route_layer(gate(Envelope::OAuth, Credential::InBody)))
}

/// What a mint route's gate does beyond the per-IP limit.
#[derive(Debug, Clone, Copy)]
struct Gate {
    envelope: Envelope,
    credential: Credential,
}

/// Where a mint route's credential is: the `Authorization` header, checked by the gate, or the
/// body (the token exchange's subject token), checked by the handler.
#[derive(Debug, Clone, Copy)]
enum Credential {
    Bearer,
    InBody,
}

/// How a mint route answers a refusal: problem+json, or an RFC 6749 error.
#[derive(Debug, Clone, Copy)]
enum Envelope {
    Problem,
    OAuth,
}

impl Envelope {
    fn refusal(self, error: IssueError) -> Response {
        match self {
            Self::Problem => ApiError::from(error).into_response(),
            Self::OAuth => OAuthError::from(error).into_response(),
        }
    }
}

/// The origins are matched by a predicate over a shared list rather than `AllowOrigin::list`,
/// whose list is copied with the layer on every request.
fn cors_layer(settings: &CorsSettings) -> CorsLayer {
    let origins: Arc<[HeaderValue]> =
        settings.allowed_origins.iter().filter_map(|origin| HeaderValue::from_str(origin).ok()).collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, _| origins.contains(origin)))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([AUTHORIZATION, CONTENT_TYPE])
        .expose_headers([X_REQUEST_ID, RETRY_AFTER, RATELIMIT, RATELIMIT_POLICY])
        .max_age(Duration::from_secs(settings.max_age_secs))
}

/// One span per request, at debug level: at the default `info` a span per request would cost
/// a third of the throughput (bench/load.sh), and the info-level lines name their request
/// themselves. With traces on it is the server span, child of the caller's `traceparent`;
/// `identity` is filled in once the caller is authenticated, the status once answered.
fn request_span(request: &Request<Body>, route: &'static str) -> Span {
    let request_id = request_id(request.headers());
    let method = request.method().as_str();
    let parent = match crate::traces::decide(&TraceHeaders(request.headers())) {
        crate::traces::Decision::Skip => return Span::none(),
        crate::traces::Decision::Off => None,
        crate::traces::Decision::Trace(parent) => Some(parent),
    };
    let span = tracing::debug_span!(
        crate::telemetry::REQUEST_SPAN,
        method,
        route,
        request_id,
        identity = tracing::field::Empty,
        trace_id = tracing::field::Empty,
        otel.name = format!("{method} {route}"),
        otel.kind = "server",
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    if let Some(parent) = parent {
        crate::traces::adopt_parent(&span, parent);
        if let Some(trace_id) = crate::traces::trace_id(&span) {
            span.record("trace_id", trace_id);
        }
    }
    span
}

/// The W3C trace-context headers, for [`crate::traces::decide`].
struct TraceHeaders<'a>(&'a HeaderMap);

impl opentelemetry::propagation::Extractor for TraceHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

/// The request's id, as [`observe`] set it (or the client sent it): the one place it is read.
pub(crate) fn request_id(headers: &HeaderMap) -> &str {
    headers.get(X_REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// Every request, outside everything that can refuse it: marks its credential headers
/// sensitive (before anything could print them, so no credential reaches a log line); gives it
/// an id (a client's own `x-request-id` is kept) and answers with it; runs it in its span;
/// resolves the client IP; bounds it ([`bounded`]); counts and times the answer by route
/// template (never the raw path), method and status, so 429s, 503s and preflights count too;
/// writes the access line (at `info` for a refusal or failure, at `debug` for a success, since a
/// minted token already has its audit line); and while draining asks the client to close its
/// connection, so keep-alive clients reconnect through the load balancer to another replica.
async fn observe(State(common): State<Common>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    mark_sensitive(request.headers_mut());
    let state = &common.state;
    let id = match request.headers().get(X_REQUEST_ID) {
        Some(id) => id.clone(),
        None => {
            let id = HeaderValue::from_str(&crate::ids::unique_hex()).unwrap_or(HeaderValue::from_static("none"));
            request.headers_mut().insert(X_REQUEST_ID, id.clone());
            id
        }
    };
    if let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>().copied() {
        let ip = client_ip::resolve(peer, request.headers(), &state.forwarding);
        request.extensions_mut().insert(ClientIp(ip));
    }
    let route = common.route_of(&request);
    let span = request_span(&request, route);
    let observed = async {
        let mut response = observed(&common, started, route, id.clone(), request, next).await;
        response.headers_mut().entry(X_REQUEST_ID).or_insert(id);
        response
    };
    // Entering a disabled span on every poll is work for nothing.
    if span.is_disabled() { observed.await } else { observed.instrument(span).await }
}

/// [`observe`] within the request's span.
async fn observed(
    common: &Common,
    started: Instant,
    route: &'static str,
    id: HeaderValue,
    request: Request,
    next: Next,
) -> Response {
    let state = &common.state;
    let method = method_label(request.method().as_str());
    let mut response = bounded(common, request, next).await;
    // Tokens must never sit in a cache; nothing else here is worth caching either.
    response.headers_mut().entry(CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    let status = response.status();
    let span = Span::current();
    if !span.is_disabled() {
        span.record("http.response.status_code", i64::from(status.as_u16()));
        if status.is_server_error() {
            span.record("otel.status_code", "ERROR");
        }
    }
    let elapsed = started.elapsed();
    let labels = [route, method, status.as_str()];
    state.metrics.http_requests.with_label_values(&labels).inc();
    state.metrics.http_duration.with_label_values(&labels).observe(elapsed.as_secs_f64());
    let request_id = id.to_str().unwrap_or("");
    let latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    if status.is_success() || status.is_informational() {
        tracing::debug!(method, route, status = status.as_u16(), latency_us, request_id, "answered");
    } else {
        tracing::info!(method, route, status = status.as_u16(), latency_us, request_id, "answered");
    }
    if state.health.is_draining() {
        response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// The gate of a mint route: the per-IP limit, before any credential is looked at (every
/// answer past it carries the client's quota); then, for a bearer route, the credential of the
/// `Authorization` header, verified, and the principal's quota spent ([`AppState::admit`]): the
/// principal goes into the request, and every answer carries its quota. One middleware, because
/// each axum middleware layer clones the rest of the stack per request. (No client address, as
/// in tests calling the router directly: no per-IP limit.)
async fn gate(State((state, gate)): State<(AppState, Gate)>, mut request: Request, next: Next) -> Response {
    let client_quota = match request.extensions().get::<ClientIp>().copied() {
        Some(ClientIp(ip)) => {
            let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str);
            match state.limit_client(route, ip).await {
                Ok(fields) => Some(fields),
                Err(e) => return gate.envelope.refusal(e),
            }
        }
        None => None,
    };
    let principal_quota = match gate.credential {
        Credential::InBody => None,
        Credential::Bearer => {
            let headers = request.headers();
            let credential =
                headers.get(AUTHORIZATION).map(|v| v.to_str().map_err(|_| AuthError::Malformed)).transpose();
            let admitted =
                state.admit(credential.and_then(bearer_credential), Accepted::AnyCredential, request_id(headers)).await;
            match admitted {
                Ok(admitted) => {
                    request.extensions_mut().insert(admitted.principal);
                    Some(admitted.quota)
                }
                Err(e) => return with_rate_limit_fields(gate.envelope.refusal(e), client_quota.as_ref()),
            }
        }
    };
    let response = with_rate_limit_fields(next.run(request).await, principal_quota.as_ref());
    with_rate_limit_fields(response, client_quota.as_ref())
}

/// The headers that carry credentials, marked so that `Debug` never prints them.
fn mark_sensitive(headers: &mut HeaderMap) {
    for name in [AUTHORIZATION, PROXY_AUTHORIZATION, COOKIE] {
        if let Entry::Occupied(mut entry) = headers.entry(name) {
            entry.iter_mut().for_each(|value| value.set_sensitive(true));
        }
    }
}

/// The bounds on one request: beyond `server.max_concurrent_requests` in progress it is
/// refused at once with 503 (counted) instead of queueing; after `server.request_timeout_ms` it
/// is answered 503 and dropped; a panic below becomes a 500 whose payload is not logged (it
/// could quote a secret).
async fn bounded(common: &Common, request: Request, next: Next) -> Response {
    let Ok(_permit) = common.capacity.try_acquire() else {
        common.state.metrics.requests_shed.inc();
        return ApiError::Unavailable("the service is at capacity; retry shortly").into_response();
    };
    let answered = AssertUnwindSafe(next.run(request)).catch_unwind();
    match tokio::time::timeout(common.request_timeout, answered).await {
        Ok(Ok(response)) => response,
        Ok(Err(_panic)) => ApiError::Internal("a request handler panicked".into()).into_response(),
        Err(_elapsed) => ApiError::Unavailable("the request took too long; retry").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    /// The `serve --dev` state (placeholder Twilio credentials), without listeners.
    fn dev_state() -> (AppState, ServerSettings) {
        let mut env = crate::env::EnvVars::default();
        env.set("TOKENMINT_DEV_SESSION_SECRET", "layers-test-session-secret-layers-test-0123");
        let settings = crate::config::Settings::from_toml(None, true, &env).unwrap();
        let runtime = crate::startup::Runtime::assemble(settings, &env, true).unwrap();
        let (state, settings) = runtime.into_state().unwrap();
        (state, settings.server)
    }

    async fn panics() -> &'static str {
        panic!("the secret is hunter2")
    }

    fn get_request(path: &str) -> Request {
        Request::get(path).body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn a_panic_below_is_a_500_that_quotes_nothing_and_gives_its_capacity_back() {
        let (state, mut server) = dev_state();
        server.max_concurrent_requests = 1;
        let routes = Routes::default().route("/panics", get(panics)).route("/fine", get(|| async { "fine" }));
        let app = common(routes.finish(state.clone()), &state, &server, None);

        let response = app.clone().oneshot(get_request("/panics")).await.unwrap();
        assert_eq!(response.status(), 500);
        assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
        assert!(response.headers().contains_key(X_REQUEST_ID));
        let body = axum::body::to_bytes(response.into_body(), 4096).await.unwrap();
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains("internal") && !body.contains("hunter2"), "{body}");

        let response = app.oneshot(get_request("/fine")).await.unwrap();
        assert_eq!(response.status(), 200, "the panicked request's unit of capacity is back");
    }

    #[test]
    fn credential_headers_are_never_printed() {
        let mut headers = HeaderMap::new();
        headers.append(AUTHORIZATION, HeaderValue::from_static("Bearer first-secret"));
        headers.append(AUTHORIZATION, HeaderValue::from_static("Bearer second-secret"));
        headers.insert(PROXY_AUTHORIZATION, HeaderValue::from_static("Basic proxy-secret"));
        headers.insert(COOKIE, HeaderValue::from_static("session=cookie-secret"));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        mark_sensitive(&mut headers);
        let printed = format!("{headers:?}");
        assert!(!printed.contains("secret"), "{printed}");
        assert!(printed.contains("application/json"), "other headers print as they are: {printed}");
    }
}
