//! The credential path: arbitrary bytes as the `Authorization` header of `POST /v1/tokens`
//! (scheme parsing, API-key lookup, session and provider JWT verification, the verified-token
//! cache). A token is minted only for a bearer credential that verifies independently
//! (`tokenmint_fuzz::holder`), and carries only what that holder's rule allows.
#![no_main]

use axum::body::Body;
use axum::http::{HeaderValue, Request};
use libfuzzer_sys::fuzz_target;
use tokenmint_fuzz::{check_allowed, holder, service};

fuzz_target!(|data: &[u8]| {
    let Ok(header) = HeaderValue::from_bytes(data) else { return };
    let service = service();
    let request = Request::post("/v1/tokens").header("authorization", header).body(Body::empty()).unwrap();
    let answer = service.call(request);
    if let Some(payload) = answer.check() {
        let text = std::str::from_utf8(data).expect("a 200 for a header that is not text");
        let (scheme, credential) = text.split_once(' ').expect("a 200 without a scheme");
        assert!(scheme.eq_ignore_ascii_case("bearer"), "a 200 for the scheme {scheme:?}");
        let holder = holder(credential.trim())
            .unwrap_or_else(|| panic!("a token for a credential that does not verify: {text:?}"));
        check_allowed(&holder, &payload);
    }
});
