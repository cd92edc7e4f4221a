//! An OpenID provider's key set on loopback, served by the test itself: it can rotate keys, fail,
//! stall, and count the fetches it sees (tests/api/providers.rs, tests/tools/traces.rs).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::{now, repo_path};

pub const AUDIENCE: &str = "tokenmint-app";

/// A signing key with its public JWK.
pub struct TestKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    pub jwk: Value,
}

pub fn key(file: &str, alg: Algorithm, kid: &str) -> TestKey {
    let pem = std::fs::read(repo_path(&format!("tests/fixtures/keys/{file}"))).unwrap();
    let encoding = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
        _ => EncodingKey::from_rsa_pem(&pem),
    }
    .unwrap();
    let mut jwk = serde_json::to_value(Jwk::from_encoding_key(&encoding, alg).unwrap()).unwrap();
    jwk["kid"] = kid.into();
    jwk["use"] = "sig".into();
    TestKey { kid: kid.into(), alg, encoding, jwk }
}

pub fn rsa_a() -> TestKey {
    key("rsa-a.pem", Algorithm::RS256, "rsa-a")
}

/// What the JWKS server serves and how it misbehaves.
#[derive(Default)]
pub struct Served {
    pub keys: RwLock<Vec<Value>>,
    pub failing: AtomicBool,
    /// When set, this body with status 200 instead of the key set.
    pub garbage: RwLock<Option<&'static str>>,
    /// Milliseconds to wait before answering.
    pub delay_ms: AtomicUsize,
    /// Bytes of padding added to the key set (to exceed the size cap).
    pub padding: AtomicUsize,
    /// The `Cache-Control: max-age` sent, in seconds (0: the default 600).
    pub max_age_secs: AtomicUsize,
    pub fetches: AtomicUsize,
    pub other_requests: AtomicUsize,
}

pub struct JwksServer {
    pub base: String,
    pub served: Arc<Served>,
}

impl JwksServer {
    pub async fn start(keys: &[&TestKey]) -> Self {
        let served = Arc::new(Served::default());
        served.set(keys);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let discovery = json!({"issuer": base, "jwks_uri": format!("{base}/jwks.json")});
        let app = axum::Router::new()
            .route("/jwks.json", get(jwks))
            .route("/.well-known/openid-configuration", get(move || async move { axum::Json(discovery) }))
            .fallback(|State(served): State<Arc<Served>>| async move {
                served.other_requests.fetch_add(1, Ordering::SeqCst);
                StatusCode::NOT_FOUND
            })
            .with_state(served.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base, served }
    }
}

impl Served {
    pub fn set(&self, keys: &[&TestKey]) {
        *self.keys.write().unwrap() = keys.iter().map(|k| k.jwk.clone()).collect();
    }
}

pub async fn jwks(State(served): State<Arc<Served>>) -> axum::response::Response {
    served.fetches.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(served.delay_ms.load(Ordering::SeqCst) as u64)).await;
    if served.failing.load(Ordering::SeqCst) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "garbage, not JSON").into_response();
    }
    if let Some(body) = *served.garbage.read().unwrap() {
        return ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    }
    let body =
        json!({"keys": *served.keys.read().unwrap(), "padding": "x".repeat(served.padding.load(Ordering::SeqCst))});
    let max_age = match served.max_age_secs.load(Ordering::SeqCst) {
        0 => 600,
        secs => secs,
    };
    ([(header::CACHE_CONTROL, format!("public, max-age={max_age}"))], axum::Json(body)).into_response()
}

/// The provider's config; `extra` adds keys to the table.
pub fn provider_toml(issuer: &str, extra: &str) -> String {
    format!(
        r#"
[[auth.providers]]
issuer = "{issuer}"
audiences = ["{AUDIENCE}"]
algorithms = ["RS256", "ES256", "EdDSA"]
roles_claim = "realm_access.roles"
default_roles = ["user"]
identity_namespace = "test-users"
{extra}
"#
    )
}

pub fn claims(issuer: &str, sub: &str) -> Value {
    let now = now();
    json!({"iss": issuer, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + 300})
}

pub fn sign(key: &TestKey, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
}
