//! JWTs already verified (provider ID tokens and app sessions), kept until their `exp`, so a
//! client that asks again with the same token costs one hash and one lookup instead of an RSA
//! or ECDSA verification and a JSON parse.
//!
//! Keyed by the SHA-256 of the whole token: finding an entry means these exact bytes were
//! verified before, and a forged token cannot collide with a cached one. Bounded: a full shard
//! first drops what has expired, then an arbitrary entry. The trade-off is that a cached token
//! stays accepted until its `exp` even if its key leaves the provider's key set meanwhile, as
//! a JWT already verified by any relying party would.

use std::collections::HashMap;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use super::Principal;

const SHARDS: usize = 16;
/// The longest a verified token is remembered, whatever its `exp` says: after that it is
/// verified again, so a key the provider withdrew stops working within this time, and a token
/// whose `exp` is centuries away is not kept for centuries.
pub const MAX_REMEMBERED_SECS: u64 = 600;

pub struct VerifiedTokens {
    shards: Vec<Mutex<HashMap<[u8; 32], Entry>>>,
    capacity_per_shard: usize,
}

struct Entry {
    principal: Principal,
    /// The token's `exp`, in Unix seconds: the entry is used strictly before it.
    expires_at: u64,
}

impl VerifiedTokens {
    /// Holds at most about `capacity` tokens; 0 keeps none.
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            capacity_per_shard: capacity.div_ceil(SHARDS),
        }
    }

    /// The hash a token is kept under.
    pub fn key(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }

    /// The principal a token proved, if it was verified before and has not expired by `now`.
    pub fn get(&self, key: &[u8; 32], now: u64) -> Option<Principal> {
        if self.capacity_per_shard == 0 {
            return None;
        }
        let shard = self.shard(key).lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        shard.get(key).filter(|entry| now < entry.expires_at).map(|entry| entry.principal.clone())
    }

    /// Remembers a verified token until `expires_at`, and at most [`MAX_REMEMBERED_SECS`].
    pub fn insert(&self, key: [u8; 32], principal: &Principal, expires_at: u64, now: u64) {
        if self.capacity_per_shard == 0 || expires_at <= now {
            return;
        }
        let expires_at = expires_at.min(now.saturating_add(MAX_REMEMBERED_SECS));
        let mut shard = self.shard(&key).lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if shard.len() >= self.capacity_per_shard && !shard.contains_key(&key) {
            shard.retain(|_, entry| now < entry.expires_at);
            if shard.len() >= self.capacity_per_shard
                && let Some(victim) = shard.keys().next().copied()
            {
                shard.remove(&victim);
            }
        }
        shard.insert(key, Entry { principal: principal.clone(), expires_at });
    }

    /// How many tokens are held (expired ones included until they are swept).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()).sum()
    }

    fn shard(&self, key: &[u8; 32]) -> &Mutex<HashMap<[u8; 32], Entry>> {
        &self.shards[usize::from(key[0]) % SHARDS]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::PrincipalSource;

    fn alice() -> Principal {
        Principal {
            identity: "alice".into(),
            subject: "alice".into(),
            roles: vec!["user".into()],
            may_act_as: false,
            tenant: None,
            source: PrincipalSource::Provider { issuer: "https://idp.example".into() },
        }
    }

    #[test]
    fn a_token_is_found_until_its_exp_and_not_after() {
        let cache = VerifiedTokens::new(100);
        let key = VerifiedTokens::key("header.payload.signature");
        cache.insert(key, &alice(), 1_000, 900);
        assert_eq!(cache.get(&key, 999), Some(alice()));
        assert_eq!(cache.get(&key, 1_000), None);
        assert_eq!(cache.get(&VerifiedTokens::key("header.payload.signaturf"), 950), None, "other bytes miss");
    }

    #[test]
    fn it_stays_bounded_and_prefers_to_drop_expired_entries() {
        let cache = VerifiedTokens::new(160);
        for i in 0..10_000u64 {
            cache.insert(VerifiedTokens::key(&format!("token-{i}")), &alice(), 2_000 + i, 1_000);
        }
        assert!(cache.len() <= 160, "{}", cache.len());
        // Once the old entries have expired, new ones replace them rather than live ones.
        let live = VerifiedTokens::key("live");
        cache.insert(live, &alice(), 1_000_000, 500_000);
        assert_eq!(cache.get(&live, 500_001), Some(alice()));
        assert!(cache.len() <= 160);
    }

    #[test]
    fn a_token_is_remembered_for_a_bounded_time_whatever_its_exp() {
        let cache = VerifiedTokens::new(100);
        let key = VerifiedTokens::key("forever");
        cache.insert(key, &alice(), u64::MAX, 1_000);
        assert_eq!(cache.get(&key, 1_000 + MAX_REMEMBERED_SECS - 1), Some(alice()));
        assert_eq!(cache.get(&key, 1_000 + MAX_REMEMBERED_SECS), None, "verified again after the bound");
    }

    #[test]
    fn capacity_zero_keeps_nothing() {
        let cache = VerifiedTokens::new(0);
        let key = VerifiedTokens::key("t");
        cache.insert(key, &alice(), 1_000, 1);
        assert_eq!(cache.get(&key, 2), None);
        assert_eq!(cache.len(), 0);
    }
}
