//! The mint path (grants built, serialized, signed) beside its floor, a bare HMAC-SHA256 over
//! the same signing input (with and without the base64url work a JWT needs), and each credential
//! check through the real `Authenticator`: HS256 session, API-key hash lookup, and RS256, ES256
//! and EdDSA provider tokens. One run, so the figures compare. `cargo bench --bench mint`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use std::hint::black_box;
use tokenmint::accounts::TwilioCredentials;
use tokenmint::token::{ChatGrant, Grants, TokenSettings, TokenSpec, VideoGrant};

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
        account_sid: tokenmint::sid::Sid::parse("AC0123456789abcdef0123456789abcdef").unwrap(),
        api_key_sid: tokenmint::sid::Sid::parse("SKfedcba9876543210fedcba9876543210").unwrap(),
        api_secret: SecretString::from(SECRET),
    };
    let settings = TokenSettings { default_ttl_secs: 3600, region: None, nbf_backdate_secs: None, products: None };
    let minter = credentials.minter(&settings);
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

fn bench_credentials(c: &mut Criterion) {
    // Before jsonwebtoken's first use, which would choose its own provider.
    assert!(tokenmint::auth::install_crypto_provider(), "RSA keys parsed once, as in the server");
    use jsonwebtoken::jwk::Jwk;
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use tokenmint::auth::Authenticator;
    use tokenmint::env::EnvVars;

    let keys = [
        (
            "rsa",
            Algorithm::RS256,
            EncodingKey::from_rsa_pem(include_bytes!("../tests/fixtures/keys/rsa-a.pem")).unwrap(),
        ),
        (
            "ec",
            Algorithm::ES256,
            EncodingKey::from_ec_pem(include_bytes!("../tests/fixtures/keys/ec-p256.pem")).unwrap(),
        ),
        (
            "ed",
            Algorithm::EdDSA,
            EncodingKey::from_ed_pem(include_bytes!("../tests/fixtures/keys/ed25519.pem")).unwrap(),
        ),
    ];
    let jwks: Vec<serde_json::Value> = keys
        .iter()
        .map(|(kid, alg, key)| {
            let mut jwk = serde_json::to_value(Jwk::from_encoding_key(key, *alg).unwrap()).unwrap();
            jwk["kid"] = (*kid).into();
            jwk
        })
        .collect();
    let session_secret = "bench-session-secret-bench-session-secret-01";
    let api_key = "tmk_bench_0123456789abcdef";
    let api_key_hash: String =
        <sha2::Sha256 as sha2::Digest>::digest(api_key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    // Built twice: one verifies every time, the other remembers what it verified (the
    // default), so the bench shows both.
    let authenticator = |verified_cache_size: usize| {
        let toml = format!(
            r#"
            verified_cache_size = {verified_cache_size}
            [[sessions]]
            issuer = "https://app.bench"
            audiences = ["bench"]
            secret_env = "BENCH_SESSION_SECRET"
            identity_prefix = "app:"
            [[api_keys]]
            name = "backend"
            sha256 = "{api_key_hash}"
            [[providers]]
            issuer = "https://idp.bench"
            audiences = ["bench"]
            algorithms = ["RS256", "ES256", "EdDSA"]
            identity_prefix = "idp:"
            jwks = '{jwks}'
            "#,
            jwks = serde_json::json!({"keys": jwks})
        );
        let settings = config::Config::builder()
            .add_source(config::File::from_str(&toml, config::FileFormat::Toml))
            .build()
            .and_then(config::Config::try_deserialize)
            .unwrap();
        let env: EnvVars = [("BENCH_SESSION_SECRET", session_secret)].into_iter().collect();
        Authenticator::from_settings(&settings, &env, None).unwrap()
    };
    let (uncached, cached) = (authenticator(0), authenticator(10_000));
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();

    let exp = tokenmint::token::unix_now() + 3600;
    let provider_token = |issuer: &str, kid: &str, alg: Algorithm, key: &EncodingKey| {
        let mut header = Header::new(alg);
        header.kid = Some(kid.into());
        let claims = serde_json::json!({"iss": issuer, "aud": "bench", "sub": "alice", "exp": exp});
        jsonwebtoken::encode(&header, &claims, key).unwrap()
    };
    let session = uncached.dev_session_token("alice", &["user"], 3600).unwrap();
    let (session_input, _) = session.rsplit_once('.').unwrap();
    let session_input = session_input.to_owned();

    let mut group = c.benchmark_group("verify");
    let mut check = |name: &str, authenticator: &Authenticator, credential: &str| {
        assert!(
            runtime.block_on(authenticator.authenticate(credential, tokenmint::auth::Accepted::AnyCredential)).is_ok(),
            "{name} verifies"
        );
        group.bench_function(name, |b| {
            b.iter(|| {
                runtime
                    .block_on(
                        authenticator.authenticate(black_box(credential), tokenmint::auth::Accepted::AnyCredential),
                    )
                    .unwrap()
            })
        });
    };
    check("HS256 app session", &uncached, &session);
    check("HS256 app session, verified before", &cached, &session);
    check("API key (SHA-256 lookup)", &uncached, api_key);
    for (kid, alg, key) in &keys {
        let token = provider_token("https://idp.bench", kid, *alg, key);
        check(&format!("{alg:?} provider token"), &uncached, &token);
        check(&format!("{alg:?} provider token, verified before"), &cached, &token);
    }
    // Floors: the cryptography alone, on the same bytes.
    group.bench_function("floor: HMAC-SHA256 over a session's signing input", |b| {
        b.iter(|| {
            let mut mac = Hmac::<Sha256>::new_from_slice(session_secret.as_bytes()).unwrap();
            mac.update(black_box(session_input.as_bytes()));
            mac.finalize().into_bytes()
        })
    });
    group.bench_function("floor: SHA-256 of an API key", |b| {
        b.iter(|| <Sha256 as sha2::Digest>::digest(black_box(api_key.as_bytes())))
    });
    for ((kid, alg, key), jwk) in keys.iter().zip(&jwks) {
        let token = provider_token("https://idp.bench", kid, *alg, key);
        let (message, signature) = token.rsplit_once('.').unwrap();
        let decoding = jsonwebtoken::DecodingKey::from_jwk(&serde_json::from_value(jwk.clone()).unwrap()).unwrap();
        // As tokenmint checks it (RSA keys parsed once, `auth/rsa_keys.rs`), and as
        // jsonwebtoken's own provider does (the key parsed again for each check).
        group.bench_function(format!("floor: {alg:?} signature check alone"), |b| {
            b.iter(|| {
                jsonwebtoken::crypto::verify(black_box(signature), black_box(message.as_bytes()), &decoding, *alg)
                    .unwrap()
            })
        });
        let signature_bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
        let own = (jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.verifier_factory)(alg, &decoding).unwrap();
        group.bench_function(format!("floor: {alg:?} signature check alone, jsonwebtoken's own provider"), |b| {
            b.iter(|| own.verify(black_box(message.as_bytes()), black_box(&signature_bytes)).unwrap())
        });
        group.bench_function(format!("floor: SHA-256 of the {alg:?} token (the cache key)"), |b| {
            b.iter(|| <Sha256 as sha2::Digest>::digest(black_box(token.as_bytes())))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_mint, bench_credentials);
criterion_main!(benches);
