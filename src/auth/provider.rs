//! OpenID Connect / JWKS providers: app-user JWTs (ID or access tokens) signed by an identity
//! provider's private key and verified with its published public keys.
//!
//! Asymmetric algorithms only: `none` and HS* are refused outright, so a token "signed" with the
//! provider's public key as an HMAC secret (key confusion) can never verify. Header fields that
//! point at other keys (`jku`, `x5u`, an embedded `jwk`) are ignored; only the provider's own
//! key set is used.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::claims::{self, claim_text};
use super::identity::{IdentityRule, IdentitySettings, RequiredClaims};
use super::jwks::{JwksCache, KeySet, KeySource, Refresh, check_fetch_url};
use super::{AuthError, Principal, PrincipalSource, Verified};

const ASYMMETRIC: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// One `[[auth.providers]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    /// The `iss` the provider's tokens carry (and, without `jwks_uri`, where discovery starts).
    pub issuer: String,
    /// Accepted `aud` values (your app's client ID or API identifier).
    pub audiences: Vec<String>,
    /// Where the keys are; unset: OpenID discovery at `<issuer>/.well-known/openid-configuration`.
    pub jwks_uri: Option<String>,
    /// A JWK set given inline (JSON), instead of fetching one.
    pub jwks: Option<String>,
    /// A public key given inline as PEM (RSA, EC or Ed25519), instead of fetching a set.
    pub public_key_pem: Option<String>,
    /// Allowed algorithms (RS256/384/512, PS256/384/512, ES256/384, EdDSA).
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// The claim that becomes the Twilio identity: a top-level name (`sub`, `email`,
    /// `https://example.com/uid`) or a dotted path into nested objects.
    #[serde(default = "default_identity_claim")]
    pub identity_claim: String,
    /// Builds the identity from several claims instead, e.g. `"{tenant}:{sub}"`. A claim value
    /// holding a character of the text between two claims is refused (it could be read two
    /// ways).
    pub identity_template: Option<String>,
    /// Put before every identity from this provider (e.g. `"google:"`). With several issuers,
    /// each needs its own (see `crate::auth::identity`), unless they share an
    /// `identity_namespace`.
    pub identity_prefix: Option<String>,
    /// Declares that the issuers naming the same namespace name the same people: the same
    /// claim value at each is the same user, and may mint the same identity.
    pub identity_namespace: Option<String>,
    /// The claim holding roles (a string or an array), e.g. `realm_access.roles` for Keycloak
    /// or `cognito:groups` for Cognito.
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// Roles for a user whose token carries none.
    #[serde(default)]
    pub default_roles: Vec<String>,
    /// The claim naming the user's tenant (required in every token when set).
    pub tenant_claim: Option<String>,
    /// Claims that must be present (`["tenant"]`), or must have a value
    /// (`{ email_verified = true, hd = "example.com" }`). An identity read from `email` always
    /// requires `email_verified = true`, unless `allow_unverified_email` is set.
    #[serde(default)]
    pub required_claims: RequiredClaims,
    /// Let an identity read from the `email` claim through without `email_verified = true`
    /// (only for a provider that verifies every address before it signs).
    #[serde(default)]
    pub allow_unverified_email: bool,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds (phones' clocks drift).
    #[serde(default = "default_leeway_secs")]
    pub leeway_secs: u64,
    /// Key refresh bounds in seconds; `Cache-Control: max-age` is honoured within them.
    #[serde(default = "default_refresh_min_secs")]
    pub refresh_min_secs: u64,
    #[serde(default = "default_refresh_max_secs")]
    pub refresh_max_secs: u64,
    /// At most one refetch per this many seconds when a token names an unknown `kid`.
    #[serde(default = "default_unknown_kid_secs")]
    pub unknown_kid_refetch_secs: u64,
    /// Connect and total timeout for fetching keys, in milliseconds.
    #[serde(default = "default_fetch_timeout_ms")]
    pub fetch_timeout_ms: u64,
    /// Fetch keys over plain http from a host other than loopback. Only for a development setup
    /// (deploy/compose.yaml) or a network that encrypts for you: anyone on the path could
    /// substitute keys and sign tokens as any user.
    #[serde(default)]
    pub allow_insecure_http: bool,
}

fn default_algorithms() -> Vec<String> {
    vec!["RS256".into()]
}
fn default_identity_claim() -> String {
    "sub".into()
}
fn default_roles_claim() -> String {
    "roles".into()
}
fn default_leeway_secs() -> u64 {
    60
}
fn default_refresh_min_secs() -> u64 {
    300
}
fn default_refresh_max_secs() -> u64 {
    86_400
}
fn default_unknown_kid_secs() -> u64 {
    30
}
fn default_fetch_timeout_ms() -> u64 {
    5_000
}

/// Verifies one provider's tokens.
pub struct ProviderVerifier {
    settings: ProviderSettings,
    identity: IdentityRule,
    algorithms: Vec<Algorithm>,
    /// The claim checks of each allowed algorithm, built once (not per token: building one
    /// allocates its sets of issuers, audiences and required claims).
    validations: Vec<(Algorithm, Validation)>,
    pub cache: Arc<JwksCache>,
}

impl std::fmt::Debug for ProviderVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderVerifier")
            .field("issuer", &self.settings.issuer)
            .field("algorithms", &self.algorithms)
            .finish()
    }
}

/// The claim checks of a token signed with `alg`: issuer, audience, expiry and not-before
/// (with the provider's leeway), each required.
fn validation(settings: &ProviderSettings, alg: Algorithm) -> Validation {
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[&settings.issuer]);
    validation.set_audience(&settings.audiences);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    validation.leeway = settings.leeway_secs;
    validation.validate_nbf = true;
    validation
}

impl ProviderVerifier {
    pub fn new(settings: &ProviderSettings, fetches: prometheus::IntCounterVec) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        if settings.issuer.is_empty() {
            problems.push("issuer is empty".to_owned());
        }
        if settings.audiences.is_empty() || settings.audiences.iter().any(String::is_empty) {
            problems.push("audiences must list at least one non-empty aud value".to_owned());
        }
        let mut algorithms = Vec::new();
        for name in &settings.algorithms {
            match name.parse::<Algorithm>() {
                Ok(alg) if ASYMMETRIC.contains(&alg) => algorithms.push(alg),
                _ => problems.push(format!(
                    "algorithm {name:?} is not allowed for a key-set provider: use RS256/384/512, PS256/384/512, ES256/384 or EdDSA"
                )),
            }
        }
        if settings.algorithms.is_empty() {
            problems.push("algorithms is empty".to_owned());
        }
        let identity = IdentityRule::new(&settings.identity()).map_err(|mut p| problems.append(&mut p)).ok();
        for (key, value, range, unit) in [
            ("leeway_secs", settings.leeway_secs, 0..=300, "seconds"),
            ("refresh_min_secs", settings.refresh_min_secs, 1..=86_400, "seconds"),
            ("refresh_max_secs", settings.refresh_max_secs, 1..=604_800, "seconds"),
            ("unknown_kid_refetch_secs", settings.unknown_kid_refetch_secs, 1..=3_600, "seconds"),
            ("fetch_timeout_ms", settings.fetch_timeout_ms, 100..=60_000, "milliseconds"),
        ] {
            problems.extend(crate::bounds::out_of_range(key, value, range, unit));
        }
        if settings.refresh_min_secs > settings.refresh_max_secs {
            problems.push("refresh_min_secs must be at most refresh_max_secs".to_owned());
        }
        let refresh = Refresh {
            min: Duration::from_secs(settings.refresh_min_secs.max(1)),
            max: Duration::from_secs(settings.refresh_max_secs.max(1)),
            unknown_kid_interval: Duration::from_secs(settings.unknown_kid_refetch_secs),
            timeout: Duration::from_millis(settings.fetch_timeout_ms.max(1)),
        };
        let sources = [settings.jwks.is_some(), settings.jwks_uri.is_some(), settings.public_key_pem.is_some()];
        let cache = match (&settings.jwks, &settings.jwks_uri) {
            _ if sources.iter().filter(|set| **set).count() > 1 => {
                problems.push("set one of jwks, jwks_uri and public_key_pem".to_owned());
                None
            }
            _ if settings.public_key_pem.is_some() => {
                match KeySet::from_pem(settings.public_key_pem.as_deref().unwrap_or_default().as_bytes(), &algorithms) {
                    Some(keys) => Some(JwksCache::fixed(keys, fetches)),
                    None => {
                        problems.push(
                            "public_key_pem is not a PEM public key of a type the allowed algorithms use".to_owned(),
                        );
                        None
                    }
                }
            }
            (Some(inline), None) => match KeySet::parse(inline.as_bytes(), &algorithms) {
                Ok(keys) if !keys.keys.is_empty() => Some(JwksCache::fixed(keys, fetches)),
                Ok(_) => {
                    problems.push("jwks holds no key usable with the allowed algorithms".to_owned());
                    None
                }
                Err(e) => {
                    problems.push(format!("jwks: {e}"));
                    None
                }
            },
            (None, Some(uri)) => match check_fetch_url(uri, settings.allow_insecure_http) {
                Ok(()) => Some(JwksCache::new(KeySource::Uri(uri.clone()), algorithms.clone(), refresh, fetches)),
                Err(e) => {
                    problems.push(format!("jwks_uri {e}"));
                    None
                }
            },
            (Some(_), Some(_)) => None,
            (None, None) => match check_fetch_url(&settings.issuer, settings.allow_insecure_http) {
                Ok(()) => Some(JwksCache::new(
                    KeySource::Discovery {
                        issuer: settings.issuer.clone(),
                        allow_insecure_http: settings.allow_insecure_http,
                    },
                    algorithms.clone(),
                    refresh,
                    fetches,
                )),
                Err(e) => {
                    problems.push(format!("issuer (for discovery) {e}"));
                    None
                }
            },
        };
        match (cache, identity) {
            (Some(cache), Some(identity)) if problems.is_empty() => {
                let validations = algorithms.iter().map(|&alg| (alg, validation(settings, alg))).collect();
                Ok(Self { settings: settings.clone(), identity, algorithms, validations, cache: Arc::new(cache) })
            }
            _ => Err(problems),
        }
    }

    pub fn issuer(&self) -> &str {
        &self.settings.issuer
    }

    pub fn identity_rule(&self) -> &IdentityRule {
        &self.identity
    }

    pub fn settings(&self) -> &ProviderSettings {
        &self.settings
    }

    pub async fn verify(&self, token: &str) -> Result<Verified, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
            ErrorKind::InvalidAlgorithmName => AuthError::DisallowedAlgorithm,
            _ => AuthError::Malformed,
        })?;
        if !self.algorithms.contains(&header.alg) {
            return Err(AuthError::DisallowedAlgorithm);
        }
        let kid = header.kid.as_deref();
        let claims = match self.try_keys(token, header.alg, kid) {
            Err(AuthError::UnknownKey) => {
                // Maybe the provider rotated: one shared, rate-limited refetch, then one retry.
                self.cache.refetch_for_unknown_kid().await;
                self.try_keys(token, header.alg, kid)?
            }
            other => other?,
        };
        Ok(Verified { principal: self.principal(&claims)?, expires_at: claims::expiry(&claims)? })
    }

    /// Verifies with the cached keys that fit `kid` and `alg`. A key without a `kid` (a static
    /// PEM key, say) is tried whatever the token's `kid` says; the `kid` only picks among
    /// named keys.
    fn try_keys(&self, token: &str, alg: Algorithm, kid: Option<&str>) -> Result<Map<String, Value>, AuthError> {
        let keys = self.cache.keys().ok_or(AuthError::UnknownKey)?;
        let (_, validation) =
            self.validations.iter().find(|(allowed, _)| *allowed == alg).ok_or(AuthError::DisallowedAlgorithm)?;
        let candidates = keys
            .keys
            .iter()
            .filter(|k| kid.is_none() || k.kid.is_none() || k.kid.as_deref() == kid)
            .filter(|k| k.alg.is_none_or(|a| a == alg));
        let mut outcome = Err(AuthError::UnknownKey);
        for candidate in candidates {
            match jsonwebtoken::decode::<Map<String, Value>>(token, &candidate.key, validation) {
                Ok(data) => return Ok(data.claims),
                Err(e) => {
                    outcome = Err(match AuthError::from(e) {
                        // The header's alg is allowed (checked above), so this key is of
                        // another type: as far as this token goes, the wrong key.
                        AuthError::DisallowedAlgorithm => AuthError::BadSignature,
                        reason => reason,
                    });
                    // A definite answer about the claims ends the search; a bad signature may
                    // just be the wrong one of several kid-less keys.
                    if !matches!(outcome, Err(AuthError::BadSignature)) {
                        return outcome.map(|()| unreachable!());
                    }
                }
            }
        }
        outcome.map(|()| unreachable!())
    }

    fn principal(&self, claims: &Map<String, Value>) -> Result<Principal, AuthError> {
        let identity = self.identity.identity(claims)?;
        let roles = claims::roles(claims, &self.settings.roles_claim, &self.settings.default_roles);
        let tenant = self.settings.tenant_claim.as_deref().map(|path| claim_text(claims, path)).transpose()?;
        let subject = claim_text(claims, "sub").unwrap_or_else(|_| identity.clone());
        Ok(Principal {
            identity,
            subject,
            roles,
            may_act_as: false,
            tenant,
            source: PrincipalSource::Provider { issuer: self.settings.issuer.clone() },
        })
    }
}

impl ProviderSettings {
    fn identity(&self) -> IdentitySettings<'_> {
        IdentitySettings {
            identity_claim: &self.identity_claim,
            identity_template: self.identity_template.as_deref(),
            identity_prefix: self.identity_prefix.as_deref(),
            identity_namespace: self.identity_namespace.as_deref(),
            required_claims: &self.required_claims,
            allow_unverified_email: self.allow_unverified_email,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_and_none_algorithms_are_configuration_errors() {
        let settings = ProviderSettings {
            issuer: "https://idp.example".into(),
            audiences: vec!["app".into()],
            jwks_uri: None,
            jwks: None,
            public_key_pem: None,
            tenant_claim: None,
            algorithms: vec!["HS256".into(), "none".into(), "RS256".into()],
            identity_claim: default_identity_claim(),
            identity_template: None,
            identity_prefix: None,
            identity_namespace: None,
            roles_claim: default_roles_claim(),
            default_roles: vec![],
            required_claims: RequiredClaims::default(),
            allow_unverified_email: false,
            leeway_secs: 60,
            refresh_min_secs: 300,
            refresh_max_secs: 3600,
            unknown_kid_refetch_secs: 30,
            fetch_timeout_ms: 1000,
            allow_insecure_http: false,
        };
        let fetches = prometheus::IntCounterVec::new(prometheus::Opts::new("f", "f"), &["result"]).unwrap();
        let problems = ProviderVerifier::new(&settings, fetches.clone()).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        let plain_http =
            ProviderSettings { issuer: "http://idp.example".into(), algorithms: vec!["RS256".into()], ..settings };
        assert!(ProviderVerifier::new(&plain_http, fetches.clone()).unwrap_err()[0].contains("must use https"));
        let opted_in = ProviderSettings { allow_insecure_http: true, ..plain_http };
        assert!(ProviderVerifier::new(&opted_in, fetches).is_ok());
    }
}
