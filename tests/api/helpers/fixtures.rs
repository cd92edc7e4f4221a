//! The test suite's fixed values: fake Twilio credentials, secrets, keys and SIDs, and the
//! environment the test service runs with.

use std::path::PathBuf;

pub const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const KEY_SID: &str = "SKfedcba9876543210fedcba9876543210";
pub const API_SECRET: &str = "test-api-secret-never-logged-7f3a";
pub const SESSION_SECRET: &str = "test-session-secret-never-logged-0123456789";
pub const SESSION_ISSUER: &str = "https://app.test";
pub const SESSION_AUDIENCE: &str = "tokenmint-test";
pub const BACKEND_KEY: &str = "tmk_test_backend_0123456789abcdef";
pub const KIOSK_KEY: &str = "tmk_test_kiosk_0123456789abcdef";
pub const APP_SID: &str = "AP11111111111111111111111111111111";
pub const CHAT_SID: &str = "IS33333333333333333333333333333333";

pub fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// The Python with the test tools of `tests/python/requirements.txt` (Twilio's official library,
/// the OpenID provider, the OTLP definitions): `TOKENMINT_TEST_PYTHON`, else `.venv/bin/python`.
#[allow(dead_code, reason = "the tools target runs Python; the api target does not")]
pub fn test_python() -> PathBuf {
    let python =
        std::env::var("TOKENMINT_TEST_PYTHON").map(Into::into).unwrap_or_else(|_| repo_path(".venv/bin/python"));
    assert!(
        python.exists(),
        "{} does not exist: run scripts/test, which creates .venv from tests/python/requirements.txt",
        python.display()
    );
    python
}

/// The environment the test service runs with.
pub fn test_env() -> Vec<(String, String)> {
    [
        ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
        ("TWILIO_API_KEY", KEY_SID),
        ("TWILIO_API_SECRET", API_SECRET),
        ("TEST_SESSION_SECRET", SESSION_SECRET),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}
