//! JWK set documents, as an identity provider serves them: parsing keeps only keys for the
//! allowed algorithms and never panics, nor does verifying a token with any key it kept.
#![no_main]

use jsonwebtoken::{Algorithm, Validation};
use libfuzzer_sys::fuzz_target;
use tokenmint::auth::jwks::KeySet;

const ALLOWED: [Algorithm; 4] = [Algorithm::RS256, Algorithm::PS256, Algorithm::ES256, Algorithm::EdDSA];

fuzz_target!(|data: &[u8]| {
    let Ok(keys) = KeySet::parse(data, &ALLOWED) else { return };
    for key in &keys.keys {
        if let Some(alg) = key.alg {
            assert!(ALLOWED.contains(&alg), "a key for an algorithm not allowed: {alg:?}");
        }
        static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let token = TOKEN.get_or_init(|| tokenmint_fuzz::provider_token("acme", "mallory"));
        let mut validation = Validation::new(key.alg.unwrap_or(Algorithm::RS256));
        validation.validate_aud = false;
        let _ = jsonwebtoken::decode::<serde_json::Value>(token, &key.key, &validation);
    }
});
