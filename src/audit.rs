//! The audit trail: one JSON record per minted token (and per deny-list refusal), written to a
//! sink of its own, apart from the logs.
//!
//! Vault's rule is the default: a token is not handed out until its record has been written to
//! the sink (handed to the operating system: stdout, or a file). When the sink stalls, the
//! operator chooses what a request does (`audit.on_stall`): wait for room in the queue for up to
//! `stall_timeout_ms`, then 503 (`block`, the default); 503 at once when the queue is full
//! (`refuse`); or never wait, dropping and counting records the queue cannot take
//! (`best_effort`, the only choice that can mint a token without its record).
//!
//! One writer thread takes the records in arrival order, writes every record waiting in one
//! write and one flush, then acknowledges each: a burst costs one system call, not one each.
//! A file sink is opened in append mode and reopened on SIGHUP (for logrotate) or after an error.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use prometheus::IntCounterVec;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

/// The `[audit]` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSettings {
    /// Where records go: `stdout`, `stderr` or `file` (then `path`).
    pub sink: SinkKind,
    /// The file, with `sink = "file"`: opened for appending, reopened on SIGHUP.
    pub path: Option<PathBuf>,
    /// What a request does while the sink is stalled: `block`, `refuse` or `best_effort`.
    pub on_stall: OnStall,
    /// The longest a request waits for its record to be written before it is refused (503).
    pub stall_timeout_ms: u64,
    /// Records waiting for the writer before the sink counts as stalled.
    pub queue_records: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkKind {
    Stdout,
    Stderr,
    File,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnStall {
    /// Wait for the record to be written, up to `stall_timeout_ms`; then refuse the token.
    Block,
    /// Refuse the token at once when the queue is full; otherwise wait as `block` does.
    Refuse,
    /// Never wait: a record the queue cannot take is dropped and counted; the token goes out.
    BestEffort,
}

impl AuditSettings {
    /// Every problem with this section, as sentences naming the key.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        match (self.sink, &self.path) {
            (SinkKind::File, None) => {
                problems.push("audit.sink = \"file\" needs audit.path, the file to append records to".to_owned())
            }
            (SinkKind::Stdout | SinkKind::Stderr, Some(_)) => problems.push(
                "audit.path is set but audit.sink is not \"file\": set audit.sink = \"file\" or remove the path"
                    .to_owned(),
            ),
            _ => {}
        }
        problems.extend(crate::bounds::out_of_range(
            "audit.stall_timeout_ms",
            self.stall_timeout_ms,
            10..=60_000,
            "milliseconds",
        ));
        problems.extend(crate::bounds::out_of_range(
            "audit.queue_records",
            self.queue_records as u64,
            1..=1_000_000,
            "records",
        ));
        problems
    }
}

/// Why a record was not written: the token it records must not be handed out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    #[error("the audit trail is not accepting records (the sink is stalled); the token was not issued: retry shortly")]
    Stalled,
    #[error("the audit trail could not be written; the token was not issued: retry shortly")]
    Failed,
}

/// One record on its way to the sink, and who waits for it.
struct Entry {
    line: Vec<u8>,
    written: Option<oneshot::Sender<Result<(), AuditError>>>,
}

/// The handle requests write through; cheap to share.
pub struct AuditTrail {
    queue: mpsc::Sender<Entry>,
    on_stall: OnStall,
    stall_timeout: Duration,
    reopen: Arc<AtomicBool>,
    records: IntCounterVec,
}

impl AuditTrail {
    /// Starts the writer thread. `records` is `tokenmint_audit_records_total{outcome}`.
    pub fn start(settings: &AuditSettings, records: IntCounterVec) -> std::io::Result<Self> {
        let (queue, receiver) = mpsc::channel(settings.queue_records.max(1));
        let reopen = Arc::new(AtomicBool::new(false));
        let sink = Sink::new(settings);
        let writer = Writer { sink, receiver, reopen: reopen.clone(), records: records.clone() };
        std::thread::Builder::new().name("tokenmint-audit".into()).spawn(move || writer.run())?;
        Ok(Self {
            queue,
            on_stall: settings.on_stall,
            stall_timeout: Duration::from_millis(settings.stall_timeout_ms),
            reopen,
            records,
        })
    }

    /// Writes `record` (one JSON object) as one line. Returns once it is written, unless the
    /// operator chose `best_effort`; an error means the token it records must not go out.
    pub async fn record(&self, record: &impl Serialize) -> Result<(), AuditError> {
        let line = line_of(record).ok_or(AuditError::Failed)?;
        if self.on_stall == OnStall::BestEffort {
            self.enqueue(line);
            return Ok(());
        }
        let (done, written) = oneshot::channel();
        let entry = Entry { line, written: Some(done) };
        let waited = tokio::time::timeout(self.stall_timeout, async {
            match self.on_stall {
                OnStall::Refuse => self.queue.try_send(entry).map_err(|_| AuditError::Stalled)?,
                _ => self.queue.send(entry).await.map_err(|_| AuditError::Failed)?,
            }
            written.await.map_err(|_| AuditError::Failed)?
        })
        .await;
        let result = waited.unwrap_or(Err(AuditError::Stalled));
        if result == Err(AuditError::Stalled) {
            self.records.with_label_values(&["refused"]).inc();
        }
        result
    }

    /// Writes a record nothing waits on (a refusal: no token to hold back), never blocking.
    pub fn record_quietly(&self, record: &impl Serialize) {
        if let Some(line) = line_of(record) {
            self.enqueue(line);
        }
    }

    /// Queues `line` without waiting; a full queue drops it, counted.
    fn enqueue(&self, line: Vec<u8>) {
        if self.queue.try_send(Entry { line, written: None }).is_err() {
            self.records.with_label_values(&["dropped"]).inc();
        }
    }

    /// Reopens a file sink before the next write (SIGHUP, after logrotate moved the file).
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::Relaxed);
    }

    /// Waits, up to `limit`, until every record queued so far is written (at shutdown).
    pub async fn flush(&self, limit: Duration) {
        let (done, written) = oneshot::channel();
        let marker = Entry { line: Vec::new(), written: Some(done) };
        let _ = tokio::time::timeout(limit, async {
            if self.queue.send(marker).await.is_ok() {
                let _ = written.await;
            }
        })
        .await;
    }
}

/// `record` as one JSON line.
fn line_of(record: &impl Serialize) -> Option<Vec<u8>> {
    let mut line = serde_json::to_vec(record).ok()?;
    line.push(b'\n');
    Some(line)
}

/// The record of a minted token. The first four keys match the log lines' (`timestamp`,
/// `level`, `target`, `message`), so one query reads both; borrowed fields, written in one pass.
#[derive(Debug, Serialize)]
pub struct TokenMinted<'a> {
    pub timestamp: Timestamp,
    pub level: &'static str,
    pub target: &'static str,
    pub message: &'static str,
    pub request_id: &'a str,
    /// The request's trace, when traces are on (`[trace]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<&'a str>,
    pub identity: &'a str,
    /// The identity as authenticated, when the rule minted another form of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_identity: Option<&'a str>,
    pub subject: &'a str,
    pub principal: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<&'a str>,
    pub rule: &'a str,
    pub account: &'a str,
    pub grants: &'a [&'static str],
    pub ttl: u32,
    pub jti: &'a str,
    pub key_sid: &'a str,
    pub client_ip: std::net::IpAddr,
}

/// The record of a deny-list refusal (no token left, so nothing waits on it).
#[derive(Debug, Serialize)]
pub struct TokenRefused<'a> {
    pub timestamp: Timestamp,
    pub level: &'static str,
    pub target: &'static str,
    pub message: &'static str,
    pub request_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<&'a str>,
    pub identity: &'a str,
    pub subject: &'a str,
    pub principal: String,
    pub deny_list: &'static str,
    pub client_ip: std::net::IpAddr,
}

/// `target` of every record.
pub const TARGET: &str = "audit";

/// Now, written as RFC 3339 with microseconds (UTC), as the log lines write it.
#[derive(Debug, Clone, Copy)]
pub struct Timestamp(std::time::Duration);

impl Timestamp {
    pub fn now() -> Self {
        Self(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let seconds = crate::token::rfc3339(self.0.as_secs());
        serializer.collect_str(&format_args!("{}.{:06}Z", seconds.trim_end_matches('Z'), self.0.subsec_micros()))
    }
}

/// Where the writer thread writes.
enum Sink {
    Stdout,
    Stderr,
    File { path: PathBuf, file: Option<std::fs::File> },
}

impl Sink {
    fn new(settings: &AuditSettings) -> Self {
        match (settings.sink, &settings.path) {
            (SinkKind::File, Some(path)) => Self::File { path: path.clone(), file: None },
            (SinkKind::Stderr, _) => Self::Stderr,
            _ => Self::Stdout,
        }
    }

    /// Writes `bytes` in one call and flushes. A file that fails is closed, to be reopened
    /// (created if it was moved away) by the next write.
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Self::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(bytes).and_then(|()| out.flush())
            }
            Self::Stderr => {
                let mut out = std::io::stderr().lock();
                out.write_all(bytes).and_then(|()| out.flush())
            }
            Self::File { path, file } => {
                let open = match file {
                    Some(open) => open,
                    None => file.insert(std::fs::OpenOptions::new().create(true).append(true).open(&*path)?),
                };
                let written = open.write_all(bytes).and_then(|()| open.flush());
                if written.is_err() {
                    *file = None;
                }
                written
            }
        }
    }

    fn reopen(&mut self) {
        if let Self::File { file, .. } = self {
            *file = None;
        }
    }
}

struct Writer {
    sink: Sink,
    receiver: mpsc::Receiver<Entry>,
    reopen: Arc<AtomicBool>,
    records: IntCounterVec,
}

/// Records written in one system call at most.
const BATCH_RECORDS: usize = 256;

/// A batch smaller than this waits for one yield of the CPU before it is written.
const YIELD_BELOW: usize = 8;

impl Writer {
    fn take_waiting(&mut self, batch: &mut Vec<Entry>) {
        while batch.len() < BATCH_RECORDS {
            match self.receiver.try_recv() {
                Ok(entry) => batch.push(entry),
                Err(_) => break,
            }
        }
    }

    /// Until every handle is gone: take what is waiting, write it at once, acknowledge each.
    fn run(mut self) {
        let mut batch = Vec::with_capacity(BATCH_RECORDS);
        let mut bytes = Vec::new();
        while let Some(first) = self.receiver.blocking_recv() {
            batch.push(first);
            self.take_waiting(&mut batch);
            if batch.len() < YIELD_BELOW {
                // Woken by one record while the requests that follow it are still being served:
                // let them queue theirs, so one write and one wake-up serve many.
                std::thread::yield_now();
                self.take_waiting(&mut batch);
            }
            if self.reopen.swap(false, Ordering::Relaxed) {
                self.sink.reopen();
            }
            bytes.clear();
            for entry in &batch {
                bytes.extend_from_slice(&entry.line);
            }
            let result = if bytes.is_empty() { Ok(()) } else { self.sink.write(&bytes) };
            let outcome = if result.is_ok() { "written" } else { "failed" };
            if let Err(e) = &result {
                // The error (a full disk, a closed pipe) says nothing secret; the records are
                // not repeated here.
                tracing::error!(error = %e, records = batch.len(), "the audit sink refused a write");
            }
            for entry in batch.drain(..) {
                if !entry.line.is_empty() {
                    self.records.with_label_values(&[outcome]).inc();
                }
                if let Some(written) = entry.written {
                    let _ = written.send(result.as_ref().map(|_| ()).map_err(|_| AuditError::Failed));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(path: &std::path::Path, on_stall: OnStall) -> AuditSettings {
        AuditSettings {
            sink: SinkKind::File,
            path: Some(path.to_owned()),
            on_stall,
            stall_timeout_ms: 200,
            queue_records: 4,
        }
    }

    fn counter() -> IntCounterVec {
        IntCounterVec::new(prometheus::Opts::new("records", "records"), &["outcome"]).unwrap()
    }

    #[tokio::test]
    async fn a_record_is_in_the_file_when_record_returns_and_a_failing_sink_refuses() {
        let path = std::env::temp_dir().join(format!("tokenmint-audit-unit-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let trail = AuditTrail::start(&settings(&path, OnStall::Block), counter()).unwrap();
        for n in 0..10 {
            trail.record(&serde_json::json!({"n": n})).await.unwrap();
            let written = std::fs::read_to_string(&path).unwrap();
            assert_eq!(written.lines().count(), n + 1, "written before record returned");
        }
        // Moved away (logrotate), then SIGHUP: the next record starts a new file.
        let rotated = path.with_extension("1");
        std::fs::rename(&path, &rotated).unwrap();
        trail.reopen();
        trail.record(&serde_json::json!({"n": "after"})).await.unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"n\":\"after\"}\n");
        assert_eq!(std::fs::read_to_string(&rotated).unwrap().lines().count(), 10);

        // A full disk: every record is refused, never reported written.
        let full = AuditTrail::start(&settings(std::path::Path::new("/dev/full"), OnStall::Block), counter()).unwrap();
        assert_eq!(full.record(&serde_json::json!({})).await, Err(AuditError::Failed));
    }

    #[test]
    fn a_file_sink_needs_a_path_and_bounds_are_checked() {
        let mut bad = settings(std::path::Path::new("x"), OnStall::Block);
        bad.path = None;
        bad.queue_records = 0;
        bad.stall_timeout_ms = 0;
        let problems = bad.problems().join("\n");
        for expected in ["needs audit.path", "audit.queue_records", "audit.stall_timeout_ms"] {
            assert!(problems.contains(expected), "{expected} in {problems}");
        }
    }
}
