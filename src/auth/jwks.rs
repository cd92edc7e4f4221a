//! An identity provider's public keys: fetched (by OpenID discovery or from a `jwks_uri`) or
//! given inline, cached, and refreshed.
//!
//! - Refreshed on a schedule that honours `Cache-Control: max-age` within configured bounds.
//! - An unknown `kid` triggers at most one refetch per interval, and concurrent misses wait
//!   for that one fetch: a flood of random kids never becomes a flood of fetches.
//! - When the provider is unreachable or answers garbage, the last good key set keeps serving.
//! - Keys marked `use: enc`, symmetric keys, and keys whose `alg` is not allowed are ignored.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tracing::Instrument;

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

/// Largest discovery document or key set we read.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// One usable public key.
pub struct PublicKey {
    pub kid: Option<String>,
    /// The `alg` the JWK names, if any; a token's `alg` must then equal it.
    pub alg: Option<Algorithm>,
    pub key: DecodingKey,
}

/// A provider's usable keys.
#[derive(Default)]
pub struct KeySet {
    pub keys: Vec<PublicKey>,
}

impl KeySet {
    /// Parses a JWK set, keeping only keys that may verify a token with one of `allowed`.
    pub fn parse(document: &[u8], allowed: &[Algorithm]) -> Result<Self, String> {
        let value: Value = serde_json::from_slice(document).map_err(|e| format!("the key set is not JSON: {e}"))?;
        let entries = value.get("keys").and_then(Value::as_array).ok_or("the key set has no \"keys\" array")?;
        let keys = entries
            .iter()
            .filter_map(|entry| serde_json::from_value::<Jwk>(entry.clone()).ok())
            .filter(|jwk| !matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)))
            .filter(|jwk| !matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)))
            .filter_map(|jwk| {
                let alg = match &jwk.common.key_algorithm {
                    Some(alg) => Some(alg.to_string().parse::<Algorithm>().ok().filter(|a| allowed.contains(a))?),
                    None => None,
                };
                Some(PublicKey { kid: jwk.common.key_id.clone(), alg, key: DecodingKey::from_jwk(&jwk).ok()? })
            })
            .collect();
        Ok(Self { keys })
    }
}

impl KeySet {
    /// One PEM public key, tried as each key type the allowed algorithms use.
    pub fn from_pem(pem: &[u8], allowed: &[Algorithm]) -> Option<Self> {
        let key = allowed.iter().find_map(|alg| match alg {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => DecodingKey::from_rsa_pem(pem).ok(),
            Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(pem).ok(),
            Algorithm::EdDSA => DecodingKey::from_ed_pem(pem).ok(),
            _ => None,
        })?;
        Some(Self { keys: vec![PublicKey { kid: None, alg: None, key }] })
    }
}

/// Where keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// `<issuer>/.well-known/openid-configuration` names the `jwks_uri`.
    Discovery {
        issuer: String,
        /// The provider's `allow_insecure_http`: the discovered `jwks_uri` may be plain http.
        allow_insecure_http: bool,
    },
    Uri(String),
    /// Inline, never refreshed.
    Static,
}

impl KeySource {
    /// Where the keys are fetched from first (the discovery document, or the key set itself).
    fn url(&self) -> &str {
        match self {
            Self::Discovery { issuer: url, .. } | Self::Uri(url) => url,
            Self::Static => "",
        }
    }
}

/// Fetch and refresh timing.
#[derive(Debug, Clone, Copy)]
pub struct Refresh {
    pub min: Duration,
    pub max: Duration,
    pub unknown_kid_interval: Duration,
    pub timeout: Duration,
}

/// A provider's cached keys.
pub struct JwksCache {
    source: KeySource,
    allowed: Vec<Algorithm>,
    refresh: Refresh,
    client: reqwest::Client,
    current: RwLock<Option<Arc<KeySet>>>,
    /// Held while fetching, so concurrent misses share one fetch; holds the last fetch time.
    fetching: tokio::sync::Mutex<Option<Instant>>,
    fetches: prometheus::IntCounterVec,
    /// Whether its refresh task runs (at most one per cache, however often a reload reuses it).
    refreshing: std::sync::atomic::AtomicBool,
}

impl JwksCache {
    pub fn new(
        source: KeySource,
        allowed: Vec<Algorithm>,
        refresh: Refresh,
        fetches: prometheus::IntCounterVec,
    ) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(refresh.timeout)
            .timeout(refresh.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client with rustls builds");
        Self {
            source,
            allowed,
            refresh,
            client,
            current: RwLock::new(None),
            fetching: tokio::sync::Mutex::new(None),
            fetches,
            refreshing: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// A cache that holds `keys` for good.
    pub fn fixed(keys: KeySet, fetches: prometheus::IntCounterVec) -> Self {
        let cache = Self::new(
            KeySource::Static,
            Vec::new(),
            Refresh {
                min: Duration::MAX,
                max: Duration::MAX,
                unknown_kid_interval: Duration::MAX,
                timeout: Duration::from_secs(1),
            },
            fetches,
        );
        *cache.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(keys));
        cache
    }

    pub fn keys(&self) -> Option<Arc<KeySet>> {
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    pub fn has_keys(&self) -> bool {
        self.keys().is_some()
    }

    /// Fetches now; on success replaces the keys and returns how long to keep them.
    pub async fn refresh_now(&self) -> Result<Duration, String> {
        let mut fetching = self.fetching.lock().await;
        *fetching = Some(Instant::now());
        self.fetch_and_store().await
    }

    /// After a token names an unknown `kid`: refetch, unless a fetch happened within the
    /// interval. Concurrent callers queue on the lock and then find the fresh keys.
    pub async fn refetch_for_unknown_kid(&self) {
        let mut fetching = self.fetching.lock().await;
        if fetching.is_some_and(|last| last.elapsed() < self.refresh.unknown_kid_interval) {
            return;
        }
        *fetching = Some(Instant::now());
        let _ = self.fetch_and_store().await;
    }

    /// Starts the task that keeps the keys fresh, unless it runs already: it fetches at once,
    /// then again after `max-age` (within bounds), retrying sooner after a failure, and ends
    /// once the cache is dropped (a reload that removed the provider).
    pub fn start_refresh(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        if matches!(self.source, KeySource::Static) || self.refreshing.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return None;
        }
        let cache = Arc::downgrade(self);
        Some(tokio::spawn(async move {
            loop {
                let Some(this) = cache.upgrade() else { return };
                let wait = match this.refresh_now().await {
                    Ok(keep_for) => keep_for,
                    Err(reason) => {
                        tracing::warn!(%reason, "fetching an identity provider's keys failed; keeping the last good set");
                        this.refresh.min.min(Duration::from_secs(30))
                    }
                };
                drop(this);
                tokio::time::sleep(wait).await;
            }
        }))
    }

    async fn fetch_and_store(&self) -> Result<Duration, String> {
        let result = self.fetch().instrument(tracing::debug_span!("jwks_fetch", url = self.source.url())).await;
        self.fetches.with_label_values(&[if result.is_ok() { "success" } else { "error" }]).inc();
        let (keys, max_age) = result?;
        if keys.keys.is_empty() {
            return Err("the key set holds no usable key; keeping the last good set".into());
        }
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(keys));
        Ok(max_age.unwrap_or(self.refresh.min).clamp(self.refresh.min, self.refresh.max))
    }

    async fn fetch(&self) -> Result<(KeySet, Option<Duration>), String> {
        let jwks_uri = match &self.source {
            KeySource::Static => return Err("inline keys are not fetched".into()),
            KeySource::Uri(uri) => uri.clone(),
            KeySource::Discovery { issuer, allow_insecure_http } => {
                let url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
                let (document, _) = self.get(&url).await?;
                let discovery: Value =
                    serde_json::from_slice(&document).map_err(|e| format!("discovery document: {e}"))?;
                if discovery.get("issuer").and_then(Value::as_str).map(|i| i.trim_end_matches('/'))
                    != Some(issuer.trim_end_matches('/'))
                {
                    return Err("the discovery document names another issuer".into());
                }
                let uri = discovery
                    .get("jwks_uri")
                    .and_then(Value::as_str)
                    .ok_or("the discovery document has no jwks_uri")?;
                check_fetch_url(uri, *allow_insecure_http)?;
                uri.to_owned()
            }
        };
        let (document, max_age) = self.get(&jwks_uri).await?;
        Ok((KeySet::parse(&document, &self.allowed)?, max_age))
    }

    /// GETs a document, capped in size, with its `Cache-Control: max-age`.
    async fn get(&self, url: &str) -> Result<(Vec<u8>, Option<Duration>), String> {
        let mut response = self.client.get(url).send().await.map_err(|e| format!("GET {url}: {}", short(&e)))?;
        if !response.status().is_success() {
            return Err(format!("GET {url}: status {}", response.status()));
        }
        let max_age = response
            .headers()
            .get_all(reqwest::header::CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .find_map(|directive| directive.trim().strip_prefix("max-age=")?.parse::<u64>().ok())
            .map(Duration::from_secs);
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| format!("GET {url}: {}", short(&e)))? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(format!("GET {url}: larger than {MAX_DOCUMENT_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body, max_age))
    }
}

fn short(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "failed"
    }
}

/// Keys travel over https, except from loopback (tests, sidecars) or where the operator opted in
/// to plain http (`allow_insecure_http`: a development setup, or a mesh that encrypts for us).
pub fn check_fetch_url(url: &str, allow_insecure_http: bool) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|_| format!("{url:?} is not a URL"))?;
    let host = parsed.host_str().unwrap_or("");
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback || allow_insecure_http => Ok(()),
        _ => Err(format!(
            "{url:?} must use https (http is accepted only on loopback, or with allow_insecure_http = true)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real RSA public key as a JWK (the fixture key), with extra members.
    fn rsa_jwk(extra: Value) -> Value {
        let pem = include_bytes!("../../tests/fixtures/keys/rsa-a.pem");
        let encoding = jsonwebtoken::EncodingKey::from_rsa_pem(pem).unwrap();
        let mut jwk = serde_json::to_value(Jwk::from_encoding_key(&encoding, Algorithm::RS256).unwrap()).unwrap();
        jwk.as_object_mut().unwrap().remove("alg");
        jwk.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        jwk
    }

    fn kids(set: &KeySet) -> Vec<&str> {
        set.keys.iter().filter_map(|k| k.kid.as_deref()).collect()
    }

    #[test]
    fn encryption_keys_symmetric_keys_and_disallowed_algorithms_are_dropped() {
        let document = serde_json::json!({"keys": [
            rsa_jwk(serde_json::json!({"kid": "signing", "use": "sig", "alg": "RS256"})),
            rsa_jwk(serde_json::json!({"kid": "no-alg"})),
            rsa_jwk(serde_json::json!({"kid": "encryption", "use": "enc"})),
            rsa_jwk(serde_json::json!({"kid": "other-alg", "alg": "RS512"})),
            {"kty": "oct", "kid": "symmetric", "k": "c2VjcmV0"},
            {"kty": "unknown-type", "kid": "strange"},
        ]});
        let set = KeySet::parse(document.to_string().as_bytes(), &[Algorithm::RS256]).unwrap();
        assert_eq!(kids(&set), ["signing", "no-alg"]);
    }

    #[test]
    fn garbage_is_an_error_not_an_empty_set() {
        assert!(KeySet::parse(b"<html>", &[Algorithm::RS256]).is_err());
        assert!(KeySet::parse(b"{\"no_keys\": []}", &[Algorithm::RS256]).is_err());
    }

    #[test]
    fn keys_are_fetched_over_https_or_from_loopback() {
        for ok in
            ["https://idp.example/jwks", "http://127.0.0.1:8080/jwks", "http://localhost/jwks", "http://[::1]:9/k"]
        {
            assert!(check_fetch_url(ok, false).is_ok(), "{ok}");
        }
        for bad in ["http://idp.example/jwks", "ftp://idp.example/k", "not a url", "http://10.0.0.1/jwks"] {
            assert!(check_fetch_url(bad, false).is_err(), "{bad}");
        }
        assert!(check_fetch_url("http://idp.internal:8080/jwks", true).is_ok());
        assert!(check_fetch_url("ftp://idp.internal/jwks", true).is_err());
    }
}
