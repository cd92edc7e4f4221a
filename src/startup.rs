//! Assembling the service from validated parts, binding its listeners, and running it until a
//! shutdown signal, draining in-flight requests.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;

use crate::accounts::Minters;
use crate::accounts::{ACCOUNT_SID_VAR, API_KEY_VAR, CredentialVars, DEFAULT_ACCOUNT, TwilioCredentials};
use crate::app::{App, AppState, Health};
use crate::audit::AuditTrail;
use crate::auth::Authenticator;
use crate::config::Settings;
use crate::env::EnvVars;
use crate::http::server::{ConnectionLimits, serve};
use crate::http::{admin_router, api_router};
use crate::metrics::Metrics;
use crate::policy::Policy;
use crate::ratelimit::RateLimiter;

/// Everything the service needs, validated.
pub struct Runtime {
    pub settings: Settings,
    /// The default account's (`TWILIO_*`).
    pub credentials: TwilioCredentials,
    /// Each `[accounts.<name>]`'s (`TWILIO_<NAME>_*`).
    pub accounts: std::collections::BTreeMap<String, TwilioCredentials>,
    pub authenticator: Arc<Authenticator>,
    pub policy: Policy,
    pub limiter: Arc<RateLimiter>,
    /// `serve --dev`: the public listener also serves the browser example at `/dev/`.
    pub dev: bool,
}

/// Authentication, policy and rate limits: what start-up builds from the settings and a reload
/// builds again, through [`build_domain`] both times.
pub struct Domain {
    pub authenticator: Arc<Authenticator>,
    pub policy: Policy,
    pub limiter: Arc<RateLimiter>,
}

/// The running authentication and rate limits, which a reload keeps when their settings and
/// secrets did not change (so caches, key refresh tasks and counts go on).
#[derive(Clone, Copy)]
pub struct Running<'a> {
    pub authenticator: &'a Arc<Authenticator>,
    pub limiter: &'a Arc<RateLimiter>,
}

/// Every problem the settings have on their own (nothing read from the environment), as
/// sentences naming the key; start-up and reload check the same.
pub fn settings_problems(settings: &Settings, dev: bool) -> Vec<String> {
    let mut problems = settings.token.problems();
    problems.extend(settings.account_problems());
    problems.extend(settings.server.problems());
    problems.extend(settings.cors.problems());
    problems.extend(settings.reload.problems());
    problems.extend(settings.audit.problems());
    problems.extend(settings.trace.problems());
    if dev {
        for (key, addr) in
            [("server.listen", settings.server.listen), ("server.admin_listen", settings.server.admin_listen)]
        {
            if !addr.ip().is_loopback() {
                problems.push(format!(
                    "--dev refuses {key} = {addr}: dev mode uses placeholder secrets, so it listens on loopback only (e.g. 127.0.0.1:8080)"
                ));
            }
        }
    }
    problems
}

/// Builds authentication, policy and rate limits from `settings` and `env`; every problem at
/// once. A setting added to any of them is reloaded with no further code.
pub fn build_domain(settings: &Settings, env: &EnvVars, running: Option<Running<'_>>) -> Result<Domain, Vec<String>> {
    let mut problems = Vec::new();
    let authenticator = match running {
        Some(running) if running.authenticator.built_from(&settings.auth, env) => Some(running.authenticator.clone()),
        _ => Authenticator::from_settings(&settings.auth, env, running.map(|r| r.authenticator.as_ref()))
            .map(Arc::new)
            .map_err(|mut p| problems.append(&mut p))
            .ok(),
    };
    let (offers, mut offer_problems) = settings.account_offers();
    problems.append(&mut offer_problems);
    let policy = Policy::from_settings(&settings.policy, settings.token.default_ttl_secs, &offers)
        .map_err(|mut p| problems.append(&mut p))
        .ok();
    let limiter = match running {
        Some(running) if running.limiter.built_from(&settings.rate_limit, env) => Some(running.limiter.clone()),
        _ => RateLimiter::from_settings(&settings.rate_limit, env)
            .map(Arc::new)
            .map_err(|mut p| problems.append(&mut p))
            .ok(),
    };
    match (authenticator, policy, limiter) {
        (Some(authenticator), Some(policy), Some(limiter)) if problems.is_empty() => {
            Ok(Domain { authenticator, policy, limiter })
        }
        _ => Err(problems),
    }
}

/// Every account's credentials, read from `env` the same way at start-up and on reload, the
/// default account first; `placeholder` stands in for the default account's (`--dev`). A
/// problem is one sentence naming the variable (and the account, for a named one).
pub fn read_credentials<'a>(
    settings: &'a Settings,
    env: &EnvVars,
    placeholder: Option<&TwilioCredentials>,
) -> Vec<(&'a str, Result<TwilioCredentials, String>)> {
    let read = |name: &str| match placeholder {
        Some(placeholder) if name == DEFAULT_ACCOUNT => Ok(placeholder.clone()),
        _ => TwilioCredentials::from_vars(env, &CredentialVars::for_account(name))
            .map_err(|e| if name == DEFAULT_ACCOUNT { e.to_string() } else { format!("accounts.{name}: {e}") }),
    };
    settings.account_names().into_iter().map(|name| (name, read(name))).collect()
}

/// The minter of one account: its credentials with the `[token]` settings and its region.
pub fn minter_for(settings: &Settings, account: &str, credentials: &TwilioCredentials) -> crate::token::TokenMinter {
    credentials.minter(&settings.token_settings_for(account))
}

impl Runtime {
    /// Validates settings, credentials, authentication and policy; every problem at once.
    /// With `dev`, missing Twilio credentials become placeholders and the listeners must be on
    /// loopback.
    pub fn assemble(settings: Settings, env: &EnvVars, dev: bool) -> Result<Self, Vec<String>> {
        let mut problems = settings_problems(&settings, dev);
        let placeholder = (dev && !env.is_set(API_KEY_VAR) && !env.is_set(ACCOUNT_SID_VAR))
            .then(|| TwilioCredentials::placeholder(crate::dev::random_secret().into()));
        let (mut credentials, mut accounts) = (None, std::collections::BTreeMap::new());
        for (name, read) in read_credentials(&settings, env, placeholder.as_ref()) {
            match read {
                Ok(read) if name == DEFAULT_ACCOUNT => credentials = Some(read),
                Ok(read) => {
                    accounts.insert(name.to_owned(), read);
                }
                Err(problem) => problems.push(problem),
            }
        }
        let domain = build_domain(&settings, env, None).map_err(|mut p| problems.append(&mut p)).ok();
        match (credentials, domain) {
            (Some(credentials), Some(Domain { authenticator, policy, limiter })) if problems.is_empty() => {
                Ok(Self { settings, credentials, accounts, authenticator, policy, limiter, dev })
            }
            _ => Err(problems),
        }
    }
}

impl Runtime {
    /// The state every handler shares (starting the audit writer); the settings stay with the
    /// caller for the routers and listeners. The fuzzers call the routers with it in-process,
    /// without listeners.
    pub fn into_state(self) -> std::io::Result<(AppState, Settings)> {
        let Runtime { settings, credentials, accounts, authenticator, policy, limiter, dev } = self;
        let metrics = Metrics::new();
        let audit = AuditTrail::start(&settings.audit, metrics.audit_records.clone())?;
        for collector in limiter.shared_store().map(|store| store.collectors()).unwrap_or_default() {
            metrics.register(collector);
        }
        for collector in authenticator.collectors() {
            metrics.register(collector);
        }
        let state = AppState(Arc::new(App {
            authenticator: ArcSwap::new(authenticator),
            policy: ArcSwap::from_pointee(policy),
            minters: ArcSwap::from_pointee(Minters::new(
                Arc::new(minter_for(&settings, DEFAULT_ACCOUNT, &credentials)),
                accounts
                    .iter()
                    .map(|(name, credentials)| (name.clone(), Arc::new(minter_for(&settings, name, credentials)))),
            )),
            health: Arc::new(Health::default()),
            metrics,
            audit,
            limiter: ArcSwap::new(limiter),
            forwarding: settings.server.forwarding(),
            body_limit_bytes: settings.server.body_limit_bytes,
            dev,
        }));
        Ok((state, settings))
    }
}

/// The bound service, ready to run.
pub struct Application {
    public: TcpListener,
    admin: TcpListener,
    state: AppState,
    settings: Settings,
}

impl Application {
    /// Binds both listeners (port 0 picks a free port, as tests do).
    pub async fn build(runtime: Runtime) -> std::io::Result<Self> {
        let public = bind("server.listen", runtime.settings.server.listen).await?;
        let admin = bind("server.admin_listen", runtime.settings.server.admin_listen).await?;
        let (state, settings) = runtime.into_state()?;
        Ok(Self { public, admin, state, settings })
    }

    pub fn public_addr(&self) -> SocketAddr {
        self.public.local_addr().expect("a bound listener has an address")
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin.local_addr().expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes. Then readiness fails at once while both listeners keep
    /// serving for `server.drain_delay_ms` (every response says `Connection: close`, so clients
    /// move to other replicas), so the load balancer notices; a second SIGTERM or Ctrl-C ends
    /// the wait early. Then the listeners close, idle connections close, and in-flight requests
    /// finish (each bounded by the request timeout).
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let health = self.state.health.clone();
        let drain_delay = self.settings.server.drain_delay();
        tokio::spawn(async move {
            shutdown.await;
            health.start_draining();
            if !drain_delay.is_zero() {
                tracing::info!(
                    drain_delay_ms = drain_delay.as_millis() as u64,
                    "draining: readiness fails from now on"
                );
                tokio::select! {
                    () = tokio::time::sleep(drain_delay) => {}
                    () = shutdown_signal() => tracing::info!("second signal: ending the drain early"),
                }
            }
            tracing::info!("shutting down: closing listeners, finishing in-flight requests");
            let _ = stop_tx.send(true);
        });
        let stopped = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|stop| *stop).await;
            }
        };
        tracing::info!(
            public = %self.public_addr(),
            admin = %self.admin_addr(),
            key_sid = %self.state.minters.load().default_account().key_sid(),
            "listening"
        );
        let limiter = self.state.clone();
        let eviction = crate::ratelimit::spawn_upkeep(
            move || limiter.limiter.load_full(),
            self.settings.rate_limit.eviction_interval_secs,
        );
        let key_refresh = self.state.authenticator.load().spawn_key_refresh();
        let server = &self.settings.server;
        let limits = || ConnectionLimits {
            header_read_timeout: server.header_read_timeout(),
            max_connections: server.max_connections,
            max_connections_per_ip: server.max_connections_per_ip,
            trust: self.state.forwarding.clone(),
        };
        let metrics = &self.state.metrics;
        let public = serve(
            self.public,
            api_router(self.state.clone(), server, &self.settings.cors),
            limits(),
            metrics.clone(),
            stopped(),
        );
        let admin = serve(self.admin, admin_router(self.state.clone(), server), limits(), metrics.clone(), stopped());
        tokio::join!(public, admin);
        // Records a best-effort trail still holds (the others were written before their tokens
        // left).
        self.state.audit.flush(std::time::Duration::from_secs(2)).await;
        eviction.abort();
        key_refresh.iter().for_each(tokio::task::JoinHandle::abort);
        Ok(())
    }
}

async fn bind(key: &str, addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("{key} = {addr} cannot be bound ({e}): stop whatever holds it, or choose another address with TOKENMINT__{}", key.to_uppercase().replace('.', "__")),
        )
    })
}

/// Completes on SIGTERM (what orchestrators send) or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = terminate => {} }
}
