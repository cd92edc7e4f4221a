//! Who is asking: turns the bearer credential of a request into a verified [`Principal`].
//!
//! Each kind of credential is verified by its own module; [`Authenticator`] picks the kind from
//! the credential's shape. A JWT (three dot-separated parts) goes to the issuer its unverified
//! `iss` names, and only that issuer's key is tried; anything else is looked up as a backend API
//! key. OpenID Connect providers slot in as a third kind beside these two.

mod api_key;
mod claims;
pub mod identity;
pub mod jwks;
mod provider;
mod rsa_keys;
mod session;
mod verified;

pub use rsa_keys::install as install_crypto_provider;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use api_key::{ApiKeySettings, ApiKeyStore};
pub use provider::{ProviderSettings, ProviderVerifier};
pub use session::{SessionIssuerSettings, SessionVerifier};
use verified::VerifiedTokens;

use crate::env::EnvVars;

/// Longest credential we try to verify; anything longer is refused unparsed.
const MAX_CREDENTIAL_BYTES: usize = 8 * 1024;

/// The `[auth]` section of the configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// Issuers of HS256 app-session JWTs.
    #[serde(default)]
    pub sessions: Vec<SessionIssuerSettings>,
    /// Backend API keys, stored only as SHA-256 hashes.
    #[serde(default)]
    pub api_keys: Vec<ApiKeySettings>,
    /// OpenID Connect / JWKS identity providers.
    #[serde(default)]
    pub providers: Vec<ProviderSettings>,
    /// JWTs already verified are remembered (by hash, until their `exp`), so a client that asks
    /// again with the same token skips the signature check; at most this many. 0: verify every
    /// time.
    #[serde(default = "default_verified_cache_size")]
    pub verified_cache_size: usize,
}

fn default_verified_cache_size() -> usize {
    10_000
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            sessions: Vec::new(),
            api_keys: Vec::new(),
            providers: Vec::new(),
            verified_cache_size: default_verified_cache_size(),
        }
    }
}

/// A credential's principal, and until when the credential holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub principal: Principal,
    /// The token's `exp`, in Unix seconds.
    pub expires_at: u64,
}

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The Twilio identity the caller's own tokens carry.
    pub identity: String,
    /// Who the credential says holds it: a JWT's `sub` (its identity when it has none), or a
    /// backend API key's name. The deny list's `subjects` match it.
    pub subject: String,
    /// Roles that select policy rules.
    pub roles: Vec<String>,
    /// Whether the caller may name another identity (a trusted backend).
    pub may_act_as: bool,
    /// The tenant an identity provider's token names (its `tenant_claim`), for choosing among
    /// several Twilio accounts.
    pub tenant: Option<String>,
    /// Which credential proved it, for the audit log.
    pub source: PrincipalSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalSource {
    Session { issuer: String },
    ApiKey { name: String },
    Provider { issuer: String },
}

impl std::fmt::Display for PrincipalSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Session { issuer } => write!(f, "session:{issuer}"),
            Self::ApiKey { name } => write!(f, "api_key:{name}"),
            Self::Provider { issuer } => write!(f, "provider:{issuer}"),
        }
    }
}

/// Why a credential was refused. The variant is the reason class kept for logs and metrics;
/// callers see only what RFC 6750 allows (see [`AuthError::public_detail`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no credential")]
    Missing,
    #[error("the Authorization header is not a Bearer credential")]
    NotBearer,
    #[error("the credential is not well formed")]
    Malformed,
    #[error("no configured issuer matches the credential's issuer")]
    UnknownIssuer,
    #[error("the algorithm is not allowed")]
    DisallowedAlgorithm,
    #[error("the signature does not verify")]
    BadSignature,
    #[error("no key of the provider matches the token's kid")]
    UnknownKey,
    #[error("the credential has expired")]
    Expired,
    #[error("the credential is not valid yet")]
    NotYetValid,
    #[error("the credential is for another audience")]
    WrongAudience,
    #[error("the credential lacks the claim {0}")]
    MissingClaim(String),
    #[error("the identity claim is empty or not a string")]
    BadIdentityClaim,
    #[error("the claim {0} does not have the value the issuer's settings require")]
    RequiredClaimValue(String),
    #[error("the claim {0} holds a separator of the identity template, so the identity could be read two ways")]
    AmbiguousIdentity(String),
    #[error("no API key matches")]
    UnknownApiKey,
    #[error("the credential is not an app user's JWT")]
    NotAppUserToken,
    #[error("the JWT names critical header extensions (crit), which tokenmint does not understand")]
    CriticalExtension,
}

/// Which kinds of credential a route takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// App-user JWTs and backend API keys (`POST /v1/tokens`).
    AnyCredential,
    /// App-user JWTs only: the token exchange's subject token is a user's token, never a key.
    AppUserJwt,
}

impl Principal {
    /// The key of this principal's own per-identity quota. An app user's is their Twilio
    /// identity (which already names the issuer, or its declared namespace), shared with a
    /// backend that mints for that identity ([`identity_quota_key`]); a backend key's is its name.
    pub fn quota_key(&self) -> String {
        match &self.source {
            PrincipalSource::ApiKey { name } => format!("api_key:{name}"),
            PrincipalSource::Session { .. } | PrincipalSource::Provider { .. } => identity_quota_key(&self.identity),
        }
    }
}

/// The per-identity quota key of a Twilio identity, whoever asks for it.
pub fn identity_quota_key(identity: &str) -> String {
    format!("identity:{identity}")
}

impl AuthError {
    /// A short, bounded label for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::NotBearer => "not_bearer",
            Self::Malformed => "malformed",
            Self::UnknownIssuer => "unknown_issuer",
            Self::DisallowedAlgorithm => "disallowed_algorithm",
            Self::BadSignature => "bad_signature",
            Self::UnknownKey => "unknown_key",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongAudience => "wrong_audience",
            Self::MissingClaim(_) => "missing_claim",
            Self::BadIdentityClaim => "bad_identity_claim",
            Self::RequiredClaimValue(_) => "required_claim_value",
            Self::AmbiguousIdentity(_) => "ambiguous_identity",
            Self::UnknownApiKey => "unknown_api_key",
            Self::NotAppUserToken => "not_app_user_token",
            Self::CriticalExtension => "critical_extension",
        }
    }

    /// What the caller is told: enough to fix an honest mistake, nothing that helps guess.
    pub fn public_detail(&self) -> &'static str {
        match self {
            Self::Missing => "send a credential as 'Authorization: Bearer <credential>'",
            Self::NotBearer => "the Authorization header must use the Bearer scheme",
            Self::Expired => "the credential has expired; sign in again",
            Self::NotYetValid => "the credential is not valid yet; check the clock of the system that issued it",
            Self::NotAppUserToken => {
                "the subject token must be an app user's JWT from a configured issuer, not a backend API key"
            }
            Self::RequiredClaimValue(_) => {
                "the credential lacks a claim value its issuer must vouch for here (such as a verified e-mail address)"
            }
            Self::AmbiguousIdentity(_) => {
                "a claim that makes up the identity holds the identity template's separator, so the identity would be ambiguous"
            }
            _ => "the credential is not valid",
        }
    }

    /// RFC 6750's error code: none when no credential was sent, else `invalid_token`.
    pub fn bearer_error(&self) -> Option<&'static str> {
        match self {
            Self::Missing => None,
            Self::NotBearer => Some("invalid_request"),
            _ => Some("invalid_token"),
        }
    }
}

/// One reading of the JWT library's errors for every kind of token.
impl From<jsonwebtoken::errors::Error> for AuthError {
    fn from(error: jsonwebtoken::errors::Error) -> Self {
        use jsonwebtoken::errors::ErrorKind;
        match error.into_kind() {
            ErrorKind::ExpiredSignature => Self::Expired,
            ErrorKind::ImmatureSignature => Self::NotYetValid,
            ErrorKind::InvalidSignature | ErrorKind::InvalidKeyFormat => Self::BadSignature,
            ErrorKind::InvalidAudience => Self::WrongAudience,
            ErrorKind::InvalidIssuer => Self::UnknownIssuer,
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => Self::DisallowedAlgorithm,
            ErrorKind::MissingRequiredClaim(claim) => Self::MissingClaim(claim),
            _ => Self::Malformed,
        }
    }
}

/// Verifies every kind of credential the configuration names.
pub struct Authenticator {
    sessions: Vec<SessionVerifier>,
    api_keys: ApiKeyStore,
    providers: Vec<ProviderVerifier>,
    verified: VerifiedTokens,
    /// `tokenmint_jwks_fetches_total{result}`, shared by every provider's key cache.
    jwks_fetches: prometheus::IntCounterVec,
    /// What it was built from (settings and secrets), to tell whether a reload changes it.
    inputs: [u8; 32],
}

impl Authenticator {
    /// Builds the verifiers, reading secrets from `env`; every problem is reported at once. With
    /// the `running` authenticator (a reload), a provider whose settings did not change keeps its
    /// key cache (and its refresh task), so its keys need no new fetch.
    pub fn from_settings(
        settings: &AuthSettings,
        env: &EnvVars,
        running: Option<&Authenticator>,
    ) -> Result<Self, Vec<String>> {
        install_crypto_provider();
        let mut problems = Vec::new();
        let mut sessions = Vec::new();
        for (index, issuer) in settings.sessions.iter().enumerate() {
            match SessionVerifier::new(issuer, env) {
                Ok(verifier) => sessions.push(verifier),
                Err(found) => problems.extend(found.iter().map(|p| format!("auth.sessions[{index}]: {p}"))),
            }
            if settings.sessions[..index].iter().any(|other| other.issuer == issuer.issuer) {
                problems.push(format!("auth.sessions[{index}]: issuer {:?} is configured twice", issuer.issuer));
            }
        }
        let api_keys = ApiKeyStore::new(&settings.api_keys).unwrap_or_else(|mut found| {
            problems.append(&mut found);
            ApiKeyStore::default()
        });
        let jwks_fetches = match running {
            Some(running) => running.jwks_fetches.clone(),
            None => crate::metrics::jwks_fetches(),
        };
        let mut providers = Vec::new();
        for (index, provider) in settings.providers.iter().enumerate() {
            match ProviderVerifier::new(provider, jwks_fetches.clone()) {
                Ok(mut verifier) => {
                    if let Some(same) = running.and_then(|r| r.providers.iter().find(|p| p.settings() == provider)) {
                        verifier.cache = same.cache.clone();
                    }
                    providers.push(verifier);
                }
                Err(found) => {
                    problems.extend(found.iter().map(|p| format!("auth.providers[{index}] ({}): {p}", provider.issuer)))
                }
            }
            let taken = settings.providers[..index].iter().any(|other| other.issuer == provider.issuer)
                || settings.sessions.iter().any(|session| session.issuer == provider.issuer);
            if taken {
                problems.push(format!("auth.providers[{index}]: issuer {:?} is configured twice", provider.issuer));
            }
        }
        if problems.is_empty() {
            problems.extend(identity::collision_problems(&Self::identity_rules(&sessions, &providers)));
        }
        if settings.providers.is_empty() && settings.sessions.is_empty() && settings.api_keys.is_empty() {
            problems.push(
                "auth: no credential kind is configured, so every request would be refused: add an [[auth.providers]] or [[auth.sessions]] issuer, or an [[auth.api_keys]] entry"
                    .to_owned(),
            );
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let verified = VerifiedTokens::new(settings.verified_cache_size);
        let inputs = Self::inputs(settings, env);
        Ok(Self { sessions, api_keys, providers, verified, jwks_fetches, inputs })
    }

    fn inputs(settings: &AuthSettings, env: &EnvVars) -> [u8; 32] {
        let secrets: Vec<&str> = settings.sessions.iter().map(|s| s.secret_env.as_str()).collect();
        env.fingerprint(settings, &secrets)
    }

    /// Whether these settings and secrets are the ones it was built from.
    pub fn built_from(&self, settings: &AuthSettings, env: &EnvVars) -> bool {
        self.inputs == Self::inputs(settings, env)
    }

    /// Fetches the keys of every provider new since `running` (one a reload added) that has
    /// none yet; returns a sentence for each whose keys still cannot be had. A provider that was
    /// already running keeps its cache and its own retries: its outage blocks no reload.
    pub async fn fetch_missing_keys(&self, running: &Authenticator) -> Vec<String> {
        let is_new = |p: &&ProviderVerifier| !running.providers.iter().any(|r| Arc::ptr_eq(&r.cache, &p.cache));
        let mut problems = Vec::new();
        for provider in self.providers.iter().filter(is_new).filter(|p| !p.cache.has_keys()) {
            if let Err(reason) = provider.cache.refresh_now().await {
                problems
                    .push(format!("auth.providers ({}): its keys could not be fetched: {reason}", provider.issuer()));
            }
        }
        problems
    }

    /// Every JWT issuer with the rule its identities are made by.
    fn identity_rules<'a>(
        sessions: &'a [SessionVerifier],
        providers: &'a [ProviderVerifier],
    ) -> Vec<(&'a str, &'a identity::IdentityRule)> {
        sessions
            .iter()
            .map(|s| (s.issuer(), s.identity_rule()))
            .chain(providers.iter().map(|p| (p.issuer(), p.identity_rule())))
            .collect()
    }

    /// Each issuer with the prefix all its identities begin with, for `check-config`.
    pub fn identity_prefixes(&self) -> Vec<(String, String)> {
        Self::identity_rules(&self.sessions, &self.providers)
            .into_iter()
            .map(|(issuer, rule)| (issuer.to_owned(), rule.prefix().to_owned()))
            .collect()
    }

    /// How each issuer's identities are made, for `check-config`.
    pub fn describe_identities(&self) -> Vec<(String, String)> {
        Self::identity_rules(&self.sessions, &self.providers)
            .into_iter()
            .map(|(issuer, rule)| (issuer.to_owned(), rule.describe()))
            .collect()
    }

    /// Verifies a bearer credential of the kinds `accepted` names.
    pub async fn authenticate(&self, credential: &str, accepted: Accepted) -> Result<Principal, AuthError> {
        if credential.is_empty() || credential.len() > MAX_CREDENTIAL_BYTES {
            return Err(AuthError::Malformed);
        }
        let is_jwt = credential.bytes().filter(|&b| b == b'.').count() == 2;
        match (is_jwt, accepted) {
            (true, _) => self.verify_jwt(credential).await,
            (false, Accepted::AnyCredential) => self.api_keys.verify(credential),
            (false, Accepted::AppUserJwt) => Err(AuthError::NotAppUserToken),
        }
    }

    /// Verifies an app user's JWT with the key of the issuer it names.
    async fn verify_jwt(&self, credential: &str) -> Result<Principal, AuthError> {
        let now = crate::token::unix_now();
        let key = VerifiedTokens::key(credential);
        if let Some(principal) = self.verified.get(&key, now) {
            return Ok(principal);
        }
        if session::has_critical_header(credential) {
            return Err(AuthError::CriticalExtension);
        }
        let issuer = session::unverified_issuer(credential)?;
        let verified = match self.providers.iter().find(|p| p.issuer() == issuer) {
            Some(provider) => provider.verify(credential).await?,
            None => self
                .sessions
                .iter()
                .find(|v| v.issuer() == issuer)
                .ok_or(AuthError::UnknownIssuer)?
                .verify(credential)?,
        };
        self.verified.insert(key, &verified.principal, verified.expires_at, now);
        Ok(verified.principal)
    }

    /// Whether every identity provider holds a key set (readiness).
    pub fn providers_ready(&self) -> bool {
        self.providers.iter().all(|p| p.cache.has_keys())
    }

    /// Keeps every provider's keys fresh: starts the refresh task of each key cache that has
    /// none yet. A task ends when its cache is dropped, or with its handle.
    pub fn spawn_key_refresh(&self) -> Vec<tokio::task::JoinHandle<()>> {
        self.providers.iter().filter_map(|p| p.cache.start_refresh()).collect()
    }

    /// This module's series, for the app's registry.
    pub fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![Box::new(self.jwks_fetches.clone())]
    }

    /// Signs an app-session token with the first configured issuer's secret, for `serve --dev`
    /// and for tests. `None` when no session issuer is configured.
    pub fn dev_session_token(&self, identity: &str, roles: &[&str], ttl_secs: u64) -> Option<String> {
        self.sessions.first().map(|v| v.sign(identity, roles, ttl_secs))
    }
}

/// Reads the credential out of an `Authorization` header value.
pub fn bearer_credential(header: Option<&str>) -> Result<&str, AuthError> {
    let header = header.ok_or(AuthError::Missing)?;
    let (scheme, credential) = header.split_once(' ').ok_or(AuthError::NotBearer)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::NotBearer);
    }
    Ok(credential.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_required() {
        assert_eq!(bearer_credential(Some("Bearer abc")), Ok("abc"));
        assert_eq!(bearer_credential(Some("bearer abc")), Ok("abc"));
        assert_eq!(bearer_credential(Some("Basic abc")), Err(AuthError::NotBearer));
        assert_eq!(bearer_credential(Some("Bearerabc")), Err(AuthError::NotBearer));
        assert_eq!(bearer_credential(None), Err(AuthError::Missing));
    }
}
