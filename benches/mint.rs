//! The mint path (grants built, serialized, signed) beside its floor: a bare HMAC-SHA256 over
//! the same signing input, with and without the base64url work a JWT needs. Run with
//! `cargo bench --bench mint`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use std::hint::black_box;
use tokenmint::credentials::TwilioCredentials;
use tokenmint::token::{ChatGrant, Grants, TokenMinter, TokenSettings, TokenSpec, VideoGrant};

const SECRET: &str = "bench-secret-bench-secret-bench-s";

fn spec() -> TokenSpec {
    TokenSpec {
        identity: "alice@example.com".into(),
        ttl_secs: 3600,
        grants: Grants {
            video: Some(VideoGrant { room: Some("standup".into()) }),
            chat: Some(ChatGrant {
                service_sid: Some("IS33333333333333333333333333333333".into()),
                ..ChatGrant::default()
            }),
            ..Grants::default()
        },
        not_before: None,
    }
}

fn bench_mint(c: &mut Criterion) {
    let credentials = TwilioCredentials {
        account_sid: "AC0123456789abcdef0123456789abcdef".into(),
        api_key_sid: "SKfedcba9876543210fedcba9876543210".into(),
        api_secret: SecretString::from(SECRET),
    };
    let settings = TokenSettings { default_ttl_secs: 3600, region: None, nbf_backdate_secs: None };
    let minter = TokenMinter::new(&credentials, &settings);
    let spec = spec();

    // The floor works on exactly the bytes a real token carries.
    let token = minter.mint(&spec, 1_700_000_000).unwrap();
    let token = token.token.expose_secret();
    let signing_input = token.rsplit_once('.').unwrap().0.to_owned();
    let (header_b64, payload_b64) = signing_input.split_once('.').unwrap();
    let header_json = URL_SAFE_NO_PAD.decode(header_b64).unwrap();
    let payload_json = URL_SAFE_NO_PAD.decode(payload_b64).unwrap();

    let mut group = c.benchmark_group("mint");
    group.bench_function("tokenmint mint (build + serialize + sign)", |b| {
        b.iter(|| minter.mint(black_box(&spec), black_box(1_700_000_000)).unwrap())
    });
    group.bench_function("floor: HMAC-SHA256 over the signing input", |b| {
        b.iter(|| {
            let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
            mac.update(black_box(signing_input.as_bytes()));
            mac.finalize().into_bytes()
        })
    });
    group.bench_function("floor: base64url + HMAC-SHA256 + base64url", |b| {
        b.iter(|| {
            let mut input = URL_SAFE_NO_PAD.encode(black_box(&header_json));
            input.push('.');
            URL_SAFE_NO_PAD.encode_string(black_box(&payload_json), &mut input);
            let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
            mac.update(input.as_bytes());
            input.push('.');
            URL_SAFE_NO_PAD.encode_string(mac.finalize().into_bytes(), &mut input);
            input
        })
    });
    group.finish();
}

criterion_group!(benches, bench_mint);
criterion_main!(benches);
