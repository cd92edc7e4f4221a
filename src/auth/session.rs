//! App-session JWTs: HS256 tokens that an app's own backend signs with a shared secret after
//! the user signs in. The algorithm is pinned, and `iss`, `aud` and `exp` are required.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::identity::{IdentityRule, IdentitySettings, RequiredClaims};
use super::{AuthError, Principal, PrincipalSource, Verified, claims};
use crate::env::EnvVars;

/// HS256 keys shorter than the hash output weaken the MAC (RFC 7518 §3.2).
const MIN_SECRET_BYTES: usize = 32;

/// One `[[auth.sessions]]` issuer.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SessionIssuerSettings {
    /// The `iss` the app's tokens carry.
    pub issuer: String,
    /// Accepted `aud` values; a token must name one of them.
    pub audiences: Vec<String>,
    /// The environment variable that holds the shared secret (or `<NAME>_FILE`, a file with it).
    pub secret_env: String,
    /// The claim whose value becomes the Twilio identity.
    #[serde(default = "default_identity_claim")]
    pub identity_claim: String,
    /// Put before every identity from this issuer (e.g. `"app:"`). With several issuers, each
    /// needs its own (see `crate::auth::identity`), unless they share an `identity_namespace`.
    pub identity_prefix: Option<String>,
    /// Declares that the issuers naming the same namespace name the same people: the same
    /// claim value at each is the same user, and may mint the same identity.
    pub identity_namespace: Option<String>,
    /// Claims that must be present (`["tenant"]`), or must have a value
    /// (`{ email_verified = true }`).
    #[serde(default)]
    pub required_claims: RequiredClaims,
    /// Let an identity read from the `email` claim through without `email_verified = true`
    /// (only for an issuer that verifies every address before it signs).
    #[serde(default)]
    pub allow_unverified_email: bool,
    /// The claim holding the user's roles: a string or an array of strings.
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// Roles given to a user whose token has no roles claim.
    #[serde(default)]
    pub default_roles: Vec<String>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    #[serde(default = "default_leeway_secs")]
    pub leeway_secs: u64,
}

fn default_identity_claim() -> String {
    "sub".into()
}
fn default_roles_claim() -> String {
    "roles".into()
}
fn default_leeway_secs() -> u64 {
    30
}

/// Verifies one issuer's app-session tokens.
pub struct SessionVerifier {
    settings: SessionIssuerSettings,
    identity: IdentityRule,
    decoding_key: DecodingKey,
    encoding_key: EncodingKey,
    validation: Validation,
}

/// Names the issuer and algorithm only: the keys never reach a log line.
impl std::fmt::Debug for SessionVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionVerifier")
            .field("issuer", &self.settings.issuer)
            .field("algorithm", &"HS256")
            .finish_non_exhaustive()
    }
}

impl SessionVerifier {
    pub fn new(settings: &SessionIssuerSettings, env: &EnvVars) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        if settings.issuer.is_empty() {
            problems.push("issuer is empty: set it to the iss your app's session tokens carry".to_owned());
        }
        if settings.audiences.is_empty() || settings.audiences.iter().any(String::is_empty) {
            problems.push("audiences must list at least one non-empty aud value".to_owned());
        }
        problems.extend(crate::bounds::out_of_range("leeway_secs", settings.leeway_secs, 0..=300, "seconds"));
        if settings.roles_claim.is_empty() {
            problems.push("roles_claim must name a claim".to_owned());
        }
        let identity = IdentityRule::new(&settings.identity()).map_err(|mut p| problems.append(&mut p)).ok();
        let secret = match env.secret(&settings.secret_env) {
            Ok(Some(secret)) if secret.expose_secret().len() >= MIN_SECRET_BYTES => Some(secret),
            Ok(Some(_)) => {
                problems.push(format!(
                    "{} is shorter than {MIN_SECRET_BYTES} bytes: use a random secret of at least 32 bytes (e.g. `openssl rand -base64 48`)",
                    settings.secret_env
                ));
                None
            }
            Ok(None) => {
                problems.push(format!(
                    "{} (named by secret_env) is not set: set it, or {0}_FILE, to the app-session signing secret",
                    settings.secret_env
                ));
                None
            }
            Err(e) => {
                problems.push(e.to_string());
                None
            }
        };
        let (Some(secret), Some(identity)) = (secret, identity) else {
            return Err(problems);
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&settings.audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = settings.leeway_secs;
        validation.validate_nbf = true;
        let bytes = secret.expose_secret().as_bytes();
        Ok(Self {
            settings: settings.clone(),
            identity,
            decoding_key: DecodingKey::from_secret(bytes),
            encoding_key: EncodingKey::from_secret(bytes),
            validation,
        })
    }

    pub fn issuer(&self) -> &str {
        &self.settings.issuer
    }

    pub fn identity_rule(&self) -> &IdentityRule {
        &self.identity
    }

    pub fn verify(&self, token: &str) -> Result<Verified, AuthError> {
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &self.decoding_key, &self.validation)?.claims;
        let identity = self.identity.identity(&claims)?;
        let roles = claims::roles(&claims, &self.settings.roles_claim, &self.settings.default_roles);
        let subject = claims::claim_text(&claims, "sub").unwrap_or_else(|_| identity.clone());
        let principal = Principal {
            identity,
            subject,
            roles,
            may_act_as: false,
            tenant: None,
            source: PrincipalSource::Session { issuer: self.settings.issuer.clone() },
        };
        Ok(Verified { principal, expires_at: claims::expiry(&claims)? })
    }

    /// Signs a session token as the app would; used by `serve --dev` and tests.
    pub fn sign(&self, identity: &str, roles: &[&str], ttl_secs: u64) -> String {
        let now = crate::token::unix_now();
        let mut claims = Map::new();
        claims.insert("iss".into(), self.settings.issuer.clone().into());
        claims.insert("aud".into(), self.settings.audiences[0].clone().into());
        claims.insert(self.settings.identity_claim.clone(), identity.into());
        claims.insert(self.settings.roles_claim.clone(), roles.into());
        claims.insert("iat".into(), now.into());
        claims.insert("exp".into(), (now + ttl_secs).into());
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding_key)
            .expect("HS256 signing of a JSON map cannot fail")
    }
}

impl SessionIssuerSettings {
    fn identity(&self) -> IdentitySettings<'_> {
        IdentitySettings {
            identity_claim: &self.identity_claim,
            identity_template: None,
            identity_prefix: self.identity_prefix.as_deref(),
            identity_namespace: self.identity_namespace.as_deref(),
            required_claims: &self.required_claims,
            allow_unverified_email: self.allow_unverified_email,
        }
    }
}

/// Whether a JWT's header has a `crit` member. tokenmint understands no JWS extension, and RFC
/// 7515 §4.1.11 says a token whose critical extensions are not understood must be refused.
pub fn has_critical_header(token: &str) -> bool {
    use base64::Engine;
    let Some(header) = token.split('.').next() else { return false };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Map<String, Value>>(&bytes).ok())
        .is_some_and(|header| header.contains_key("crit"))
}

/// The `iss` of a JWT, read without verifying it, to choose which issuer's key to try.
pub fn unverified_issuer(token: &str) -> Result<String, AuthError> {
    #[derive(Deserialize)]
    struct Issuer {
        iss: String,
    }
    jsonwebtoken::dangerous::insecure_decode_claims::<Issuer>(token)
        .map(|claims| claims.iss)
        .map_err(|_| AuthError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef-session";

    fn verifier() -> SessionVerifier {
        let settings = SessionIssuerSettings {
            issuer: "https://app.example".into(),
            audiences: vec!["tokenmint".into()],
            secret_env: "SESSION_SECRET".into(),
            identity_claim: default_identity_claim(),
            identity_prefix: None,
            identity_namespace: None,
            required_claims: RequiredClaims::default(),
            allow_unverified_email: false,
            roles_claim: default_roles_claim(),
            default_roles: vec!["user".into()],
            leeway_secs: 0,
        };
        SessionVerifier::new(&settings, &[("SESSION_SECRET", SECRET)].into_iter().collect()).unwrap()
    }

    #[test]
    fn accepts_its_own_tokens_and_reads_identity_and_roles() {
        let verifier = verifier();
        let principal = verifier.verify(&verifier.sign("alice", &["admin", "user"], 60)).unwrap().principal;
        assert_eq!(principal.identity, "alice");
        assert_eq!(principal.roles, ["admin", "user"]);
        assert!(!principal.may_act_as);
    }

    #[test]
    fn refuses_short_or_missing_secrets() {
        let settings = verifier().settings;
        let short: EnvVars = [("SESSION_SECRET", "short")].into_iter().collect();
        assert!(SessionVerifier::new(&settings, &short).unwrap_err()[0].contains("shorter than 32 bytes"));
        assert!(SessionVerifier::new(&settings, &EnvVars::default()).unwrap_err()[0].contains("is not set"));
    }

    #[test]
    fn debug_shows_no_key() {
        let shown = format!("{:?}", verifier());
        assert!(shown.contains("HS256") && !shown.contains(SECRET));
    }

    #[test]
    fn refuses_a_token_signed_with_another_secret() {
        let token = verifier().sign("alice", &[], 60);
        let (message, _) = token.rsplit_once('.').unwrap();
        let forged = format!("{message}.{}", "A".repeat(43));
        assert_eq!(verifier().verify(&forged).unwrap_err(), AuthError::BadSignature);
    }
}
