//! Live reload, for key rotation without downtime. On SIGHUP, and when a watched file changes
//! (each `*_FILE` secret and the `--config` file), the Twilio credentials, the token settings,
//! authentication (API keys, sessions, providers), rate limits and the policy (with its deny
//! list) are read again, through the same assembly as start-up ([`crate::startup::build_domain`]).
//!
//! Authentication, rate limits, policy and token settings are taken whole or not at all; each
//! Twilio account's credentials on their own, so an account whose new key is refused keeps its
//! previous one while the others rotate. An unchanged authenticator or limiter is kept as it is
//! (caches, key refresh and counts go on). What cannot change live (`[server]`, `[cors]`,
//! `[log]`, `[reload]`) is named in a log line and counted as a `partial` reload: it needs a
//! restart. Every refusal gets one log line and counts in the metric.
//!
//! Files are polled rather than watched with inotify: a Kubernetes Secret update swaps a
//! `..data` symlink, which inotify reports unreliably, and hashing three small files a few
//! times a second costs nothing. A change is applied only once the files have been stable for
//! one interval, so a key file written before its secret file is never used half-updated.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::accounts::Minters;
use crate::accounts::{CredentialVars, DEFAULT_ACCOUNT, TwilioCredentials};
use crate::app::AppState;
use crate::config::{ConfigSource, Settings};
use crate::ratelimit::RateLimiter;
use crate::startup::{Domain, Running, Runtime, build_domain, minter_for, read_credentials, settings_problems};

/// Re-reads what may change while running.
pub struct Reloader {
    source: ConfigSource,
    /// `--dev` placeholder credentials are kept as they are: there is nothing to re-read.
    placeholder: Option<TwilioCredentials>,
    watched: Vec<PathBuf>,
    watch_interval: Option<Duration>,
    /// The settings start-up read: the sections that cannot change live are compared with them.
    started: Settings,
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
        let env = crate::env::EnvVars::from_process();
        let settings = &runtime.settings;
        let secret_vars = settings
            .account_names()
            .into_iter()
            .flat_map(|name| CredentialVars::for_account(name).names().map(str::to_owned))
            .chain(settings.auth.sessions.iter().map(|s| s.secret_env.clone()))
            .chain(std::iter::once(settings.rate_limit.redis.url_env.clone()));
        let mut watched: Vec<PathBuf> =
            secret_vars.filter_map(|var| env.get(&format!("{var}_FILE")).map(PathBuf::from)).collect();
        watched.extend(source.file.clone());
        let placeholder = runtime.credentials.is_placeholder().then(|| runtime.credentials.clone());
        Self {
            source,
            placeholder,
            watched,
            watch_interval: settings.reload.watch_interval(),
            started: settings.clone(),
        }
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
                let alive = Alive::start(&state);
                let watch = tokio::spawn(reloader.clone().watch(state.clone(), hangups.take()));
                let ended = watch.await;
                drop(alive);
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

    async fn watch_with(
        self: Arc<Self>,
        state: AppState,
        mut hangup: impl AsyncFnMut() -> Option<()>,
    ) -> std::io::Result<()> {
        let mut ticker = tokio::time::interval(self.watch_interval.unwrap_or(Duration::from_secs(3600)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut applied = self.fingerprint();
        let mut last_seen = applied;
        loop {
            tokio::select! {
                _ = hangup() => {
                    applied = self.fingerprint();
                    last_seen = applied;
                    // logrotate's postrotate sends SIGHUP: the audit file is reopened whatever
                    // the reload finds.
                    state.audit.reopen();
                    self.apply_guarded(&state, Trigger::Signal).await;
                }
                _ = ticker.tick(), if self.watch_interval.is_some() => {
                    let seen = self.fingerprint();
                    if seen != applied && seen == last_seen {
                        applied = seen;
                        self.apply_guarded(&state, Trigger::FileChange).await;
                    }
                    last_seen = seen;
                }
            }
        }
    }

    /// [`Self::apply`] in a task of its own, so a panic is counted and logged as a failed reload:
    /// whatever a new configuration holds, the running one stays and the next change is still
    /// applied. The panic's message is not logged: it could quote a secret.
    async fn apply_guarded(self: &Arc<Self>, state: &AppState, trigger: Trigger) {
        let applied = tokio::spawn(self.clone().apply(state.clone(), trigger)).await;
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

    /// Reads everything again and swaps it in. Authentication, rate limits, policy and token
    /// settings are taken whole or not at all; each account's credentials on their own: an
    /// account whose new credentials are refused keeps signing with its previous key while the
    /// others rotate.
    async fn apply(self: Arc<Self>, state: AppState, trigger: Trigger) {
        let label = trigger.label();
        match self.read(&state).await {
            Ok(Reloaded { minters, domain, kept, needs_restart }) => {
                let keys: Vec<String> = minters.iter().map(|(name, m)| format!("{name}={}", m.key_sid())).collect();
                let rules = domain.policy.rule_count();
                let Domain { authenticator, policy, limiter } = domain;
                let old_limiter = state.limiter.swap(limiter.clone());
                if !Arc::ptr_eq(&old_limiter, &limiter) {
                    state.metrics.replace(store_collectors(&old_limiter), store_collectors(&limiter));
                }
                let old_authenticator = state.authenticator.swap(authenticator.clone());
                if !Arc::ptr_eq(&old_authenticator, &authenticator) {
                    authenticator.spawn_key_refresh();
                }
                state.minters.store(Arc::new(minters));
                state.policy.store(Arc::new(policy));
                for reason in &kept {
                    tracing::error!(trigger = label, %reason, "reload refused for an account: it keeps signing with its previous key");
                }
                let result = match (kept.is_empty(), needs_restart.is_empty()) {
                    (false, _) => "failure",
                    (true, false) => "partial",
                    (true, true) => "success",
                };
                state.metrics.reloads.with_label_values(&[label, result]).inc();
                if !needs_restart.is_empty() {
                    tracing::warn!(
                        trigger = label,
                        needs_restart = %needs_restart.join(", "),
                        "reloaded everything else; these changes take effect only after a restart"
                    );
                }
                tracing::info!(trigger = label, keys = %keys.join(" "), policy_rules = rules, "configuration reloaded");
            }
            Err(problems) => {
                state.metrics.reloads.with_label_values(&[label, "failure"]).inc();
                tracing::error!(
                    trigger = label,
                    reason = %problems.join("; "),
                    "reload refused: still signing with the previous keys and policy"
                );
            }
        }
    }

    async fn read(&self, state: &AppState) -> Result<Reloaded, Vec<String>> {
        let (settings, env) = self.source.read().map_err(|e| vec![e])?;
        let mut problems = settings_problems(&settings, self.source.dev);
        let (authenticator, limiter) = (state.authenticator.load_full(), state.limiter.load_full());
        let running = Running { authenticator: &authenticator, limiter: &limiter };
        let domain = build_domain(&settings, &env, Some(running)).map_err(|mut p| problems.append(&mut p)).ok();
        let current = state.minters.load_full();
        let (mut minters, mut kept) = (std::collections::BTreeMap::new(), Vec::new());
        for (name, read) in read_credentials(&settings, &env, self.placeholder.as_ref()) {
            match (read, current.get(name)) {
                (Ok(credentials), _) => {
                    minters.insert(name.to_owned(), Arc::new(minter_for(&settings, name, &credentials)));
                }
                (Err(problem), Some(previous)) => {
                    kept.push(problem);
                    minters.insert(name.to_owned(), previous.clone());
                }
                (Err(problem), None) => problems.push(problem),
            }
        }
        let default = minters.remove(DEFAULT_ACCOUNT);
        let (Some(domain), Some(default)) = (domain, default) else {
            return Err(problems);
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        // A provider the reload added must have its keys before it takes over, or its users
        // would be refused (and readiness fail) until the first fetch.
        let missing = domain.authenticator.fetch_missing_keys(&authenticator).await;
        if !missing.is_empty() {
            return Err(missing);
        }
        let needs_restart = changes_needing_restart(&self.started, &settings);
        Ok(Reloaded { minters: Minters::new(default, minters), domain, kept, needs_restart })
    }
}

/// The sections only a restart applies: the listeners, the layers built around them, the log
/// and the reloader itself. Every other section is rebuilt by a reload (a test checks the list).
const READ_AT_START_UP: [&str; 6] = ["server", "cors", "log", "trace", "reload", "audit"];

/// The keys of the sections read at start-up only whose value differs between `started` and
/// `now`, e.g. `server.listen`.
fn changes_needing_restart(started: &Settings, now: &Settings) -> Vec<String> {
    let (before, after) = (serde_json::json!(started), serde_json::json!(now));
    let mut changed = Vec::new();
    for section in READ_AT_START_UP {
        let (Some(old), Some(new)) = (before[section].as_object(), after[section].as_object()) else { continue };
        for (key, value) in new {
            if old.get(key) != Some(value) {
                changed.push(format!("{section}.{key}"));
            }
        }
    }
    changed
}

/// The shared rate-limit store's series, if the limiter has a store.
fn store_collectors(limiter: &RateLimiter) -> Vec<Box<dyn prometheus::core::Collector>> {
    limiter.shared_store().map(|store| store.collectors()).unwrap_or_default()
}

/// Marks the reloader as running (the metric and the admin readiness detail) until dropped,
/// which also happens when its task panics.
struct Alive(AppState);

impl Alive {
    fn start(state: &AppState) -> Self {
        state.health.set_reloader_running(true);
        state.metrics.reloader_running.set(1);
        Self(state.clone())
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.health.set_reloader_running(false);
        self.0.metrics.reloader_running.set(0);
    }
}

/// What a reload read: the new set, the accounts that kept their previous key (and why), and
/// the changed settings that need a restart.
struct Reloaded {
    minters: Minters,
    domain: Domain,
    kept: Vec<String>,
    needs_restart: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sections a reload applies, each rebuilt by the function start-up uses too: `token`
    /// and `accounts` by [`read_credentials`] and [`minter_for`]; `auth`, `rate_limit` and
    /// `policy` by [`build_domain`].
    const RELOADED: [&str; 5] = ["token", "accounts", "auth", "rate_limit", "policy"];

    /// A section added to `Settings` must be either rebuilt by a reload (through the functions
    /// start-up uses) or named as needing a restart; never silently ignored by a reload.
    #[test]
    fn every_section_is_either_reloaded_or_named_as_needing_a_restart() {
        let settings = Settings::from_toml(None, false, &crate::env::EnvVars::default()).unwrap();
        let json = serde_json::json!(settings);
        let mut sections: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        let mut classified: Vec<&str> = READ_AT_START_UP.iter().chain(&RELOADED).copied().collect();
        sections.sort_unstable();
        classified.sort_unstable();
        assert_eq!(sections, classified);
    }
}
