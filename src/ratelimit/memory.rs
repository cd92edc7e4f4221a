//! The in-memory store: `governor`'s keyed GCRA limiter, with eviction of stale keys.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

use super::QuotaSettings;

/// What an allowed request leaves: the burst still available and when it is full again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remaining {
    pub remaining: u32,
    pub full_in_secs: u64,
}

/// One quota's limiter, keyed by string. Generic over the clock so tests can move time.
pub struct KeyedLimiter<C: Clock = DefaultClock> {
    limiter: RateLimiter<String, DashMapStateStore<String>, C, StateInformationMiddleware>,
    emission_interval: Duration,
}

impl KeyedLimiter<DefaultClock> {
    pub fn new(settings: QuotaSettings) -> Self {
        Self::with_clock(settings, DefaultClock::default())
    }
}

impl<C: Clock> KeyedLimiter<C> {
    pub fn with_clock(settings: QuotaSettings, clock: C) -> Self {
        let per_minute = NonZeroU32::new(settings.per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(settings.burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_minute(per_minute).allow_burst(burst);
        Self {
            limiter: RateLimiter::dashmap_with_clock(quota, clock).with_middleware::<StateInformationMiddleware>(),
            emission_interval: quota.replenish_interval(),
        }
    }

    /// Takes one request from `key`'s allowance, or says how many whole seconds until one is
    /// available (at least 1, as `Retry-After` needs).
    pub fn check(&self, key: &str) -> Result<Remaining, u64> {
        match self.limiter.check_key(&key.to_owned()) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let missing = snapshot.quota().burst_size().get() - remaining;
                let full_in = self.emission_interval * missing;
                Ok(Remaining { remaining, full_in_secs: full_in.as_secs_f64().ceil() as u64 })
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.limiter.clock().now());
                Err((wait.as_secs_f64().ceil() as u64).max(1))
            }
        }
    }

    /// Drops keys whose state equals a fresh one; returns how many remain.
    pub fn evict_stale(&self) -> usize {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
        self.limiter.len()
    }

    pub fn len(&self) -> usize {
        self.limiter.len()
    }

    pub fn is_empty(&self) -> bool {
        self.limiter.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;

    #[test]
    fn a_million_distinct_keys_are_evicted_once_they_are_stale() {
        let clock = FakeRelativeClock::default();
        let limiter = KeyedLimiter::with_clock(QuotaSettings { per_minute: 60, burst: 5 }, clock.clone());
        const KEYS: usize = 1_000_000;
        for i in 0..KEYS {
            limiter.check(&format!("198.51.{}.{}", i / 256, i % 256)).unwrap();
        }
        assert_eq!(limiter.len(), KEYS);
        // Still within the replenish time: every key has state worth keeping.
        clock.advance(Duration::from_millis(500));
        assert_eq!(limiter.evict_stale(), KEYS);
        // Once the whole burst has replenished (5 × 1 s) each key is as good as new, so all go.
        clock.advance(Duration::from_secs(6));
        assert_eq!(limiter.evict_stale(), 0);
        assert!(limiter.is_empty());
    }

    #[test]
    fn retry_after_is_the_wait_for_the_next_token() {
        let clock = FakeRelativeClock::default();
        let limiter = KeyedLimiter::with_clock(QuotaSettings { per_minute: 6, burst: 1 }, clock.clone());
        assert_eq!(limiter.check("k"), Ok(Remaining { remaining: 0, full_in_secs: 10 }));
        assert_eq!(limiter.check("k"), Err(10));
        clock.advance(Duration::from_secs(4));
        assert_eq!(limiter.check("k"), Err(6));
        clock.advance(Duration::from_secs(6));
        assert!(limiter.check("k").is_ok());
    }
}
