//! Live reload, for key rotation without downtime. On SIGHUP, and when a watched file changes
//! (each `*_FILE` credential and the `--config` file), the Twilio credentials, the token
//! settings and the policy (with its deny list) are read again the way start-up read them.
//!
//! The policy and token settings are taken whole or not at all; each Twilio account's
//! credentials on their own, so an account whose new key is refused keeps its previous one
//! while the others rotate. Every refusal gets one log line and counts in the metric.
//! Listeners, authentication and rate limits are read at start-up only (changing them means a
//! rolling restart).
//!
//! Files are polled rather than watched with inotify: a Kubernetes Secret update swaps a
//! `..data` symlink, which inotify reports unreliably, and hashing three small files a few
//! times a second costs nothing. A change is applied only once the files have been stable for
//! one interval, so a key file written before its secret file is never used half-updated.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::config::ConfigSource;
use crate::credentials::{CredentialVars, TwilioCredentials};
use crate::http::AppState;
use crate::policy::Policy;
use crate::startup::Runtime;
use crate::token::{DEFAULT_ACCOUNT, Minters};

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
        let mut watched: Vec<PathBuf> = runtime
            .settings
            .account_names()
            .into_iter()
            .flat_map(|name| CredentialVars::for_account(name).names().map(|var| format!("{var}_FILE")))
            .filter_map(|var| env.get(&var).map(PathBuf::from))
            .collect();
        watched.extend(source.file.clone());
        let placeholder = runtime.credentials.is_placeholder().then(|| runtime.credentials.clone());
        Self { source, placeholder, watched, watch_interval: runtime.settings.reload.watch_interval() }
    }

    /// Reloads on SIGHUP and on file changes, for as long as the process runs. A reload that
    /// fails in any way, a panic included, is counted and logged and the reloader goes on; should
    /// the watch loop itself ever die, it is counted, logged and started again. While it runs,
    /// `tokenmint_reloader_running` is 1 and the admin `/readyz` says `reloader: running`.
    pub fn spawn(self, state: AppState) -> std::io::Result<tokio::task::JoinHandle<()>> {
        #[cfg(unix)]
        let first = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        #[cfg(not(unix))]
        let first = ();
        let reloader = Arc::new(self);
        Ok(tokio::spawn(async move {
            let mut hangups = Some(first);
            loop {
                let running = Running::start(&state);
                let watch = tokio::spawn(reloader.clone().watch(state.clone(), hangups.take()));
                let ended = watch.await;
                drop(running);
                match ended {
                    Err(e) if e.is_panic() => {
                        state.metrics.reloader_restarts.inc();
                        tracing::error!("the reloader stopped unexpectedly; starting it again");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    Err(_) => return,
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "the reloader cannot listen for SIGHUP; configuration changes are no longer applied");
                        return;
                    }
                    Ok(Ok(())) => return,
                }
            }
        }))
    }

    /// The watch loop: SIGHUP, and the watched files polled every interval.
    #[cfg(unix)]
    async fn watch(
        self: Arc<Self>,
        state: AppState,
        hangups: Option<tokio::signal::unix::Signal>,
    ) -> std::io::Result<()> {
        let mut hangups = match hangups {
            Some(hangups) => hangups,
            None => tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?,
        };
        self.watch_with(state, async move || hangups.recv().await).await
    }

    #[cfg(not(unix))]
    async fn watch(self: Arc<Self>, state: AppState, _: Option<()>) -> std::io::Result<()> {
        self.watch_with(state, async || std::future::pending::<Option<()>>().await).await
    }

    async fn watch_with(&self, state: AppState, mut hangup: impl AsyncFnMut() -> Option<()>) -> std::io::Result<()> {
        let mut ticker = tokio::time::interval(self.watch_interval.unwrap_or(Duration::from_secs(3600)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut applied = self.fingerprint();
        let mut last_seen = applied;
        loop {
            tokio::select! {
                _ = hangup() => {
                    applied = self.fingerprint();
                    last_seen = applied;
                    self.apply_guarded(&state, Trigger::Signal);
                }
                _ = ticker.tick(), if self.watch_interval.is_some() => {
                    let seen = self.fingerprint();
                    if seen != applied && seen == last_seen {
                        applied = seen;
                        self.apply_guarded(&state, Trigger::FileChange);
                    }
                    last_seen = seen;
                }
            }
        }
    }

    /// [`Self::apply`], with a panic counted and logged as a failed reload: whatever a new
    /// configuration holds, the running one stays and the next change is still applied. The
    /// panic's message is not logged: it could quote a secret.
    fn apply_guarded(&self, state: &AppState, trigger: Trigger) {
        let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.apply(state, trigger)));
        if applied.is_err() {
            state.metrics.reloads.with_label_values(&[trigger.label(), "failure"]).inc();
            tracing::error!(
                trigger = trigger.label(),
                "reload failed unexpectedly: still signing with the previous keys and policy"
            );
        }
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

    /// Reads everything again and swaps it in. The policy and token settings are taken whole or
    /// not at all; each account's credentials on their own: an account whose new credentials are
    /// refused keeps signing with its previous key while the others rotate.
    fn apply(&self, state: &AppState, trigger: Trigger) {
        let current = state.minters.load_full();
        match self.read(&current) {
            Ok(Reloaded { minters, policy, kept }) => {
                let keys: Vec<String> = minters.iter().map(|(name, m)| format!("{name}={}", m.key_sid())).collect();
                let rules = policy.rule_count();
                state.minters.store(Arc::new(minters));
                state.policy.store(Arc::new(policy));
                for reason in &kept {
                    tracing::error!(trigger = trigger.label(), %reason, "reload refused for an account: it keeps signing with its previous key");
                }
                let result = if kept.is_empty() { "success" } else { "failure" };
                state.metrics.reloads.with_label_values(&[trigger.label(), result]).inc();
                tracing::info!(trigger = trigger.label(), keys = %keys.join(" "), policy_rules = rules, "configuration reloaded");
            }
            Err(problems) => {
                state.metrics.reloads.with_label_values(&[trigger.label(), "failure"]).inc();
                tracing::error!(
                    trigger = trigger.label(),
                    reason = %problems.join("; "),
                    "reload refused: still signing with the previous keys and policy"
                );
            }
        }
    }

    fn read(&self, current: &Minters) -> Result<Reloaded, Vec<String>> {
        let (settings, env) = self.source.read().map_err(|e| vec![e])?;
        let mut problems = settings.token.problems();
        problems.extend(settings.account_problems());
        let policy =
            Policy::from_settings(&settings.policy, settings.token.default_ttl_secs, &settings.account_names())
                .map_err(|mut p| problems.append(&mut p))
                .ok();
        let (mut minters, mut kept) = (Vec::new(), Vec::new());
        for name in settings.account_names() {
            let read = match &self.placeholder {
                Some(placeholder) if name == DEFAULT_ACCOUNT => Ok(placeholder.clone()),
                _ => TwilioCredentials::from_vars(&env, &CredentialVars::for_account(name)),
            };
            match (read, current.get(name)) {
                (Ok(credentials), _) => {
                    minters.push((name.to_owned(), Arc::new(settings.minter_for(name, &credentials))));
                }
                (Err(e), Some(previous)) => {
                    kept.push(format!("account {name}: {e}"));
                    minters.push((name.to_owned(), previous.clone()));
                }
                (Err(e), None) => problems.push(format!("accounts.{name}: {e}")),
            }
        }
        match policy {
            Some(policy) if problems.is_empty() => Ok(Reloaded { minters: Minters::new(minters), policy, kept }),
            _ => Err(problems),
        }
    }
}

/// Marks the reloader as running (the metric and the admin readiness detail) until dropped,
/// which also happens when its task panics.
struct Running(AppState);

impl Running {
    fn start(state: &AppState) -> Self {
        state.health.set_reloader_running(true);
        state.metrics.reloader_running.set(1);
        Self(state.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.health.set_reloader_running(false);
        self.0.metrics.reloader_running.set(0);
    }
}

/// What a reload read: the new set, and the accounts that kept their previous key (and why).
struct Reloaded {
    minters: Minters,
    policy: Policy,
    kept: Vec<String>,
}
