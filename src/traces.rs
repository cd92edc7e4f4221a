//! OpenTelemetry traces over OTLP/HTTP (protobuf), off by default.
//!
//! The spans are the `tracing` spans the code already has (`request`, `authenticate`,
//! `jwks_fetch`, `rate_limit`, `policy`, `mint`, `audit`), at debug level: with traces off and
//! logs at `info` they are disabled at their call sites and cost nothing. With traces on, a
//! per-layer filter hands this crate's spans (never its events, which are log lines) to
//! `tracing-opentelemetry`, and a batch processor sends them from a thread of its own: a
//! collector that stalls or goes away delays no request; spans it cannot take are dropped by the
//! processor's bounded queue, and failed exports are counted
//! (`tokenmint_trace_spans_total{outcome="failed"}`) and logged once per outage.
//!
//! The standard `OTEL_EXPORTER_OTLP_*` variables (endpoint, headers such as a collector's API
//! key, timeout) and `OTEL_BSP_*` (batching) apply, as operators expect; `[trace]` turns it on.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchSpanProcessor, Sampler, SdkTracerProvider, SpanData, SpanExporter};
use serde::{Deserialize, Serialize};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The `[trace]` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TraceSettings {
    /// Send spans over OTLP. Off by default.
    pub enabled: bool,
    /// The OTLP/HTTP traces URL, e.g. `http://otel-collector:4318/v1/traces`. Empty: the
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT` variable, else
    /// `http://localhost:4318/v1/traces`.
    pub endpoint: String,
    /// The share (0.0 to 1.0) of the traces this service starts that are kept. A caller's
    /// `traceparent` decides for the trace it belongs to.
    pub sample_ratio: f64,
    /// `service.name` of every span.
    pub service_name: String,
}

impl TraceSettings {
    /// Every problem with this section, as sentences naming the key.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            problems.push(format!(
                "trace.sample_ratio is {}: write a share from 0.0 (none) to 1.0 (every trace)",
                self.sample_ratio
            ));
        }
        if !self.endpoint.is_empty() && !is_http_url(&self.endpoint) {
            problems.push(format!(
                "trace.endpoint {:?} is not an http(s) URL: write e.g. \"http://otel-collector:4318/v1/traces\", or leave it empty to use OTEL_EXPORTER_OTLP_ENDPOINT",
                self.endpoint
            ));
        }
        if self.service_name.trim().is_empty() {
            problems.push("trace.service_name is empty: name the service, e.g. \"tokenmint\"".into());
        }
        problems
    }
}

fn is_http_url(url: &str) -> bool {
    ["http://", "https://"].iter().any(|scheme| {
        url.get(..scheme.len()).is_some_and(|head| head.eq_ignore_ascii_case(scheme)) && url.len() > scheme.len()
    }) && reqwest::Url::parse(url).is_ok_and(|url| url.has_host())
}

/// Spans handed to the collector, and spans in batches it did not take.
static EXPORTED: AtomicU64 = AtomicU64::new(0);
static FAILED: AtomicU64 = AtomicU64::new(0);

/// `(exported, failed)` span counts since start-up, for `/metrics`.
pub fn span_counts() -> (u64, u64) {
    (EXPORTED.load(Ordering::Relaxed), FAILED.load(Ordering::Relaxed))
}

/// The running exporter; shut it down (see [`crate::telemetry::LogGuard`]) to send what is queued.
pub struct Tracing {
    provider: SdkTracerProvider,
}

impl Tracing {
    /// Sends the spans still queued, waiting at most `limit`.
    pub fn shutdown(self, limit: Duration) {
        let _ = self.provider.shutdown_with_timeout(limit);
    }
}

/// Builds the exporter and the `tracing` layer that feeds it. Call within the Tokio runtime or
/// outside it: the exporter's HTTP client and batch thread are its own.
pub fn start<S>(settings: &TraceSettings) -> Result<(Tracing, impl tracing_subscriber::Layer<S>), String>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    let mut exporter = opentelemetry_otlp::SpanExporter::builder().with_http().with_protocol(Protocol::HttpBinary);
    if !settings.endpoint.is_empty() {
        exporter = exporter.with_endpoint(settings.endpoint.clone());
    }
    let exporter = exporter
        .build()
        .map_err(|e| format!("trace export could not start ({e}): check trace.endpoint and OTEL_EXPORTER_OTLP_*"))?;
    let resource = opentelemetry_sdk::Resource::builder().with_service_name(settings.service_name.clone()).build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(BatchSpanProcessor::builder(Counted(exporter)).build())
        // Sampling is decided at the request span ([`decide`]): every span that gets this far is kept.
        .with_sampler(Sampler::AlwaysOn)
        .with_resource(resource)
        .build();
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("tokenmint"))
        .with_tracked_inactivity(false)
        .with_threads(false)
        .with_location(false);
    SAMPLE_RATIO.store(settings.sample_ratio.to_bits(), Ordering::Relaxed);
    STARTED.store(true, Ordering::Relaxed);
    Ok((Tracing { provider }, layer))
}

/// Whether `metadata` is one of this crate's spans: the only thing handed to the exporter.
pub fn is_our_span(metadata: &tracing::Metadata<'_>) -> bool {
    metadata.is_span() && metadata.target().starts_with("tokenmint")
}

/// Whether a span of this crate is exported: the request span (made only for a trace that is
/// kept, [`decide`]) and the spans within an exported one. A span outside any request (a key
/// set's refresh in the background) is not.
pub fn is_exported<S>(metadata: &tracing::Metadata<'_>, context: &tracing_subscriber::layer::Context<'_, S>) -> bool
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    is_our_span(metadata) && (metadata.name() == crate::telemetry::REQUEST_SPAN || context.lookup_current().is_some())
}

/// Whether, and under what, a request is traced.
pub enum Decision {
    /// Traces are off: the request span is a plain `tracing` span.
    Off,
    /// This trace is not kept (the caller did not sample it, or `sample_ratio` left it out):
    /// no span is made for the request, so none of its steps' spans is built either.
    Skip,
    /// Traced, as the child of the caller's span when it sent a valid `traceparent`.
    Trace(Option<opentelemetry::Context>),
}

/// Decides once per request, at its span: tracing-opentelemetry builds every span before its
/// sampler looks at it, so a trace nobody keeps must not start (BENCHMARKS.md). A caller's
/// W3C `traceparent` (and `tracestate`) decides for its own trace; an absent or malformed one
/// leaves the request a root, kept at `sample_ratio`.
pub fn decide(headers: &dyn Extractor) -> Decision {
    if !STARTED.load(Ordering::Relaxed) {
        return Decision::Off;
    }
    let parent = TraceContextPropagator::new().extract(headers);
    let remote = parent.span().span_context().clone();
    if remote.is_valid() && remote.is_remote() {
        return if remote.is_sampled() { Decision::Trace(Some(parent)) } else { Decision::Skip };
    }
    if f64::from_bits(SAMPLE_RATIO.load(Ordering::Relaxed)) > unit_random() {
        Decision::Trace(None)
    } else {
        Decision::Skip
    }
}

/// Starts `span` (the request's) under `parent`, when there is one.
pub fn adopt_parent(span: &tracing::Span, parent: Option<opentelemetry::Context>) {
    if let Some(parent) = parent {
        let _ = span.set_parent(parent);
    }
}

/// `trace.sample_ratio`, as bits of an `f64`.
static SAMPLE_RATIO: AtomicU64 = AtomicU64::new(0);

/// A number in [0, 1) from a per-thread xorshift, seeded from the process's unique ids: good
/// enough to choose which traces to keep, and without a system call.
fn unit_random() -> f64 {
    thread_local! {
        static STATE: std::cell::Cell<u64> = std::cell::Cell::new(
            u64::from_str_radix(&crate::ids::unique_hex(), 16).unwrap_or(0x9e37_79b9_7f4a_7c15) | 1,
        );
    }
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        (x >> 11) as f64 / (1u64 << 53) as f64
    })
}

/// The trace id of the current span, when traces are on: for records written apart from the
/// log lines (the audit trail). With traces off it costs one atomic load.
pub fn current_trace_id() -> Option<String> {
    if !STARTED.load(Ordering::Relaxed) {
        return None;
    }
    trace_id(&tracing::Span::current())
}

/// Whether [`start`] has run: traces are on.
static STARTED: AtomicBool = AtomicBool::new(false);

/// The trace id of `span` as 32 hexadecimal digits, when it is being traced.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    if span.is_disabled() {
        return None;
    }
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then(|| span_context.trace_id().to_string())
}

/// Counts what the inner exporter sends and fails to send; logs the first failure of an outage
/// and the recovery, not every batch.
#[derive(Debug)]
struct Counted<E>(E);

static FAILING: AtomicBool = AtomicBool::new(false);

impl<E: SpanExporter> SpanExporter for Counted<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len() as u64;
        let result = self.0.export(batch).await;
        match &result {
            Ok(()) => {
                EXPORTED.fetch_add(spans, Ordering::Relaxed);
                if FAILING.swap(false, Ordering::Relaxed) {
                    tracing::info!("trace export recovered");
                }
            }
            Err(e) => {
                FAILED.fetch_add(spans, Ordering::Relaxed);
                if !FAILING.swap(true, Ordering::Relaxed) {
                    tracing::warn!(reason = %e, "trace export failed; spans are dropped until the collector answers");
                }
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.0.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(endpoint: &str, sample_ratio: f64, service_name: &str) -> TraceSettings {
        TraceSettings { enabled: true, endpoint: endpoint.into(), sample_ratio, service_name: service_name.into() }
    }

    #[test]
    fn each_bad_setting_is_one_sentence_naming_its_key() {
        assert!(settings("", 1.0, "tokenmint").problems().is_empty());
        assert!(settings("https://collector.example.com:4318/v1/traces", 0.0, "t").problems().is_empty());
        for (bad, key) in [
            (settings("", 1.5, "t"), "trace.sample_ratio"),
            (settings("", -0.1, "t"), "trace.sample_ratio"),
            (settings("", f64::NAN, "t"), "trace.sample_ratio"),
            (settings("collector:4318", 1.0, "t"), "trace.endpoint"),
            (settings("ftp://collector/v1/traces", 1.0, "t"), "trace.endpoint"),
            (settings("http://", 1.0, "t"), "trace.endpoint"),
            (settings("", 1.0, " "), "trace.service_name"),
        ] {
            let problems = bad.problems();
            assert_eq!(problems.len(), 1, "{bad:?}: {problems:?}");
            assert!(problems[0].starts_with(key), "{problems:?}");
        }
    }

    /// Records what [`is_our_span`] says of each span and event it sees.
    #[derive(Clone, Default)]
    struct Verdicts(std::sync::Arc<std::sync::Mutex<Vec<(&'static str, bool)>>>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Verdicts {
        fn on_new_span(&self, attrs: &tracing::span::Attributes<'_>, _: &tracing::span::Id, _: Context<'_, S>) {
            self.0.lock().unwrap().push((attrs.metadata().name(), is_our_span(attrs.metadata())));
        }

        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            self.0.lock().unwrap().push(("event", is_our_span(event.metadata())));
        }
    }

    use tracing_subscriber::layer::{Context, SubscriberExt};

    #[test]
    fn only_this_crates_spans_are_exported_never_its_events() {
        let verdicts = Verdicts::default();
        tracing::subscriber::with_default(tracing_subscriber::registry().with(verdicts.clone()), || {
            let span = tracing::debug_span!("policy");
            span.in_scope(|| tracing::info!("a log line"));
            tracing::debug_span!(target: "hyper", "connection").in_scope(|| {});
        });
        assert_eq!(*verdicts.0.lock().unwrap(), [("policy", true), ("event", false), ("connection", false)]);
    }
}
