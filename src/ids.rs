//! Identifiers that must be unique, not secret: token `jti` suffixes and request ids.
//!
//! A random 64-bit start per process plus a counter: unique within a replica by construction
//! and, with a random start, across replicas too. One read of the operating system's generator
//! per process instead of one per id (a `getrandom` call per request cost as much as signing).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// 16 lower-case hex digits, never the same twice in this process.
pub fn unique_hex() -> String {
    static START: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let start = *START.get_or_init(|| {
        let mut bytes = [0u8; 8];
        if getrandom::fill(&mut bytes).is_err() {
            // No generator (a sandbox without getrandom(2) or /dev/urandom): the clock and the
            // process id still make the start unlikely to repeat across replicas, and the counter
            // keeps ids unique within this one. Uniqueness is what is needed, not secrecy.
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            bytes = ((nanos as u64) ^ (u64::from(std::process::id()) << 32)).to_be_bytes();
        }
        u64::from_be_bytes(bytes)
    });
    format!("{:016x}", start.wrapping_add(COUNTER.fetch_add(1, Ordering::Relaxed)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_sixteen_hex_digits_and_never_repeat() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| super::unique_hex()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids.iter().all(|id| id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit())));
    }
}
