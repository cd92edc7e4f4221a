//! What the fuzz targets share: the real service assembled in-process (the same `Runtime`,
//! routers and tower layers `serve` uses, without listeners), one request through it, and the
//! checks every answer must pass:
//! - never a 5xx, and every refusal a problem+json document whose `status` matches;
//! - a minted token verifies (HMAC-SHA256 computed here, not by tokenmint) and carries only what
//!   its credential's policy rule allows.

use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use tokenmint::config::Settings;
use tokenmint::env::EnvVars;
use tokenmint::startup::Runtime;
use tower::ServiceExt;

// The test suite's fake credentials (tests/api/helpers.rs), for config/test.toml.
pub const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const KEY_SID: &str = "SKfedcba9876543210fedcba9876543210";
pub const API_SECRET: &str = "test-api-secret-never-logged-7f3a";
pub const SESSION_SECRET: &str = "test-session-secret-never-logged-0123456789";
const SESSION_ISSUER: &str = "https://app.test";
const SESSION_AUDIENCE: &str = "tokenmint-test";
pub const BACKEND_KEY: &str = "tmk_test_backend_0123456789abcdef";
pub const KIOSK_KEY: &str = "tmk_test_kiosk_0123456789abcdef";
/// Signs the provider tokens the seeds carry (`tests/fixtures/keys`, test-only keys).
pub const PROVIDER_PRIVATE_PEM: &str = include_str!("../../tests/fixtures/keys/rsa-a.pem");
const PROVIDER_PUBLIC_PEM: &str = include_str!("../../tests/fixtures/keys/rsa-a.pub.pem");
pub const PROVIDER_ISSUER: &str = "https://idp.fuzz";
const PROVIDER_AUDIENCE: &str = "tokenmint-fuzz";

/// The service's configuration: the test suite's (`config/test.toml`: its sessions, API keys
/// and policy rules), with an identity provider whose key is given inline.
fn config() -> String {
    format!(
        r#"{}
[[auth.providers]]
issuer = "{PROVIDER_ISSUER}"
audiences = ["{PROVIDER_AUDIENCE}"]
public_key_pem = """{PROVIDER_PUBLIC_PEM}"""
tenant_claim = "org"
identity_template = "{{org}}:{{sub}}"
identity_namespace = "test-users"

[audit]
sink = "file"
path = "/dev/null"
"#,
        include_str!("../../config/test.toml")
    )
}

/// The environment the fuzzed service reads its secrets from, and rate limits high enough that
/// the fuzzer's millions of requests are not all 429s.
pub fn env() -> EnvVars {
    [
        ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
        ("TWILIO_API_KEY", KEY_SID),
        ("TWILIO_API_SECRET", API_SECRET),
        ("TEST_SESSION_SECRET", SESSION_SECRET),
        ("TOKENMINT__RATE_LIMIT__PER_IP__PER_MINUTE", "1000000000"),
        ("TOKENMINT__RATE_LIMIT__PER_IP__BURST", "1000000000"),
        ("TOKENMINT__RATE_LIMIT__PER_IDENTITY__PER_MINUTE", "1000000000"),
        ("TOKENMINT__RATE_LIMIT__PER_IDENTITY__BURST", "1000000000"),
    ]
    .into_iter()
    .collect()
}

/// Who a credential is, and what its policy rule lets it have.
pub struct Holder {
    /// The identity its tokens carry (`None`: it may name any).
    pub identity: Option<String>,
    pub max_ttl: u64,
    /// Whether the policy gives it any token at all.
    pub has_rule: bool,
    /// Video rooms it may join: exact names, or a prefix ending in `*`.
    pub rooms: Vec<String>,
    /// Payload grant names it may carry (besides `identity`).
    pub grants: &'static [&'static str],
}

/// The service, built once per fuzzing process.
pub struct Service {
    runtime: tokio::runtime::Runtime,
    router: Router,
    /// A credential of each kind, with its holder.
    pub holders: Vec<(String, Holder)>,
}

pub fn service() -> &'static Service {
    static SERVICE: OnceLock<Service> = OnceLock::new();
    SERVICE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
        let env = env();
        let settings = Settings::from_toml(Some(&config()), false, &env).expect("the fuzz configuration loads");
        let assembled = Runtime::assemble(settings, &env, false).expect("the fuzz configuration is valid");
        let alice =
            assembled.authenticator.dev_session_token("alice", &["user"], 10 * 365 * 86_400).expect("a session");
        let nobody = assembled.authenticator.dev_session_token("nobody", &["none"], 10 * 365 * 86_400).unwrap();
        let (state, settings) = assembled.into_state().expect("the audit writer starts");
        let router = tokenmint::http::api_router(state, &settings.server, &settings.cors);
        let holders = [alice, BACKEND_KEY.into(), KIOSK_KEY.into(), nobody, provider_token("acme", "bob")]
            .into_iter()
            .map(|credential| {
                let holder = holder(&credential).expect("a valid credential");
                (credential, holder)
            })
            .collect();
        Service { runtime, router, holders }
    })
}

/// Who `credential` is, found without tokenmint: the known API keys, or a JWT whose signature
/// and claims verify here (`jsonwebtoken`) against the session secret or the provider's key.
pub fn holder(credential: &str) -> Option<Holder> {
    let user = |identity: String| Holder {
        rooms: vec!["standup".into(), format!("user-{identity}"), "team-*".into()],
        identity: Some(identity),
        max_ttl: 3600,
        has_rule: true,
        grants: &["video", "voice", "chat", "data_sync"],
    };
    if credential == BACKEND_KEY {
        return Some(Holder {
            identity: None,
            max_ttl: 86_400,
            has_rule: true,
            rooms: vec!["*".into()],
            grants: &["video", "voice", "chat", "data_sync", "task_router"],
        });
    }
    if credential == KIOSK_KEY {
        return Some(Holder {
            identity: Some("kiosk".into()),
            max_ttl: 300,
            has_rule: true,
            rooms: vec!["lobby".into()],
            grants: &["video"],
        });
    }
    let verify = |issuer: &str, audience: &str, algorithm, key: &jsonwebtoken::DecodingKey| {
        let mut validation = jsonwebtoken::Validation::new(algorithm);
        validation.set_audience(&[audience]);
        validation.set_issuer(&[issuer]);
        validation.leeway = 0;
        jsonwebtoken::decode::<Value>(credential, key, &validation).ok().map(|data| data.claims)
    };
    let session_key = jsonwebtoken::DecodingKey::from_secret(SESSION_SECRET.as_bytes());
    if let Some(claims) = verify(SESSION_ISSUER, SESSION_AUDIENCE, jsonwebtoken::Algorithm::HS256, &session_key) {
        let identity = claims["sub"].as_str()?.to_owned();
        let is_user = match claims.get("roles") {
            None => true,
            Some(roles) => roles.as_array()?.iter().any(|r| r == "user"),
        };
        return Some(if is_user {
            user(identity)
        } else {
            Holder { identity: Some(identity), max_ttl: 0, has_rule: false, rooms: Vec::new(), grants: &[] }
        });
    }
    let provider_key = jsonwebtoken::DecodingKey::from_rsa_pem(PROVIDER_PUBLIC_PEM.as_bytes()).unwrap();
    let claims = verify(PROVIDER_ISSUER, PROVIDER_AUDIENCE, jsonwebtoken::Algorithm::RS256, &provider_key)?;
    Some(user(format!("{}:{}", claims["org"].as_str()?, claims["sub"].as_str()?)))
}

/// An RS256 token from the fuzz identity provider, valid for ten years.
pub fn provider_token(org: &str, sub: &str) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let claims = serde_json::json!({
        "iss": PROVIDER_ISSUER, "aud": PROVIDER_AUDIENCE, "sub": sub, "org": org,
        "roles": ["user"], "iat": now, "exp": now + 10 * 365 * 86_400,
    });
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(PROVIDER_PRIVATE_PEM.as_bytes()).expect("the fixture key");
    jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256), &claims, &key).unwrap()
}

/// One answer from the service.
pub struct Answer {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Service {
    /// Sends `request` as the accept loop would hand it over: with its peer's address.
    pub fn call(&self, mut request: Request<Body>) -> Answer {
        let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 40_000));
        request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
        self.runtime.block_on(async {
            let response = self.router.clone().oneshot(request).await.expect("the router is infallible");
            let status = response.status();
            let content_type = response
                .headers()
                .get("content-type")
                .map(|v| v.to_str().expect("content-type is text").to_owned())
                .unwrap_or_default();
            let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("a readable body").to_vec();
            Answer { status, content_type, body }
        })
    }
}

impl Answer {
    /// The contract every answer keeps. Returns the minted token's payload, if one was minted.
    pub fn check(&self) -> Option<Value> {
        assert!(!self.status.is_server_error(), "a {} answer: {}", self.status, String::from_utf8_lossy(&self.body));
        let body: Value = serde_json::from_slice(&self.body).expect("every answer is JSON");
        let text = String::from_utf8_lossy(&self.body);
        for secret in [API_SECRET, SESSION_SECRET, BACKEND_KEY, KIOSK_KEY] {
            assert!(!text.contains(secret), "an answer carries a secret: {text}");
        }
        if self.status != StatusCode::OK {
            assert_eq!(self.content_type, "application/problem+json", "a refusal's content type");
            assert_eq!(body["status"].as_u64(), Some(u64::from(self.status.as_u16())), "problem status: {body}");
            assert!(body["title"].is_string() && body["detail"].is_string() && body["type"].is_string(), "{body}");
            return None;
        }
        assert_eq!(self.content_type, "application/json");
        let token = body["token"].as_str().expect("a 200 carries a token");
        let payload = verified_payload(token);
        assert_eq!(payload["grants"]["identity"].as_str(), body["identity"].as_str(), "identity");
        let ttl = payload["exp"].as_u64().unwrap() - payload["iat"].as_u64().unwrap();
        assert_eq!(Some(ttl), body["ttl"].as_u64(), "ttl");
        let mut named: Vec<String> = body["grants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| if g == "sync" { "data_sync".into() } else { g.as_str().unwrap().to_owned() })
            .collect();
        let mut carried: Vec<String> =
            payload["grants"].as_object().unwrap().keys().filter(|k| *k != "identity").cloned().collect();
        named.sort();
        carried.sort();
        assert_eq!(named, carried, "the answer's grants are the token's");
        Some(payload)
    }
}

/// Checks a token's signature with the API secret (HMAC computed here) and its header, and
/// returns its payload.
pub fn verified_payload(token: &str) -> Value {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWT");
    let mut mac = Hmac::<Sha256>::new_from_slice(API_SECRET.as_bytes()).unwrap();
    mac.update(format!("{}.{}", parts[0], parts[1]).as_bytes());
    let signature = URL_SAFE_NO_PAD.decode(parts[2]).expect("base64url signature");
    mac.verify_slice(&signature).expect("the token's signature verifies with the API secret");
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "HS256");
    assert_eq!(header["cty"], "twilio-fpa;v=1");
    assert_eq!(header["typ"], "JWT");
    let payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(payload["iss"], KEY_SID);
    assert_eq!(payload["sub"], ACCOUNT_SID);
    payload
}

/// What a holder's token may carry: its identity, ttl cap, grants and rooms.
pub fn check_allowed(holder: &Holder, payload: &Value) {
    assert!(holder.has_rule, "a token for a principal no rule covers: {payload}");
    let grants = payload["grants"].as_object().unwrap();
    if let Some(identity) = &holder.identity {
        assert_eq!(grants["identity"], identity.as_str(), "the credential's identity, never another");
    }
    let ttl = payload["exp"].as_u64().unwrap() - payload["iat"].as_u64().unwrap();
    assert!((1..=holder.max_ttl).contains(&ttl), "ttl {ttl} beyond the rule's {}", holder.max_ttl);
    for name in grants.keys().filter(|k| *k != "identity") {
        assert!(holder.grants.contains(&name.as_str()), "grant {name} outside the rule");
    }
    if let Some(room) = grants.get("video").and_then(|v| v.get("room")).and_then(Value::as_str) {
        let allowed = holder.rooms.iter().any(|pattern| match pattern.strip_suffix('*') {
            Some(prefix) => room.starts_with(prefix),
            None => room == pattern,
        });
        assert!(allowed, "room {room:?} outside the rule");
    }
}
