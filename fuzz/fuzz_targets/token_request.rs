//! `POST /v1/tokens` bodies through the real router: the JSON extractor, request validation and
//! policy evaluation, then minting. Input: one byte choosing the credential, one choosing the
//! content type, then the body. Every token minted must be one its credential's rule allows.
#![no_main]

use axum::body::Body;
use axum::http::Request;
use libfuzzer_sys::fuzz_target;
use tokenmint_fuzz::{check_allowed, service};

const CONTENT_TYPES: [Option<&str>; 5] = [
    Some("application/json"),
    Some("application/json; charset=utf-8"),
    Some("application/merge-patch+json"),
    Some("text/plain"),
    None,
];

fuzz_target!(|data: &[u8]| {
    let [who, kind, body @ ..] = data else { return };
    let service = service();
    let (credential, holder) = &service.holders[usize::from(*who) % service.holders.len()];
    let mut request = Request::post("/v1/tokens").header("authorization", format!("Bearer {credential}"));
    if let Some(content_type) = CONTENT_TYPES[usize::from(*kind) % CONTENT_TYPES.len()] {
        request = request.header("content-type", content_type);
    }
    let answer = service.call(request.body(Body::from(body.to_vec())).unwrap());
    if let Some(payload) = answer.check() {
        check_allowed(holder, &payload);
    }
});
