//! Live reload, for key rotation without downtime. On SIGHUP, and when a watched file changes
//! (each `*_FILE` credential and the `--config` file), the Twilio credentials, the token
//! settings and the policy (with its deny list) are read again the way start-up read them, and swapped in whole.
//!
//! A reload is all or nothing: if anything is invalid, the running credentials and policy stay,
//! with one log line and a metric. Listeners, authentication and rate limits are read at
//! start-up only (changing them means a rolling restart).
//!
//! Files are polled rather than watched with inotify: a Kubernetes Secret update swaps a
//! `..data` symlink, which inotify reports unreliably, and hashing three small files a few
//! times a second costs nothing. A change is applied only once the files have been stable for
//! one interval, so a key file written before its secret file is never used half-updated.

use std::path::PathBuf;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::config::ConfigSource;
use crate::credentials::{ACCOUNT_SID_VAR, API_KEY_VAR, API_SECRET_VAR, TwilioCredentials};
use crate::http::AppState;
use crate::policy::Policy;
use crate::startup::Runtime;
use crate::token::TokenMinter;

/// Re-reads what may change while running.
pub struct Reloader {
    source: ConfigSource,
    /// `--dev` placeholder credentials are kept as they are: there is nothing to re-read.
    placeholder: Option<TwilioCredentials>,
    watched: Vec<PathBuf>,
    watch_interval: Option<Duration>,
}

/// What set off a reload, as logged and counted.
#[derive(Debug, Clone, Copy)]
enum Trigger {
    Signal,
    FileChange,
}

impl Trigger {
    fn label(self) -> &'static str {
        match self {
            Self::Signal => "sighup",
            Self::FileChange => "file_change",
        }
    }
}

impl Reloader {
    /// Notes what start-up read, so a reload reads the same sources.
    pub fn new(source: ConfigSource, runtime: &Runtime) -> Self {
        let env = crate::config::env::EnvVars::from_process();
        let mut watched: Vec<PathBuf> = [ACCOUNT_SID_VAR, API_KEY_VAR, API_SECRET_VAR]
            .iter()
            .filter_map(|name| env.get(&format!("{name}_FILE")).map(PathBuf::from))
            .collect();
        watched.extend(source.file.clone());
        let placeholder = runtime.credentials.is_placeholder().then(|| runtime.credentials.clone());
        Self { source, placeholder, watched, watch_interval: runtime.settings.reload.watch_interval() }
    }

    /// Reloads on SIGHUP and on file changes, for as long as the process runs.
    pub fn spawn(self, state: AppState) -> std::io::Result<tokio::task::JoinHandle<()>> {
        #[cfg(unix)]
        let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        Ok(tokio::spawn(async move {
            let mut ticker = tokio::time::interval(self.watch_interval.unwrap_or(Duration::from_secs(3600)));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut applied = self.fingerprint();
            let mut last_seen = applied;
            loop {
                #[cfg(unix)]
                let hangup = hangups.recv();
                #[cfg(not(unix))]
                let hangup = std::future::pending::<Option<()>>();
                tokio::select! {
                    _ = hangup => {
                        applied = self.fingerprint();
                        last_seen = applied;
                        self.apply(&state, Trigger::Signal);
                    }
                    _ = ticker.tick(), if self.watch_interval.is_some() => {
                        let seen = self.fingerprint();
                        if seen != applied && seen == last_seen {
                            applied = seen;
                            self.apply(&state, Trigger::FileChange);
                        }
                        last_seen = seen;
                    }
                }
            }
        }))
    }

    /// One hash over every watched file's content (or why it could not be read).
    fn fingerprint(&self) -> [u8; 32] {
        let mut hash = Sha256::new();
        for path in &self.watched {
            hash.update(path.as_os_str().as_encoded_bytes());
            match std::fs::read(path) {
                Ok(content) => {
                    hash.update(b"\x01");
                    hash.update((content.len() as u64).to_le_bytes());
                    hash.update(&content);
                }
                Err(e) => hash.update(format!("\x00{}", e.kind())),
            }
        }
        hash.finalize().into()
    }

    /// Reads everything again; swaps it in if all of it is valid, else keeps what runs.
    fn apply(&self, state: &AppState, trigger: Trigger) {
        let previous_key_sid = state.minter.load().key_sid().to_owned();
        match self.read() {
            Ok((minter, policy)) => {
                let key_sid = minter.key_sid().to_owned();
                let rules = policy.rule_count();
                state.minter.store(minter.into());
                state.policy.store(policy.into());
                state.metrics.reloads.with_label_values(&[trigger.label(), "success"]).inc();
                tracing::info!(trigger = trigger.label(), %key_sid, %previous_key_sid, policy_rules = rules, "configuration reloaded");
            }
            Err(problems) => {
                state.metrics.reloads.with_label_values(&[trigger.label(), "failure"]).inc();
                tracing::error!(
                    trigger = trigger.label(),
                    key_sid = %previous_key_sid,
                    reason = %problems.join("; "),
                    "reload refused: still signing with the previous key and policy"
                );
            }
        }
    }

    fn read(&self) -> Result<(TokenMinter, Policy), Vec<String>> {
        let (settings, env) = self.source.read().map_err(|e| vec![e])?;
        let mut problems = settings.token.problems();
        let credentials = match &self.placeholder {
            Some(placeholder) => Some(placeholder.clone()),
            None => TwilioCredentials::from_env(&env).map_err(|e| problems.push(e.to_string())).ok(),
        };
        let policy = Policy::from_settings(&settings.policy, settings.token.default_ttl_secs)
            .map_err(|mut p| problems.append(&mut p))
            .ok();
        match (credentials, policy) {
            (Some(credentials), Some(policy)) if problems.is_empty() => {
                Ok((TokenMinter::new(&credentials, &settings.token), policy))
            }
            _ => Err(problems),
        }
    }
}
