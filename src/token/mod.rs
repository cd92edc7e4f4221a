//! Building and signing Twilio Access Tokens.
//!
//! A token is an HS256 JWT signed with an API key secret, with the header
//! `{"alg":"HS256","typ":"JWT","cty":"twilio-fpa;v=1"}` (plus `"twr"` for a region) and the
//! claims `jti`, `iss` (API key SID), `sub` (Account SID), `iat`, `exp`, optional `nbf` and
//! `grants`. The clock is read by the caller, once per token, and passed in as `issued_at`.

mod grants;
mod identity;
mod regions;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

pub use grants::{ChatGrant, GrantName, Grants, MIN_CHAT_TTL_SECS, SyncGrant, TaskRouterGrant, VideoGrant, VoiceGrant};
pub use identity::{IdentityError, MAX_VOICE_IDENTITY, VoiceIdentity, check_identity, is_voice_safe, voice_safe};
pub use regions::{DEFAULT_REGION, known_regions, products_in, region_problem};

/// The longest ttl Twilio accepts (error 20157 beyond it).
pub const MAX_TTL_SECS: u32 = 86_400;
/// The ttl when neither the request nor a policy cap says otherwise.
pub const DEFAULT_TTL_SECS: u32 = 3_600;
/// The content type Twilio requires in the header.
pub const TWILIO_CONTENT_TYPE: &str = "twilio-fpa;v=1";

/// The `[token]` section of the configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSettings {
    /// The ttl, in seconds, of a token whose request names none (capped by the policy rule).
    pub default_ttl_secs: u32,
    /// The Twilio region (`us1`, `ie1`, `au1`, …) written as the `twr` header; none by default.
    pub region: Option<String>,
    /// When set, tokens carry `nbf = iat - nbf_backdate_secs`. Unset by default: a phone whose
    /// clock runs behind rejects a token that is "not valid yet".
    pub nbf_backdate_secs: Option<u32>,
    /// The products Twilio offers in `region`, when they differ from tokenmint's table
    /// ([`products_in`]): for a region Twilio has added a product to, or one the table lacks.
    #[serde(default)]
    pub products: Option<Vec<GrantName>>,
}

impl TokenSettings {
    /// The products Twilio offers where these tokens are used: the operator's list, else the
    /// table's for the region (`us1` when none is set); `None` for a region the table lacks.
    pub fn products(&self) -> Option<Vec<GrantName>> {
        let region = self.region.as_deref().unwrap_or(DEFAULT_REGION);
        self.products.clone().or_else(|| products_in(region).map(<[GrantName]>::to_vec))
    }

    /// Every problem with this section, as sentences naming the key.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !(1..=MAX_TTL_SECS).contains(&self.default_ttl_secs) {
            problems.push(format!("token.default_ttl_secs must be from 1 to {MAX_TTL_SECS}"));
        }
        problems.extend(self.region.as_deref().and_then(|region| region_problem("token.region", region)));
        problems.extend(self.nbf_backdate_secs.and_then(|secs| {
            crate::bounds::out_of_range("token.nbf_backdate_secs", secs.into(), 0..=3_600, "seconds")
        }));
        problems
    }
}

/// What to put in one token. The policy decides it; nothing here widens it.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenSpec {
    pub identity: String,
    pub ttl_secs: u32,
    pub grants: Grants,
    /// An explicit `nbf`, in Unix seconds; `None` leaves it to `token.nbf_backdate_secs`.
    pub not_before: Option<u64>,
}

/// A signed token. `Debug` never shows the token itself.
pub struct MintedToken {
    pub token: SecretString,
    pub jti: String,
    pub issued_at: u64,
    pub expires_at: u64,
    pub key_sid: String,
}

impl std::fmt::Debug for MintedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintedToken")
            .field("token", &"[REDACTED]")
            .field("jti", &self.jti)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Why a token was not minted.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("ttl must be a whole number of seconds from 1 to {MAX_TTL_SECS}")]
    InvalidTtl,
    #[error("a token needs at least one grant")]
    NoGrants,
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("the claims could not be serialized: {0}")]
    Serialize(#[from] serde_json::Error),
}

#[derive(Serialize)]
struct Claims<'a> {
    jti: &'a str,
    grants: GrantsClaim<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nbf: Option<u64>,
    iat: u64,
    exp: u64,
    iss: &'a str,
    sub: &'a str,
}

/// `{"identity": …, "video": …, …}`, written in one pass (serde's `flatten` would buffer every
/// grant into an intermediate map first).
struct GrantsClaim<'a> {
    identity: &'a str,
    grants: &'a Grants,
}

impl Serialize for GrantsClaim<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("identity", self.identity)?;
        self.grants.serialize_entries(&mut map)?;
        map.end()
    }
}

#[derive(Serialize)]
struct JwtHeader<'a> {
    alg: &'static str,
    typ: &'static str,
    cty: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    twr: Option<&'a str>,
}

/// Signs tokens for one Twilio account with one API key. Built once per credential load, so
/// what never changes is done here and not per token: the header is already base64url text,
/// and the HMAC key schedule is computed once and cloned for each token.
pub struct TokenMinter {
    account_sid: String,
    key_sid: String,
    /// `base64url(header) + "."`.
    header_segment: String,
    /// HMAC-SHA256 keyed with the API key secret. (No `Debug`: it is as good as the secret.)
    mac: Hmac<Sha256>,
    nbf_backdate_secs: Option<u32>,
    region: Option<String>,
}

impl TokenMinter {
    /// A minter for the account `account_sid`, signing with the API key `key_sid` and its secret.
    pub fn new(account_sid: &str, key_sid: &str, secret: &SecretString, settings: &TokenSettings) -> Self {
        let header = JwtHeader { alg: "HS256", typ: "JWT", cty: TWILIO_CONTENT_TYPE, twr: settings.region.as_deref() };
        let mut header_segment =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).expect("a struct of strings serializes"));
        header_segment.push('.');
        Self {
            account_sid: account_sid.to_owned(),
            key_sid: key_sid.to_owned(),
            header_segment,
            mac: Hmac::new_from_slice(secret.expose_secret().as_bytes()).expect("HMAC takes a key of any length"),
            nbf_backdate_secs: settings.nbf_backdate_secs,
            region: settings.region.clone(),
        }
    }

    /// The region written into the tokens (`twr`), if any: where clients should connect.
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// The API key SID tokens are signed with (their `iss`).
    pub fn key_sid(&self) -> &str {
        &self.key_sid
    }

    /// Mints a token issued at `issued_at` (Unix seconds) with a random, unique `jti`.
    pub fn mint(&self, spec: &TokenSpec, issued_at: u64) -> Result<MintedToken, TokenError> {
        self.mint_with_jti_suffix(spec, issued_at, &crate::ids::unique_hex())
    }

    /// Mints with a given `jti` suffix; the official libraries' `jti` is `<SK>-<iat>`, which
    /// repeats within a second, so ours appends a suffix that is unique per token.
    pub fn mint_with_jti_suffix(
        &self,
        spec: &TokenSpec,
        issued_at: u64,
        jti_suffix: &str,
    ) -> Result<MintedToken, TokenError> {
        if !(1..=MAX_TTL_SECS).contains(&spec.ttl_secs) {
            return Err(TokenError::InvalidTtl);
        }
        if spec.grants.is_empty() {
            return Err(TokenError::NoGrants);
        }
        // The policy has applied the Voice alphabet where the operator wants it; here only what
        // Twilio refuses at mint time.
        check_identity(&spec.identity, &spec.grants, VoiceIdentity::Unchecked)?;
        let jti = format!("{}-{issued_at}-{jti_suffix}", self.key_sid);
        let expires_at = issued_at + u64::from(spec.ttl_secs);
        let claims = Claims {
            jti: &jti,
            grants: GrantsClaim { identity: &spec.identity, grants: &spec.grants },
            nbf: spec.not_before.or(self.nbf_backdate_secs.map(|b| issued_at.saturating_sub(u64::from(b)))),
            iat: issued_at,
            exp: expires_at,
            iss: &self.key_sid,
            sub: &self.account_sid,
        };
        let payload = serde_json::to_vec(&claims)?;
        let mut token = String::with_capacity(self.header_segment.len() + payload.len() * 4 / 3 + 48);
        token.push_str(&self.header_segment);
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let mut mac = self.mac.clone();
        mac.update(token.as_bytes());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(mac.finalize().into_bytes(), &mut token);
        Ok(MintedToken { token: SecretString::from(token), jti, issued_at, expires_at, key_sid: self.key_sid.clone() })
    }
}

/// The current time in Unix seconds: read once per token.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `2026-11-27T09:00:00Z` for a Unix time, as the API's `expires_at` reports it.
pub fn rfc3339(unix_secs: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix_secs)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minter(region: Option<&str>) -> TokenMinter {
        let settings = TokenSettings {
            default_ttl_secs: 3600,
            region: region.map(str::to_owned),
            nbf_backdate_secs: None,
            products: None,
        };
        TokenMinter::new(
            "AC0123456789abcdef0123456789abcdef",
            "SKfedcba9876543210fedcba9876543210",
            &SecretString::from("fake-secret-not-a-real-twilio-0k"),
            &settings,
        )
    }

    fn spec() -> TokenSpec {
        TokenSpec {
            identity: "alice".into(),
            ttl_secs: 3600,
            grants: Grants { video: Some(VideoGrant::default()), ..Grants::default() },
            not_before: None,
        }
    }

    #[test]
    fn header_carries_the_twilio_content_type_and_region() {
        let token = minter(Some("ie1")).mint(&spec(), 1_700_000_000).unwrap();
        let header = jsonwebtoken::decode_header(token.token.expose_secret()).unwrap();
        assert_eq!(header.cty.as_deref(), Some(TWILIO_CONTENT_TYPE));
        assert_eq!(header.extras.get::<String>("twr").unwrap().as_deref(), Some("ie1"));
        assert_eq!(header.alg, jsonwebtoken::Algorithm::HS256);
    }

    #[test]
    fn jti_is_unique_per_token_within_one_second() {
        let minter = minter(None);
        let a = minter.mint(&spec(), 1_700_000_000).unwrap();
        let b = minter.mint(&spec(), 1_700_000_000).unwrap();
        assert_ne!(a.jti, b.jti);
        assert!(a.jti.starts_with("SKfedcba9876543210fedcba9876543210-1700000000-"));
    }

    #[test]
    fn refuses_ttl_out_of_range_and_empty_grants() {
        let minter = minter(None);
        for ttl in [0, MAX_TTL_SECS + 1] {
            let spec = TokenSpec { ttl_secs: ttl, ..spec() };
            assert!(matches!(minter.mint(&spec, 1), Err(TokenError::InvalidTtl)));
        }
        let spec = TokenSpec { grants: Grants::default(), ..spec() };
        assert!(matches!(minter.mint(&spec, 1), Err(TokenError::NoGrants)));
    }

    #[test]
    fn debug_never_shows_the_token() {
        let token = minter(None).mint(&spec(), 1_700_000_000).unwrap();
        assert!(!format!("{token:?}").contains(token.token.expose_secret()));
    }

    #[test]
    fn formats_expiry_as_rfc3339() {
        assert_eq!(rfc3339(1_700_003_600), "2023-11-14T23:13:20Z");
    }
}
