//! What a running service holds: the parts a reload swaps (authentication, rate limits, policy,
//! the Twilio accounts' minters), its metrics and health, shared by every request through one
//! `Arc`. Plain values, no HTTP: the routes in `http` and `tokenmint mint` use it alike.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;

use crate::accounts::Minters;
use crate::auth::Authenticator;
use crate::config::ForwardingTrust;
use crate::metrics::Metrics;
use crate::policy::Policy;
use crate::ratelimit::RateLimiter;

/// What every handler and layer can reach. Middleware clones it on every request, so it is one
/// `Arc`: a clone is one atomic increment, whatever `App` holds.
#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl std::ops::Deref for AppState {
    type Target = App;

    fn deref(&self) -> &App {
        &self.0
    }
}

/// The application's shared parts.
pub struct App {
    /// Authentication and rate limits are swapped whole by a reload too (an unchanged one is
    /// kept as it is, with its caches and counts).
    pub authenticator: ArcSwap<Authenticator>,
    /// The policy and the minters (one per Twilio account) are swapped whole by a reload; a
    /// request loads each once, without a lock, and keeps that version to the end.
    pub policy: ArcSwap<Policy>,
    pub minters: ArcSwap<Minters>,
    pub health: Arc<Health>,
    pub limiter: ArcSwap<RateLimiter>,
    pub metrics: Metrics,
    /// Where each minted token's record is written before the token is handed out.
    pub audit: crate::audit::AuditTrail,
    /// Peers whose forwarding header names the client, and which header that is.
    pub forwarding: ForwardingTrust,
    /// Largest accepted body, for the 413 message.
    pub body_limit_bytes: usize,
    /// `serve --dev`: the browser example is served at `/dev/`.
    pub dev: bool,
}

/// Process-wide health flags.
#[derive(Debug, Default)]
pub struct Health {
    draining: AtomicBool,
    reloader_running: AtomicBool,
}

impl Health {
    /// Marks the process as shutting down: readiness fails from now on.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Set by the reloader while it runs.
    pub fn set_reloader_running(&self, running: bool) {
        self.reloader_running.store(running, Ordering::SeqCst);
    }

    pub fn is_reloader_running(&self) -> bool {
        self.reloader_running.load(Ordering::SeqCst)
    }
}
