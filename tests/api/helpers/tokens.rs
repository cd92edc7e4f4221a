//! Credentials the tests sign, and independent checks of the tokens the service mints: a plain
//! HMAC, never the code that minted them.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::{SESSION_AUDIENCE, SESSION_ISSUER, SESSION_SECRET};

/// An app-session JWT for `identity`, signed like an app backend would (HS256, test secret).
pub fn session_token(identity: &str, roles: &[&str]) -> String {
    let now = now();
    sign_hs256(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &json!({"iss": SESSION_ISSUER, "aud": SESSION_AUDIENCE, "sub": identity, "roles": roles, "iat": now, "exp": now + 300}),
        SESSION_SECRET,
    )
}

pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// Builds and signs a JWT by hand (so tests can also build malformed ones).
pub fn sign_hs256(header: &Value, claims: &Value, secret: &str) -> String {
    let message =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(message.as_bytes());
    format!("{message}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

/// Verifies an HS256 token's signature with a plain HMAC (not the library that minted it) and
/// returns its decoded header and payload.
pub fn verify_token(token: &str, secret: &str) -> (Value, Value) {
    let (message, signature) = token.rsplit_once('.').expect("three parts");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(message.as_bytes());
    mac.verify_slice(&URL_SAFE_NO_PAD.decode(signature).expect("base64url signature")).expect("signature verifies");
    decode_token(token)
}

pub fn decode_token(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut part =
        || -> Value { serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap()).unwrap() };
    (part(), part())
}
