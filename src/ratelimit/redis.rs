//! The shared store: the same GCRA in one atomic Lua script on Redis (run by EVALSHA), so every
//! replica enforces one limit. Redis's own clock is used, so replicas with drifting clocks
//! still agree. Keys expire when their state is back to fresh, so Redis memory stays bounded.
//!
//! The connection is one multiplexed, auto-reconnecting `ConnectionManager` (redis-rs's
//! recommended shared connection: every request pipelines over it, no pool needed), created
//! lazily so start-up never waits for Redis. Each call has a timeout. When Redis fails, the
//! store is marked down (logged once) and the configured mode applies until a background PING
//! finds it back (logged once).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use prometheus::{IntCounter, IntGauge};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::QuotaSettings;
use super::memory::Remaining;

/// GCRA: KEYS[1] the key; ARGV[1] the emission interval in µs; ARGV[2] the burst. Returns
/// {1, remaining, µs until full} when allowed, {0, µs until allowed} when refused.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if now < allow_at then
  return {0, allow_at - now}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
return {1, math.floor((now - allow_at) / interval), new_tat - now}
";

/// The `[rate_limit.redis]` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// The variable (or `<NAME>_FILE`) holding the URL, `redis://[:password@]host:6379/0`;
    /// it can carry a password, so it is never in the configuration file.
    pub url_env: String,
    /// Longest wait for one Redis call, in milliseconds.
    pub timeout_ms: u64,
    /// What happens while Redis is unreachable.
    pub on_error: OnError,
    /// Prefix of every key tokenmint writes.
    pub key_prefix: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Keep serving, limited by each replica's in-memory limiter.
    FailOpen,
    /// Refuse token requests with 503 (and fail readiness) until Redis is back.
    FailClosed,
}

/// Why the shared store gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the rate-limit store is marked unreachable")]
    Down,
    #[error("the rate-limit store did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the rate-limit store failed: {0}")]
    Redis(#[from] redis::RedisError),
}

pub struct RedisStore {
    connection: ConnectionManager,
    script: redis::Script,
    timeout: Duration,
    prefix: String,
    pub on_error: OnError,
    up: AtomicBool,
    up_gauge: IntGauge,
    errors: IntCounter,
}

impl RedisStore {
    /// Prepares the store; nothing is sent to Redis until the first call.
    pub fn connect_lazily(url: &SecretString, settings: &RedisSettings) -> Result<Self, String> {
        let client = redis::Client::open(url.expose_secret())
            .map_err(|_| format!("{} is not a Redis URL: write redis://[:password@]host:port/db", settings.url_env))?;
        let timeout = Duration::from_millis(settings.timeout_ms);
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| format!("the Redis connection could not be prepared: {:?}", e.kind()))?;
        let (up_gauge, errors) = crate::metrics::ratelimit_store();
        up_gauge.set(1);
        Ok(Self {
            connection,
            script: redis::Script::new(GCRA),
            timeout,
            prefix: settings.key_prefix.clone(),
            on_error: settings.on_error,
            up: AtomicBool::new(true),
            up_gauge,
            errors,
        })
    }

    /// This store's series, for the app's registry.
    pub fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![Box::new(self.up_gauge.clone()), Box::new(self.errors.clone())]
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// One GCRA step for `key` under the quota named `limit`.
    pub async fn check(
        &self,
        limit: &str,
        key: &str,
        quota: QuotaSettings,
    ) -> Result<Result<Remaining, u64>, StoreError> {
        if !self.is_up() {
            return Err(StoreError::Down);
        }
        let interval_micros = 60_000_000 / u64::from(quota.per_minute.max(1));
        let mut connection = self.connection.clone();
        let mut invocation = self.script.key(format!("{}{limit}:{key}", self.prefix));
        invocation.arg(interval_micros).arg(quota.burst);
        let reply: Result<Vec<i64>, StoreError> =
            match tokio::time::timeout(self.timeout, invocation.invoke_async(&mut connection)).await {
                Ok(reply) => reply.map_err(StoreError::from),
                Err(_) => Err(StoreError::Timeout(self.timeout)),
            };
        let reply = reply.inspect_err(|e| {
            self.errors.inc();
            self.mark(false, Some(e));
        })?;
        let micros_to_secs = |micros: i64| (micros.max(0) as u64).div_ceil(1_000_000);
        Ok(match reply[..] {
            [1, remaining, full_in] => {
                Ok(Remaining { remaining: remaining.max(0) as u32, full_in_secs: micros_to_secs(full_in) })
            }
            [0, wait, ..] => Err(micros_to_secs(wait).max(1)),
            _ => {
                return Err(StoreError::Redis(redis::RedisError::from((
                    redis::ErrorKind::Parse,
                    "unexpected GCRA reply",
                ))));
            }
        })
    }

    /// PINGs Redis and records the outcome; run on a schedule so recovery is noticed.
    pub async fn probe(&self) {
        let mut connection = self.connection.clone();
        let ping = redis::cmd("PING");
        match tokio::time::timeout(
            self.timeout.max(Duration::from_millis(250)),
            ping.query_async::<String>(&mut connection),
        )
        .await
        {
            Ok(Ok(_)) => self.mark(true, None),
            Ok(Err(e)) => self.mark(false, Some(&StoreError::Redis(e))),
            Err(_) => self.mark(false, Some(&StoreError::Timeout(self.timeout))),
        }
    }

    /// Records the state, logging only when it changes.
    fn mark(&self, up: bool, error: Option<&StoreError>) {
        if self.up.swap(up, Ordering::Relaxed) == up {
            return;
        }
        self.up_gauge.set(i64::from(up));
        let mode = match self.on_error {
            OnError::FailOpen => "failing open: each replica limits in memory",
            OnError::FailClosed => "failing closed: token requests get 503",
        };
        match error {
            Some(e) => tracing::error!(reason = %e, "the rate-limit store is unreachable; {mode}"),
            None => tracing::warn!("the rate-limit store answers again; limits are shared once more"),
        }
    }
}
