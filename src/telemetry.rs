//! Logging: one tracing subscriber for the process, JSON for collectors or pretty for people,
//! and (when `[trace]` turns them on) the spans for OpenTelemetry ([`crate::traces`]).
//! The audit trail is the `audit` target: one event per minted token, never the token itself.
//!
//! Lines go to stdout through a bounded queue and a writer thread, so a log collector that
//! stalls (a full pipe) or goes away (a closed one) never blocks a request: when the queue is
//! full, lines are dropped and counted (`tokenmint_log_lines_dropped_total`).

use std::sync::OnceLock;

use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::filter::{FilterExt, dynamic_filter_fn, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::traces::{TraceSettings, Tracing};

use serde::{Deserialize, Serialize};

/// The `[log]` section. `RUST_LOG`, when set, overrides `filter`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `json` (one object a line, for collectors) or `pretty` (for people).
    pub format: LogFormat,
    /// A tracing `EnvFilter` directive such as `info` or `tokenmint=debug`.
    pub filter: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Lines waiting for stdout before new ones are dropped (a few MiB at most).
const QUEUED_LINES: usize = 16_384;

static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// Log lines dropped because stdout did not keep up.
pub fn dropped_log_lines() -> u64 {
    DROPPED.get().map_or(0, |counter| counter.dropped_lines() as u64)
}

/// Flushes the queued lines (and, with traces on, the queued spans) when dropped: keep it until
/// the process ends.
#[must_use = "dropping the guard stops logging"]
pub struct LogGuard {
    lines: Option<WorkerGuard>,
    spans: Option<Tracing>,
}

impl Drop for LogGuard {
    /// Waits at most 1.5 s for each. The appender's own guard waits a second, then, when stdout
    /// is stalled, `println!`s a complaint to that same stdout and blocks forever; so it is
    /// dropped on a thread of its own, which the process exit ends. Spans go first, so an
    /// exporter's last complaint still reaches the log.
    fn drop(&mut self) {
        if let Some(spans) = self.spans.take() {
            spans.shutdown(std::time::Duration::from_millis(1500));
        }
        let Some(guard) = self.lines.take() else { return };
        let (done, flushed) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(guard);
            let _ = done.send(());
        });
        let _ = flushed.recv_timeout(std::time::Duration::from_millis(1500));
    }
}

/// Installs the global subscriber, writing to stdout, and starts the trace exporter when
/// `[trace]` enables it; call once, at start-up.
pub fn init(log: &LogSettings, trace: &TraceSettings) -> Result<LogGuard, String> {
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("tokenmint-log")
        .finish(std::io::stdout());
    let dropped = writer.error_counter();
    let spans = install_with_traces(log, writer, trace.enabled.then_some(trace))?;
    let _ = DROPPED.set(dropped);
    Ok(LogGuard { lines: Some(guard), spans })
}

/// Installs the global subscriber `init` uses, writing to `writer`, without traces (the test
/// suite gives it a file, for its leak sweep; `tokenmint mint` gives it stderr).
pub fn install<W>(log: &LogSettings, writer: W) -> Result<(), String>
where
    W: for<'writer> tracing_subscriber::fmt::MakeWriter<'writer> + Send + Sync + 'static,
{
    install_with_traces(log, writer, None).map(|_| ())
}

/// With traces off, the log filter is global, as it always was: a disabled span or event costs
/// a call-site check. With traces on, each layer has its own filter: the exporter gets this
/// crate's spans whatever the log level, and the log lines also get the request span, so every
/// line written while serving a request names its `trace_id`.
fn install_with_traces<W>(
    log: &LogSettings,
    writer: W,
    trace: Option<&TraceSettings>,
) -> Result<Option<Tracing>, String>
where
    W: for<'writer> tracing_subscriber::fmt::MakeWriter<'writer> + Send + Sync + 'static,
{
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.is_empty() => EnvFilter::try_new(directives)
            .map_err(|e| format!("RUST_LOG is not a valid filter ({e}): fix it or unset it"))?,
        _ => EnvFilter::try_new(&log.filter)
            .map_err(|e| format!("log.filter is not a valid filter ({e}): use e.g. \"info\""))?,
    };
    let installed = match trace {
        None => tracing_subscriber::registry().with(filter).with(lines(log.format, writer)).try_init().map(|()| None),
        Some(settings) => {
            let (tracing, spans) = crate::traces::start(settings)?;
            let lines_filter = filter.or(filter_fn(|metadata| metadata.is_span() && metadata.name() == REQUEST_SPAN));
            tracing_subscriber::registry()
                .with(lines(log.format, writer).with_filter(lines_filter))
                .with(spans.with_filter(dynamic_filter_fn(crate::traces::is_exported)))
                .try_init()
                .map(|()| Some(tracing))
        }
    };
    installed.map_err(|e| format!("logging could not start: {e}"))
}

/// The name of the span each request runs in (`http::layers`).
pub const REQUEST_SPAN: &str = "request";

/// The layer that writes log lines in `format`.
fn lines<S, W>(format: LogFormat, writer: W) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
    W: for<'writer> tracing_subscriber::fmt::MakeWriter<'writer> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer();
    match format {
        // JSON escapes every control character itself.
        LogFormat::Json => {
            layer.with_writer(writer).json().flatten_event(true).with_current_span(true).with_span_list(false).boxed()
        }
        // Plain text writes field values as they are: a newline in an identity would forge a
        // line and an ESC would drive the reader's terminal, so each line is escaped on its way
        // out, and colours (ESC sequences themselves) are off.
        LogFormat::Pretty => layer.with_writer(EscapedLines(writer)).with_ansi(false).compact().boxed(),
    }
}

/// A writer that escapes control characters inside each line (see [`crate::text::escape_line`]).
/// The fmt layer writes one whole event per `write` call, so every call is one line.
struct EscapedLines<W>(W);

impl<'writer, W: tracing_subscriber::fmt::MakeWriter<'writer>> tracing_subscriber::fmt::MakeWriter<'writer>
    for EscapedLines<W>
{
    type Writer = EscapedLine<W::Writer>;

    fn make_writer(&'writer self) -> Self::Writer {
        EscapedLine(self.0.make_writer())
    }
}

struct EscapedLine<W>(W);

impl<W: std::io::Write> std::io::Write for EscapedLine<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.0.write_all(crate::text::escape_line(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}
