//! Prometheus metrics: the registry (owned by the app, so parallel tests never share counters)
//! and every series tokenmint exports. Served on the admin listener only.
//!
//! Labels are bounded by construction: routes are templates (`/v1/tokens`, or `unmatched`),
//! methods a fixed set plus `other`, statuses the few the API returns, grants and reasons fixed
//! enumerations. Nothing derived from a raw path, an identity or a header becomes a label.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Latency buckets in seconds: the token path runs in tens of microseconds when warm, so the
/// buckets start at 100 µs; the top ones catch time spent queued behind a slow peer.
const LATENCY_BUCKETS_SECONDS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Every series, registered in one app-owned registry. Cloned per request by the metrics
/// layer, so it is one `Arc` (each prometheus vector inside is an `Arc` of its own).
#[derive(Clone, Default)]
pub struct Metrics(std::sync::Arc<Series>);

impl std::ops::Deref for Metrics {
    type Target = Series;

    fn deref(&self) -> &Series {
        &self.0
    }
}

/// The series themselves.
pub struct Series {
    registry: Registry,
    /// `tokenmint_http_requests_total{route, method, status}`
    pub http_requests: IntCounterVec,
    /// `tokenmint_http_request_duration_seconds{route, method, status}`
    pub http_duration: HistogramVec,
    /// `tokenmint_tokens_issued_total{grant}`: one increment per grant in each minted token.
    pub tokens_issued: IntCounterVec,
    /// `tokenmint_auth_failures_total{reason}`
    pub auth_failures: IntCounterVec,
    /// `tokenmint_rate_limited_total{scope}`: `ip` (before authentication) or `identity`.
    pub rate_limited: IntCounterVec,
    /// `tokenmint_requests_shed_total`: refused at once because the concurrency limit was reached.
    pub requests_shed: IntCounter,
    /// `tokenmint_denied_total{list}`: refused by the deny list, `identity` or `subject`.
    pub denied: IntCounterVec,
    /// `tokenmint_reloads_total{trigger,result}`: the configuration re-read on `sighup` or
    /// `file_change`; `success`, `partial` (applied, but some changes need a restart), or
    /// `failure` (the running configuration, or an account's previous key, kept).
    pub reloads: IntCounterVec,
    /// `tokenmint_reloader_running`: 1 while the reloader watches for SIGHUP and file changes.
    pub reloader_running: IntGauge,
    /// `tokenmint_reloader_restarts_total`: the reloader's loop died and was started again.
    pub reloader_restarts: IntCounter,
    /// `tokenmint_token_mint_duration_seconds`: building and signing alone.
    pub mint_duration: Histogram,
    /// `tokenmint_log_lines_dropped_total`: lines stdout did not take in time (`telemetry`).
    log_lines_dropped: IntCounter,
    /// `tokenmint_panics_total`: panics caught anywhere in the process (`panics`).
    panics: IntCounter,
    /// `tokenmint_open_connections`: both listeners together.
    pub open_connections: IntGauge,
    /// `tokenmint_connections_refused_total{limit}`: answered 503 and closed at
    /// `server.max_connections` (`listener`) or `server.max_connections_per_ip` (`per_ip`).
    pub connections_refused: IntCounterVec,
    /// `tokenmint_audit_records_total{outcome}`: `written` to the sink, `failed` (the sink
    /// refused the write), `refused` (the request got 503: the sink was stalled) or `dropped`
    /// (`best_effort` only).
    pub audit_records: IntCounterVec,
    /// `tokenmint_trace_spans_total{outcome}`: spans the OTLP collector took (`exported`) or
    /// did not (`failed`), with `[trace]` on (`traces`).
    trace_spans: IntCounterVec,
}

/// Raises `counter` to `total`, a count kept outside the registry (by the log writer, the trace
/// exporter, the panic hook), when the series are rendered.
fn catch_up(counter: &IntCounter, total: u64) {
    counter.inc_by(total.saturating_sub(counter.get()));
}

impl Metrics {
    pub fn new() -> Self {
        Self(std::sync::Arc::new(Series::new()))
    }
}

impl Default for Series {
    fn default() -> Self {
        Self::new()
    }
}

/// `metric`, registered in `registry`.
fn registered<M: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: prometheus::Result<M>,
) -> M {
    let metric = metric.expect("valid metric");
    registry.register(Box::new(metric.clone())).expect("registered once");
    metric
}

impl Series {
    fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            registered(&registry, IntCounterVec::new(Opts::new(name, help), labels))
        };
        let http_requests = counter(
            "tokenmint_http_requests_total",
            "HTTP requests by route template, method and status.",
            &["route", "method", "status"],
        );
        let tokens_issued = counter("tokenmint_tokens_issued_total", "Grants in minted tokens, by grant.", &["grant"]);
        let auth_failures = counter("tokenmint_auth_failures_total", "Refused credentials, by reason.", &["reason"]);
        let rate_limited =
            counter("tokenmint_rate_limited_total", "Requests refused with 429, by limit scope.", &["scope"]);
        let denied = counter("tokenmint_denied_total", "Requests refused by the deny list, by list.", &["list"]);
        let reloads = counter(
            "tokenmint_reloads_total",
            "Reloads of the credentials and policy, by trigger and result.",
            &["trigger", "result"],
        );
        let http_duration = registered(
            &registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "tokenmint_http_request_duration_seconds",
                    "HTTP request latency by route template, method and status.",
                )
                .buckets(LATENCY_BUCKETS_SECONDS.to_vec()),
                &["route", "method", "status"],
            ),
        );
        let mint_duration = registered(
            &registry,
            Histogram::with_opts(
                HistogramOpts::new("tokenmint_token_mint_duration_seconds", "Time to build and sign one token.")
                    .buckets(vec![0.000_002, 0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_5, 0.001]),
            ),
        );
        let requests_shed = registered(
            &registry,
            IntCounter::new(
                "tokenmint_requests_shed_total",
                "Requests refused at once with 503 because the concurrency limit was reached.",
            ),
        );
        let log_lines_dropped = registered(
            &registry,
            IntCounter::new(
                "tokenmint_log_lines_dropped_total",
                "Log lines dropped because stdout did not keep up (a stalled or closed log collector).",
            ),
        );
        let panics = registered(
            &registry,
            IntCounter::new(
                "tokenmint_panics_total",
                "Panics caught anywhere in the process (a request's is answered 500); each is logged with its place.",
            ),
        );
        let open_connections = registered(
            &registry,
            IntGauge::new("tokenmint_open_connections", "Open client connections, both listeners together."),
        );
        let connections_refused = counter(
            "tokenmint_connections_refused_total",
            "Connections answered 503 and closed, by the limit reached: listener (server.max_connections) or per_ip (server.max_connections_per_ip).",
            &["limit"],
        );
        let audit_records = counter(
            "tokenmint_audit_records_total",
            "Audit records by outcome: written, failed (the sink refused the write), refused (503: the sink was stalled) or dropped (best_effort only).",
            &["outcome"],
        );
        let trace_spans = counter(
            "tokenmint_trace_spans_total",
            "Spans sent to the OTLP collector, by outcome: exported, or failed (the collector did not take the batch).",
            &["outcome"],
        );
        for outcome in ["exported", "failed"] {
            trace_spans.with_label_values(&[outcome]);
        }
        let reloader_running = registered(
            &registry,
            IntGauge::new(
                "tokenmint_reloader_running",
                "1 while the reloader applies SIGHUP and file changes; 0 when it is not running.",
            ),
        );
        let reloader_restarts = registered(
            &registry,
            IntCounter::new(
                "tokenmint_reloader_restarts_total",
                "Times the reloader's loop died and was started again.",
            ),
        );
        let build_info = registered(
            &registry,
            IntGaugeVec::new(Opts::new("tokenmint_build_info", "Always 1; labels name the build."), &["version"]),
        );
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))
            .expect("registered once");
        // Series that exist before their first event, so dashboards and alerts see zeros.
        for grant in ["voice", "video", "chat", "sync", "task_router"] {
            tokens_issued.with_label_values(&[grant]);
        }
        for scope in ["ip", "identity"] {
            rate_limited.with_label_values(&[scope]);
        }
        for list in ["identity", "subject"] {
            denied.with_label_values(&[list]);
        }
        for limit in ["listener", "per_ip"] {
            connections_refused.with_label_values(&[limit]);
        }
        for outcome in ["written", "failed", "refused", "dropped"] {
            audit_records.with_label_values(&[outcome]);
        }
        for trigger in ["sighup", "file_change"] {
            for result in ["success", "partial", "failure"] {
                reloads.with_label_values(&[trigger, result]);
            }
        }
        Self {
            registry,
            http_requests,
            http_duration,
            tokens_issued,
            auth_failures,
            rate_limited,
            requests_shed,
            denied,
            reloads,
            reloader_running,
            reloader_restarts,
            mint_duration,
            log_lines_dropped,
            panics,
            open_connections,
            connections_refused,
            audit_records,
            trace_spans,
        }
    }

    /// Adds series owned by another module (e.g. the rate-limit store's). Registering the same
    /// series twice is a bug, logged rather than fatal.
    pub fn register(&self, collector: Box<dyn prometheus::core::Collector>) {
        if let Err(e) = self.registry.register(collector) {
            tracing::error!(error = %e, "a metric series could not be registered");
        }
    }

    /// Replaces one module's series with those of its successor (a reload that rebuilt it).
    pub fn replace(
        &self,
        old: Vec<Box<dyn prometheus::core::Collector>>,
        new: Vec<Box<dyn prometheus::core::Collector>>,
    ) {
        for collector in old {
            let _ = self.registry.unregister(collector);
        }
        for collector in new {
            self.register(collector);
        }
    }

    /// The Prometheus text exposition of every series.
    pub fn render(&self) -> String {
        let dropped = crate::telemetry::dropped_log_lines();
        catch_up(&self.log_lines_dropped, dropped);
        catch_up(&self.panics, crate::panics::count());
        let (exported, failed) = crate::traces::span_counts();
        for (outcome, total) in [("exported", exported), ("failed", failed)] {
            catch_up(&self.trace_spans.with_label_values(&[outcome]), total);
        }
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer).expect("text encoding cannot fail");
        String::from_utf8(buffer).expect("the text format is UTF-8")
    }
}

/// `tokenmint_jwks_fetches_total{result}`: identity-provider key set fetches, `success` or
/// `error`. Created once and shared by every key cache (and kept across reloads).
pub fn jwks_fetches() -> IntCounterVec {
    let fetches = IntCounterVec::new(
        Opts::new("tokenmint_jwks_fetches_total", "Identity-provider key set fetches, by result."),
        &["result"],
    )
    .expect("valid metric");
    for result in ["success", "error"] {
        fetches.with_label_values(&[result]);
    }
    fetches
}

/// `tokenmint_ratelimit_store_up` (1 while the shared store answers) and
/// `tokenmint_ratelimit_store_errors_total`: the shared rate-limit store's series, registered
/// with the store they belong to.
pub fn ratelimit_store() -> (IntGauge, IntCounter) {
    let up = IntGauge::new("tokenmint_ratelimit_store_up", "1 while the shared rate-limit store (Redis) answers.")
        .expect("valid metric");
    let errors = IntCounter::new(
        "tokenmint_ratelimit_store_errors_total",
        "Failed or timed-out calls to the shared rate-limit store.",
    )
    .expect("valid metric");
    (up, errors)
}

/// A method label from a fixed set, so random methods cannot grow the label set.
pub fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "POST" => "POST",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        _ => "other",
    }
}
