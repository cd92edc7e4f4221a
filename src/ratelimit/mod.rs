//! Rate limits: GCRA quotas per client IP (checked before authentication, so bad credentials
//! cannot burn CPU) and per authenticated principal (after). Pure of HTTP: the layers in
//! `http::layers` call [`RateLimiter::check_ip`] and [`RateLimiter::check_identity`] and turn
//! a [`Limited`] into a 429.
//!
//! The in-memory store is `governor`'s keyed GCRA limiter, one per quota. Stale keys (whose
//! state equals a fresh one) are evicted on a schedule, and IPv6 clients are keyed by their /64
//! so that one host cannot spray addresses to dodge its limit or grow the table.

mod memory;
mod redis;

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use tracing::Instrument;

pub use memory::KeyedLimiter;
pub use redis::{OnError, RedisSettings, RedisStore};

use crate::env::EnvVars;

/// The routes that mint. A per-route limit set for one of them covers both, as one count: a
/// client held back on one must not go on minting through the other.
pub const MINT_ROUTES: [&str; 2] = ["/v1/tokens", "/oauth2/token"];
/// The name of that one count (`RateLimit-Policy: "ip:mint"`).
const MINT_GROUP: &str = "mint";

/// The route a limit is kept under: the minting routes are one.
fn route_group(route: &str) -> &str {
    if MINT_ROUTES.contains(&route) { MINT_GROUP } else { route }
}

/// The `[rate_limit]` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Per client IP, before authentication.
    pub per_ip: QuotaSettings,
    /// Per-route overrides of `per_ip`, keyed by route template (e.g. `"/v1/tokens"`); one for a
    /// route that mints covers every route that mints ([`MINT_ROUTES`]).
    #[serde(default)]
    pub routes: BTreeMap<String, QuotaSettings>,
    /// Per authenticated principal (an app user, or a backend key).
    pub per_identity: QuotaSettings,
    /// Per-role overrides of `per_identity`; a principal with several gets the most generous.
    #[serde(default)]
    pub roles: BTreeMap<String, QuotaSettings>,
    /// How often stale keys are evicted from memory, in seconds.
    pub eviction_interval_secs: u64,
    /// `memory` (each replica counts alone) or `redis` (every replica shares one count).
    pub store: StoreKind,
    /// The shared store, used when `store = "redis"`.
    pub redis: RedisSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    Memory,
    Redis,
}

/// Where counts are kept right now, for readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreStatus {
    Memory,
    Shared,
    SharedDownFailingOpen,
    SharedDownFailingClosed,
}

impl StoreStatus {
    pub fn label(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Shared => "redis",
            Self::SharedDownFailingOpen => "redis unreachable, failing open to memory",
            Self::SharedDownFailingClosed => "redis unreachable, failing closed",
        }
    }
}

/// A GCRA quota: `per_minute` requests a minute on average, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaSettings {
    pub per_minute: u32,
    pub burst: u32,
}

/// Which limit refused a request: the metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Ip,
    Identity,
}

impl Scope {
    pub fn label(self) -> &'static str {
        match self {
            Self::Ip => "ip",
            Self::Identity => "identity",
        }
    }
}

/// The IETF `RateLimit-Policy` and `RateLimit` field members for one quota
/// (draft-ietf-httpapi-ratelimit-headers: `"name";q=…;w=…` and `"name";r=…;t=…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitFields {
    /// Fixed per quota, so shared rather than written for each request.
    pub policy: std::sync::Arc<str>,
    pub state: String,
}

/// Why a request may not proceed.
#[derive(Debug, thiserror::Error)]
pub enum RateLimitError {
    #[error(transparent)]
    Limited(#[from] Limited),
    /// The shared store is unreachable and the configuration says to fail closed.
    #[error("the shared rate-limit store is unreachable")]
    StoreUnavailable,
}

/// A request refused by a limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {} rate limit is exhausted; retry after {retry_after_secs} s", scope.label())]
pub struct Limited {
    pub scope: Scope,
    pub retry_after_secs: u64,
    pub fields: RateLimitFields,
}

/// A named quota with its limiter.
struct Limit {
    name: String,
    settings: QuotaSettings,
    limiter: KeyedLimiter,
    /// The `RateLimit-Policy` member, which never changes: built once, cloned per response.
    policy: std::sync::Arc<str>,
}

impl Limit {
    fn new(name: String, settings: QuotaSettings) -> Self {
        let policy = format!("\"{name}\";q={};w=60", settings.per_minute).into();
        Self { limiter: KeyedLimiter::new(settings), name, settings, policy }
    }

    /// Checks `key` in the shared store when there is one, else (or, failing open, when it is
    /// unreachable) in memory. The span (for traces) names the limit and the store, never the key.
    async fn check(
        &self,
        scope: Scope,
        key: &str,
        shared: Option<&RedisStore>,
    ) -> Result<RateLimitFields, RateLimitError> {
        let span = tracing::debug_span!(
            "rate_limit",
            scope = scope.label(),
            limit = %self.name,
            store = if shared.is_some() { "redis" } else { "memory" },
            fell_back = tracing::field::Empty,
        );
        let verdict = match shared {
            None => span.in_scope(|| self.limiter.check(key)),
            Some(store) => match store.check(&self.name, key, self.settings).instrument(span.clone()).await {
                Ok(verdict) => verdict,
                Err(_) if store.on_error == OnError::FailOpen => {
                    span.record("fell_back", "memory");
                    self.limiter.check(key)
                }
                Err(_) => return Err(RateLimitError::StoreUnavailable),
            },
        };
        Ok(self.fields(scope, verdict)?)
    }

    fn fields(&self, scope: Scope, verdict: Result<memory::Remaining, u64>) -> Result<RateLimitFields, Limited> {
        let policy = self.policy.clone();
        match verdict {
            Ok(state) => Ok(RateLimitFields {
                policy,
                state: format!("\"{}\";r={};t={}", self.name, state.remaining, state.full_in_secs),
            }),
            Err(retry_after_secs) => Err(Limited {
                scope,
                retry_after_secs,
                fields: RateLimitFields { policy, state: format!("\"{}\";r=0;t={retry_after_secs}", self.name) },
            }),
        }
    }
}

/// Every configured limit.
pub struct RateLimiter {
    /// What it was built from (settings and the store's URL), to tell whether a reload changes
    /// it; an unchanged limiter is kept, with its counts.
    inputs: [u8; 32],
    per_ip: Limit,
    routes: BTreeMap<String, Limit>,
    per_identity: Limit,
    roles: Vec<(String, Limit)>,
    shared: Option<RedisStore>,
}

impl RateLimiter {
    /// Builds the limits; with `store = "redis"`, reads the URL from `env` (nothing is sent to
    /// Redis yet).
    pub fn from_settings(settings: &RateLimitSettings, env: &EnvVars) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let shared = match settings.store {
            StoreKind::Memory => None,
            StoreKind::Redis => {
                let name = &settings.redis.url_env;
                match env.secret(name) {
                    Ok(Some(url)) => {
                        RedisStore::connect_lazily(&url, &settings.redis).map_err(|e| problems.push(e)).ok()
                    }
                    Ok(None) => {
                        problems.push(format!(
                            "{name} (named by rate_limit.redis.url_env) is not set: set it, or {name}_FILE, to redis://[:password@]host:6379/0, or use rate_limit.store = \"memory\""
                        ));
                        None
                    }
                    Err(e) => {
                        problems.push(e.to_string());
                        None
                    }
                }
            }
        };
        problems.extend(crate::bounds::out_of_range(
            "rate_limit.redis.timeout_ms",
            settings.redis.timeout_ms,
            1..=10_000,
            "milliseconds",
        ));
        let mut check = |key: String, quota: &QuotaSettings| {
            if quota.per_minute == 0 || quota.burst == 0 {
                problems.push(format!("{key}: per_minute and burst must be at least 1"));
            }
        };
        check("rate_limit.per_ip".into(), &settings.per_ip);
        check("rate_limit.per_identity".into(), &settings.per_identity);
        for (route, quota) in &settings.routes {
            check(format!("rate_limit.routes.\"{route}\""), quota);
        }
        for (role, quota) in &settings.roles {
            check(format!("rate_limit.roles.{role}"), quota);
        }
        let mint_quotas: Vec<&QuotaSettings> =
            MINT_ROUTES.iter().filter_map(|route| settings.routes.get(*route)).collect();
        if mint_quotas.windows(2).any(|pair| pair[0] != pair[1]) {
            problems.push(format!(
                "rate_limit.routes: {} and {} both mint tokens and share one per-IP count, so they cannot have different limits: keep one of them",
                MINT_ROUTES[0], MINT_ROUTES[1]
            ));
        }
        problems.extend(crate::bounds::out_of_range(
            "rate_limit.eviction_interval_secs",
            settings.eviction_interval_secs,
            1..=3_600,
            "seconds",
        ));
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut roles: Vec<(String, Limit)> =
            settings.roles.iter().map(|(role, q)| (role.clone(), Limit::new(format!("identity:{role}"), *q))).collect();
        // Most generous first, so the first role a principal holds is the one that applies.
        roles.sort_by_key(|(_, limit)| std::cmp::Reverse((limit.settings.per_minute, limit.settings.burst)));
        Ok(Self {
            inputs: Self::inputs(settings, env),
            per_ip: Limit::new("ip".into(), settings.per_ip),
            routes: settings
                .routes
                .iter()
                .map(|(route, q)| (route_group(route).to_owned(), Limit::new(format!("ip:{}", route_group(route)), *q)))
                .collect(),
            per_identity: Limit::new("identity".into(), settings.per_identity),
            roles,
            shared,
        })
    }

    fn inputs(settings: &RateLimitSettings, env: &EnvVars) -> [u8; 32] {
        env.fingerprint(settings, &[settings.redis.url_env.as_str()])
    }

    /// Whether these settings (and the store's URL) are the ones it was built from.
    pub fn built_from(&self, settings: &RateLimitSettings, env: &EnvVars) -> bool {
        self.inputs == Self::inputs(settings, env)
    }

    /// The per-IP limit for `route` (a route template).
    pub async fn check_ip(&self, route: &str, ip: IpAddr) -> Result<RateLimitFields, RateLimitError> {
        let limit = self.routes.get(route_group(route)).unwrap_or(&self.per_ip);
        limit.check(Scope::Ip, &ip_key(ip), self.shared.as_ref()).await
    }

    /// The per-principal limit; `principal` is a stable key for who authenticated.
    pub async fn check_identity(&self, principal: &str, roles: &[String]) -> Result<RateLimitFields, RateLimitError> {
        let limit =
            self.roles.iter().find(|(role, _)| roles.contains(role)).map_or(&self.per_identity, |(_, limit)| limit);
        limit.check(Scope::Identity, principal, self.shared.as_ref()).await
    }

    /// Where counts are kept right now.
    pub fn store_status(&self) -> StoreStatus {
        match &self.shared {
            None => StoreStatus::Memory,
            Some(store) if store.is_up() => StoreStatus::Shared,
            Some(store) if store.on_error == OnError::FailOpen => StoreStatus::SharedDownFailingOpen,
            Some(_) => StoreStatus::SharedDownFailingClosed,
        }
    }

    /// The shared store, if one is configured (for its health probe and metrics).
    pub fn shared_store(&self) -> Option<&RedisStore> {
        self.shared.as_ref()
    }

    /// Drops keys whose state is indistinguishable from a fresh one; returns how many remain.
    pub fn evict_stale(&self) -> usize {
        let limits = [&self.per_ip, &self.per_identity]
            .into_iter()
            .chain(self.routes.values())
            .chain(self.roles.iter().map(|(_, l)| l));
        limits.map(|limit| limit.limiter.evict_stale()).sum()
    }
}

/// Keeps the limits in shape while the service runs: drops stale in-memory keys every
/// `eviction_interval_secs` (so memory stays bounded) and, with a shared store, PINGs it every
/// second so an outage and a recovery are noticed. It asks `current` for the limiter each time,
/// so one a reload put in place is looked after too.
pub fn spawn_upkeep(
    current: impl Fn() -> std::sync::Arc<RateLimiter> + Send + 'static,
    eviction_interval_secs: u64,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut probe = tokio::time::interval(std::time::Duration::from_secs(1));
        probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut since_eviction = 0;
        loop {
            probe.tick().await;
            let limiter = current();
            if let Some(store) = limiter.shared_store() {
                store.probe().await;
            }
            since_eviction += 1;
            if since_eviction >= eviction_interval_secs {
                since_eviction = 0;
                let tracked = limiter.evict_stale();
                tracing::debug!(tracked, "evicted stale rate-limit keys");
            }
        }
    })
}

/// IPv4 addresses as they are; IPv6 by /64, the block one host or subscriber usually holds.
fn ip_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> RateLimitSettings {
        RateLimitSettings {
            per_ip: QuotaSettings { per_minute: 60, burst: 3 },
            routes: BTreeMap::from([("/special".into(), QuotaSettings { per_minute: 60, burst: 1 })]),
            per_identity: QuotaSettings { per_minute: 60, burst: 2 },
            roles: BTreeMap::from([
                ("backend".into(), QuotaSettings { per_minute: 6000, burst: 100 }),
                ("kiosk".into(), QuotaSettings { per_minute: 10, burst: 1 }),
            ]),
            eviction_interval_secs: 60,
            store: StoreKind::Memory,
            redis: RedisSettings {
                url_env: "REDIS_URL".into(),
                timeout_ms: 50,
                on_error: OnError::FailOpen,
                key_prefix: "t:".into(),
            },
        }
    }

    #[tokio::test]
    async fn a_limit_on_one_minting_route_covers_the_other_as_one_count() {
        let mut mint = settings();
        mint.routes.insert("/v1/tokens".into(), QuotaSettings { per_minute: 1, burst: 2 });
        let limiter = limiter(&mint);
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        assert!(limiter.check_ip("/v1/tokens", ip).await.is_ok());
        assert!(limiter.check_ip("/oauth2/token", ip).await.is_ok());
        let refused = limited(limiter.check_ip("/oauth2/token", ip).await);
        assert_eq!(&*refused.fields.policy, "\"ip:mint\";q=1;w=60");
        limited(limiter.check_ip("/v1/tokens", ip).await);
        assert!(limiter.check_ip("/readyz", ip).await.is_ok(), "other routes keep per_ip");

        mint.routes.insert("/oauth2/token".into(), QuotaSettings { per_minute: 100, burst: 50 });
        let problems = RateLimiter::from_settings(&mint, &EnvVars::default()).err().unwrap();
        assert!(problems[0].contains("both mint tokens"), "{problems:?}");
    }

    fn limiter(settings: &RateLimitSettings) -> RateLimiter {
        RateLimiter::from_settings(settings, &EnvVars::default()).unwrap()
    }

    fn limited(result: Result<RateLimitFields, RateLimitError>) -> Limited {
        match result {
            Err(RateLimitError::Limited(limited)) => limited,
            other => panic!("expected a limit, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_burst_is_allowed_then_refused_with_a_retry_time() {
        let limiter = limiter(&settings());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for remaining in [2, 1, 0] {
            let fields = limiter.check_ip("/v1/tokens", ip).await.unwrap();
            assert_eq!(&*fields.policy, "\"ip\";q=60;w=60");
            assert!(fields.state.starts_with(&format!("\"ip\";r={remaining};t=")), "{}", fields.state);
        }
        let limited = limited(limiter.check_ip("/v1/tokens", ip).await);
        assert_eq!(limited.scope, Scope::Ip);
        assert_eq!(limited.retry_after_secs, 1);
        assert_eq!(limited.fields.state, "\"ip\";r=0;t=1");
        assert!(limiter.check_ip("/v1/tokens", "192.0.2.2".parse().unwrap()).await.is_ok(), "other IPs are unaffected");
    }

    #[tokio::test]
    async fn routes_and_roles_override_the_defaults() {
        let limiter = limiter(&settings());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(limiter.check_ip("/special", ip).await.is_ok());
        limited(limiter.check_ip("/special", ip).await);
        let both = ["kiosk".to_owned(), "backend".to_owned()];
        for _ in 0..50 {
            assert!(limiter.check_identity("api_key:billing", &both).await.is_ok(), "the most generous role applies");
        }
        assert!(limiter.check_identity("kiosk", &["kiosk".into()]).await.is_ok());
        limited(limiter.check_identity("kiosk", &["kiosk".into()]).await);
    }

    #[test]
    fn a_redis_store_needs_its_url_variable() {
        let mut redis = settings();
        redis.store = StoreKind::Redis;
        let problems = RateLimiter::from_settings(&redis, &EnvVars::default()).err().unwrap();
        assert!(problems[0].starts_with("REDIS_URL (named by rate_limit.redis.url_env) is not set"), "{problems:?}");
        let bad: EnvVars = [("REDIS_URL", "http://user:hunter2@host")].into_iter().collect();
        let problems = RateLimiter::from_settings(&redis, &bad).err().unwrap();
        assert!(problems[0].contains("is not a Redis URL") && !problems[0].contains("hunter2"), "{problems:?}");
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_slash_64() {
        assert_eq!(ip_key("2001:db8:1:2:aaaa::1".parse().unwrap()), "2001:db8:1:2::/64");
        assert_eq!(ip_key("2001:db8:1:2:bbbb::9".parse().unwrap()), "2001:db8:1:2::/64");
        assert_eq!(ip_key("::ffff:192.0.2.7".parse().unwrap()), "192.0.2.7");
    }

    #[test]
    fn zero_quotas_are_configuration_errors() {
        let mut bad = settings();
        bad.per_ip.burst = 0;
        bad.roles.insert("x".into(), QuotaSettings { per_minute: 0, burst: 1 });
        let problems = RateLimiter::from_settings(&bad, &EnvVars::default()).err().unwrap();
        assert_eq!(problems.len(), 2, "{problems:?}");
    }
}
