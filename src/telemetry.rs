//! Logging: one tracing subscriber for the process, JSON for collectors or pretty for people.
//! The audit trail is the `audit` target: one event per minted token, never the token itself.

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber; call once, at start-up. `RUST_LOG` overrides the filter.
pub fn init(log: &LogSettings) -> Result<(), String> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.is_empty() => EnvFilter::try_new(directives)
            .map_err(|e| format!("RUST_LOG is not a valid filter ({e}): fix it or unset it"))?,
        _ => EnvFilter::try_new(&log.filter)
            .map_err(|e| format!("log.filter is not a valid filter ({e}): use e.g. \"info\""))?,
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stdout);
    let installed = match log.format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
    installed.map_err(|e| format!("logging could not start: {e}"))
}
