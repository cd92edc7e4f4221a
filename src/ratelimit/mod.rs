//! Rate limits: GCRA quotas per client IP (checked before authentication, so bad credentials
//! cannot burn CPU) and per authenticated principal (after). Pure of HTTP: the layers in
//! `http::layers` call [`RateLimiter::check_ip`] and [`RateLimiter::check_identity`] and turn
//! a [`Limited`] into a 429.
//!
//! The in-memory store is `governor`'s keyed GCRA limiter, one per quota. Stale keys (whose
//! state equals a fresh one) are evicted on a schedule, and IPv6 clients are keyed by their /64
//! so that one host cannot spray addresses to dodge its limit or grow the table.

mod memory;

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

pub use memory::KeyedLimiter;

/// The `[rate_limit]` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Per client IP, before authentication.
    pub per_ip: QuotaSettings,
    /// Per-route overrides of `per_ip`, keyed by route template (e.g. `"/v1/tokens"`).
    #[serde(default)]
    pub routes: BTreeMap<String, QuotaSettings>,
    /// Per authenticated principal (an app user, or a backend key).
    pub per_identity: QuotaSettings,
    /// Per-role overrides of `per_identity`; a principal with several gets the most generous.
    #[serde(default)]
    pub roles: BTreeMap<String, QuotaSettings>,
    /// How often stale keys are evicted from memory, in seconds.
    pub eviction_interval_secs: u64,
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
    pub policy: String,
    pub state: String,
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
}

impl Limit {
    fn new(name: String, settings: QuotaSettings) -> Self {
        Self { limiter: KeyedLimiter::new(settings), name, settings }
    }

    fn check(&self, scope: Scope, key: &str) -> Result<RateLimitFields, Limited> {
        let policy = format!("\"{}\";q={};w=60", self.name, self.settings.per_minute);
        match self.limiter.check(key) {
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
    per_ip: Limit,
    routes: BTreeMap<String, Limit>,
    per_identity: Limit,
    roles: Vec<(String, Limit)>,
}

impl RateLimiter {
    pub fn from_settings(settings: &RateLimitSettings) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
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
        if settings.eviction_interval_secs == 0 {
            problems.push("rate_limit.eviction_interval_secs must be at least 1".into());
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut roles: Vec<(String, Limit)> =
            settings.roles.iter().map(|(role, q)| (role.clone(), Limit::new(format!("identity:{role}"), *q))).collect();
        // Most generous first, so the first role a principal holds is the one that applies.
        roles.sort_by_key(|(_, limit)| std::cmp::Reverse((limit.settings.per_minute, limit.settings.burst)));
        Ok(Self {
            per_ip: Limit::new("ip".into(), settings.per_ip),
            routes: settings
                .routes
                .iter()
                .map(|(route, q)| (route.clone(), Limit::new(format!("ip:{route}"), *q)))
                .collect(),
            per_identity: Limit::new("identity".into(), settings.per_identity),
            roles,
        })
    }

    /// The per-IP limit for `route` (a route template).
    pub fn check_ip(&self, route: &str, ip: IpAddr) -> Result<RateLimitFields, Limited> {
        self.routes.get(route).unwrap_or(&self.per_ip).check(Scope::Ip, &ip_key(ip))
    }

    /// The per-principal limit; `principal` is a stable key for who authenticated.
    pub fn check_identity(&self, principal: &str, roles: &[String]) -> Result<RateLimitFields, Limited> {
        let limit =
            self.roles.iter().find(|(role, _)| roles.contains(role)).map_or(&self.per_identity, |(_, limit)| limit);
        limit.check(Scope::Identity, principal)
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
        }
    }

    #[test]
    fn a_burst_is_allowed_then_refused_with_a_retry_time() {
        let limiter = RateLimiter::from_settings(&settings()).unwrap();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for remaining in [2, 1, 0] {
            let fields = limiter.check_ip("/v1/tokens", ip).unwrap();
            assert_eq!(fields.policy, "\"ip\";q=60;w=60");
            assert!(fields.state.starts_with(&format!("\"ip\";r={remaining};t=")), "{}", fields.state);
        }
        let limited = limiter.check_ip("/v1/tokens", ip).unwrap_err();
        assert_eq!(limited.scope, Scope::Ip);
        assert_eq!(limited.retry_after_secs, 1);
        assert_eq!(limited.fields.state, "\"ip\";r=0;t=1");
        assert!(limiter.check_ip("/v1/tokens", "192.0.2.2".parse().unwrap()).is_ok(), "other IPs are unaffected");
    }

    #[test]
    fn routes_and_roles_override_the_defaults() {
        let limiter = RateLimiter::from_settings(&settings()).unwrap();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(limiter.check_ip("/special", ip).is_ok());
        assert!(limiter.check_ip("/special", ip).is_err());
        let both = ["kiosk".to_owned(), "backend".to_owned()];
        for _ in 0..50 {
            assert!(limiter.check_identity("api_key:billing", &both).is_ok(), "the most generous role applies");
        }
        assert!(limiter.check_identity("kiosk", &["kiosk".into()]).is_ok());
        assert!(limiter.check_identity("kiosk", &["kiosk".into()]).is_err());
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
        let problems = RateLimiter::from_settings(&bad).err().unwrap();
        assert_eq!(problems.len(), 2, "{problems:?}");
    }
}
