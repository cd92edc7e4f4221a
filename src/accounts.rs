//! The Twilio accounts tokens are signed for: the default one (`TWILIO_*`) and each
//! `[accounts.<name>]` (`TWILIO_<NAME>_*`), their variable names, their credentials read from the
//! environment, and the set of minters in use, one per account.
//!
//! Tokens are signed with an API key secret (revocable one key at a time), never the Account
//! Auth Token (permanent, and rotating it breaks every integration). Start-up refuses an Auth
//! Token offered in an API key's place, with a sentence that says why.

use secrecy::{ExposeSecret, SecretString};

use std::sync::Arc;

use crate::env::{EnvError, EnvVars};
use crate::sid::{Account, ApiKey, Sid};
use crate::token::GrantName;
use crate::token::{TokenMinter, TokenSettings};

/// The name policy rules use for the account of `TWILIO_*`.
pub const DEFAULT_ACCOUNT: &str = "default";

pub const ACCOUNT_SID_VAR: &str = "TWILIO_ACCOUNT_SID";
pub const API_KEY_VAR: &str = "TWILIO_API_KEY";
pub const API_SECRET_VAR: &str = "TWILIO_API_SECRET";
#[cfg(test)]
const AUTH_TOKEN_VAR: &str = "TWILIO_AUTH_TOKEN";

/// The account SID, API key SID and API key secret. `Debug` shows the SIDs, never the secret.
#[derive(Clone)]
pub struct TwilioCredentials {
    pub account_sid: Sid<Account>,
    pub api_key_sid: Sid<ApiKey>,
    pub api_secret: SecretString,
}

/// A problem with the credentials; each message names the variable and the fix.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CredentialError {
    #[error(transparent)]
    Env(#[from] EnvError),
    #[error("{0} is not set: set it (or {0}_FILE) to {1}")]
    Missing(String, &'static str),
    #[error("{0} is not {1}: copy it from the Twilio Console")]
    Malformed(String, String),
    #[error(
        "{0} holds an Account SID (AC…), not an API key SID: create an API key in the Twilio Console \
         and set {0} to its SK… SID and the secret variable to its secret; production services sign with \
         API keys because each can be revoked alone, while the Auth Token is permanent and rotating it breaks every integration"
    )]
    AccountSidAsApiKey(String),
    #[error(
        "{0} is set but {1} is not: tokenmint never signs with the Auth Token; create an API \
         key in the Twilio Console and set {1} (SK…) and its secret instead, since an API key can be \
         revoked alone while the Auth Token is permanent and rotating it breaks every integration"
    )]
    AuthTokenInsteadOfApiKey(String, String),
    #[error("{0} equals {1}: set {0} to the secret shown when the API key was created, never the Auth Token")]
    AuthTokenAsApiSecret(String, String),
    /// Several of the above, each its own sentence.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Several(Vec<CredentialError>),
}

/// The variable names of one account: `TWILIO_ACCOUNT_SID` and so on for the default account,
/// `TWILIO_<NAME>_ACCOUNT_SID` and so on for a named one (`[accounts.<name>]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialVars {
    pub account_sid: String,
    pub api_key: String,
    pub api_secret: String,
    auth_token: String,
}

impl CredentialVars {
    /// The default account's variables.
    pub fn default_account() -> Self {
        Self::with_prefix("TWILIO_")
    }

    /// A named account's: `eu` reads `TWILIO_EU_ACCOUNT_SID`, `TWILIO_EU_API_KEY`, ….
    pub fn named(name: &str) -> Self {
        Self::with_prefix(&format!("TWILIO_{}_", name.to_ascii_uppercase()))
    }

    /// The variables of the account a policy rule names: `"default"` or an `[accounts.<name>]`.
    pub fn for_account(name: &str) -> Self {
        if name == DEFAULT_ACCOUNT { Self::default_account() } else { Self::named(name) }
    }

    fn with_prefix(prefix: &str) -> Self {
        Self {
            account_sid: format!("{prefix}ACCOUNT_SID"),
            api_key: format!("{prefix}API_KEY"),
            api_secret: format!("{prefix}API_SECRET"),
            auth_token: format!("{prefix}AUTH_TOKEN"),
        }
    }

    /// The three variables a `_FILE` may stand for.
    pub fn names(&self) -> [&str; 3] {
        [&self.account_sid, &self.api_key, &self.api_secret]
    }
}

impl TwilioCredentials {
    /// Reads and validates the default account's `TWILIO_ACCOUNT_SID`, `TWILIO_API_KEY` and
    /// `TWILIO_API_SECRET` (each also as `NAME_FILE`).
    pub fn from_env(env: &EnvVars) -> Result<Self, CredentialError> {
        Self::from_vars(env, &CredentialVars::default_account())
    }

    /// Reads and validates one account's variables; every problem at once.
    pub fn from_vars(env: &EnvVars, vars: &CredentialVars) -> Result<Self, CredentialError> {
        let mut problems = Vec::new();
        let api_key_sid = Self::api_key_sid(env, vars).map_err(|e| problems.push(e)).ok();
        let account_sid = Self::account_sid(env, vars).map_err(|e| problems.push(e)).ok();
        let api_secret = Self::api_secret(env, vars).map_err(|e| problems.push(e)).ok();
        if let (Some(secret), Ok(Some(auth_token))) = (&api_secret, env.secret(&vars.auth_token))
            && auth_token.expose_secret() == secret.expose_secret()
        {
            problems.push(CredentialError::AuthTokenAsApiSecret(vars.api_secret.clone(), vars.auth_token.clone()));
        }
        match (account_sid, api_key_sid, api_secret) {
            (Some(account_sid), Some(api_key_sid), Some(api_secret)) if problems.is_empty() => {
                Ok(Self { account_sid, api_key_sid, api_secret })
            }
            _ if problems.len() == 1 => Err(problems.remove(0)),
            _ => Err(CredentialError::Several(problems)),
        }
    }

    /// The API key SID: set, an SK… SID, and neither an Account SID nor left out for an Auth Token.
    fn api_key_sid(env: &EnvVars, vars: &CredentialVars) -> Result<Sid<ApiKey>, CredentialError> {
        match env.value(&vars.api_key)? {
            Some(key) if Sid::<Account>::parse(&key).is_ok() => {
                Err(CredentialError::AccountSidAsApiKey(vars.api_key.clone()))
            }
            Some(key) => Sid::parse(&key).map_err(|e| {
                CredentialError::Malformed(vars.api_key.clone(), format!("an API key SID ({})", e.0.shape()))
            }),
            None if env.is_set(&vars.auth_token) => {
                Err(CredentialError::AuthTokenInsteadOfApiKey(vars.auth_token.clone(), vars.api_key.clone()))
            }
            None => {
                Err(CredentialError::Missing(vars.api_key.clone(), "your API key SID (SK followed by 32 hex digits)"))
            }
        }
    }

    /// The API key's secret: set.
    fn api_secret(env: &EnvVars, vars: &CredentialVars) -> Result<SecretString, CredentialError> {
        env.secret(&vars.api_secret)?.ok_or_else(|| {
            CredentialError::Missing(vars.api_secret.clone(), "the secret shown when the API key was created")
        })
    }

    /// The Account SID: set, and an AC… SID.
    fn account_sid(env: &EnvVars, vars: &CredentialVars) -> Result<Sid<Account>, CredentialError> {
        match env.value(&vars.account_sid)? {
            Some(sid) => Sid::parse(&sid).map_err(|e| {
                CredentialError::Malformed(vars.account_sid.clone(), format!("an Account SID ({})", e.0.shape()))
            }),
            None => Err(CredentialError::Missing(
                vars.account_sid.clone(),
                "your Account SID (AC followed by 32 hex digits)",
            )),
        }
    }

    /// Clearly fake credentials for `serve --dev`: Twilio rejects tokens signed with them.
    pub fn placeholder(secret: SecretString) -> Self {
        Self { account_sid: Sid::placeholder(), api_key_sid: Sid::placeholder(), api_secret: secret }
    }

    /// The minter that signs for this account with `settings` (its own region).
    pub fn minter(&self, settings: &TokenSettings) -> TokenMinter {
        TokenMinter::new(self.account_sid.as_str(), self.api_key_sid.as_str(), &self.api_secret, settings)
    }

    /// Whether these are the `--dev` placeholders.
    pub fn is_placeholder(&self) -> bool {
        self.api_key_sid.is_placeholder()
    }
}

/// The minters in use, one per Twilio account: the default account's (`TWILIO_*`), which always
/// exists, and each `[accounts.<name>]`'s. A reload builds a new set, reusing the minter of an
/// account whose new credentials were refused, so each account rotates on its own.
#[derive(Clone)]
pub struct Minters {
    default: Arc<TokenMinter>,
    named: std::collections::BTreeMap<String, Arc<TokenMinter>>,
}

impl Minters {
    pub fn new(default: Arc<TokenMinter>, named: impl IntoIterator<Item = (String, Arc<TokenMinter>)>) -> Self {
        Self { default, named: named.into_iter().collect() }
    }

    /// The minter of `account` ([`DEFAULT_ACCOUNT`] or an `[accounts.<name>]` name).
    pub fn get(&self, account: &str) -> Option<&Arc<TokenMinter>> {
        if account == DEFAULT_ACCOUNT { Some(&self.default) } else { self.named.get(account) }
    }

    /// The default account's minter.
    pub fn default_account(&self) -> &TokenMinter {
        &self.default
    }

    /// Every account, by name, with its minter: the default account first.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Arc<TokenMinter>)> {
        std::iter::once((DEFAULT_ACCOUNT, &self.default))
            .chain(self.named.iter().map(|(name, minter)| (name.as_str(), minter)))
    }
}

/// What one account's tokens can carry: the products Twilio offers in its region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountOffer {
    /// [`DEFAULT_ACCOUNT`] or an `[accounts.<name>]` name.
    pub name: String,
    pub region: String,
    /// Where the account's region and products are set: `token` or `accounts.<name>`.
    pub key: String,
    pub products: Vec<GrantName>,
}

impl AccountOffer {
    /// Where `account`'s region and products are set.
    pub fn settings_key(account: &str) -> String {
        if account == DEFAULT_ACCOUNT { "token".to_owned() } else { format!("accounts.{account}") }
    }

    /// An account in us1, which has every product (for tests and examples).
    pub fn us1(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            region: crate::token::DEFAULT_REGION.to_owned(),
            key: Self::settings_key(name),
            products: GrantName::ALL.to_vec(),
        }
    }
}

impl std::fmt::Debug for TwilioCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioCredentials")
            .field("account_sid", &self.account_sid)
            .field("api_key_sid", &self.api_key_sid)
            .field("api_secret", &"[REDACTED]")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AC: &str = "AC0123456789abcdef0123456789abcdef";
    const SK: &str = "SKfedcba9876543210fedcba9876543210";

    fn env(vars: &[(&str, &str)]) -> EnvVars {
        vars.iter().copied().collect()
    }

    #[test]
    fn every_missing_variable_is_named_at_once() {
        let err = TwilioCredentials::from_env(&env(&[])).unwrap_err().to_string();
        for name in [API_KEY_VAR, ACCOUNT_SID_VAR, API_SECRET_VAR] {
            assert!(err.contains(&format!("{name} is not set")), "{err}");
        }
        let err = TwilioCredentials::from_env(&env(&[(API_KEY_VAR, "SK1"), (ACCOUNT_SID_VAR, "x")])).unwrap_err();
        assert!(matches!(&err, CredentialError::Several(found) if found.len() == 3), "{err}");
    }

    #[test]
    fn reads_valid_credentials() {
        let creds = TwilioCredentials::from_env(&env(&[
            (ACCOUNT_SID_VAR, AC),
            (API_KEY_VAR, SK),
            (API_SECRET_VAR, "s3cr3t-value"),
        ]))
        .unwrap();
        assert_eq!(creds.api_key_sid.as_str(), SK);
        assert_eq!(creds.api_secret.expose_secret(), "s3cr3t-value");
    }

    #[test]
    fn refuses_an_account_sid_where_the_api_key_belongs() {
        let err = TwilioCredentials::from_env(&env(&[(ACCOUNT_SID_VAR, AC), (API_KEY_VAR, AC), (API_SECRET_VAR, "x")]))
            .unwrap_err();
        assert_eq!(err, CredentialError::AccountSidAsApiKey(API_KEY_VAR.into()));
        assert!(err.to_string().contains("revoked"));
    }

    #[test]
    fn refuses_an_auth_token_without_an_api_key() {
        let err = TwilioCredentials::from_env(&env(&[
            (ACCOUNT_SID_VAR, AC),
            (AUTH_TOKEN_VAR, "abc"),
            (API_SECRET_VAR, "s3cr3t-value"),
        ]))
        .unwrap_err();
        assert_eq!(err, CredentialError::AuthTokenInsteadOfApiKey(AUTH_TOKEN_VAR.into(), API_KEY_VAR.into()));
    }

    #[test]
    fn refuses_the_auth_token_as_the_api_secret() {
        let err = TwilioCredentials::from_env(&env(&[
            (ACCOUNT_SID_VAR, AC),
            (API_KEY_VAR, SK),
            (API_SECRET_VAR, "same"),
            (AUTH_TOKEN_VAR, "same"),
        ]))
        .unwrap_err();
        assert_eq!(err, CredentialError::AuthTokenAsApiSecret(API_SECRET_VAR.into(), AUTH_TOKEN_VAR.into()));
    }

    #[test]
    fn names_the_missing_or_malformed_variable() {
        let missing = TwilioCredentials::from_env(&env(&[(API_KEY_VAR, SK)])).unwrap_err();
        assert!(missing.to_string().starts_with("TWILIO_ACCOUNT_SID is not set"));
        let malformed = TwilioCredentials::from_env(&env(&[(API_KEY_VAR, "SK123")])).unwrap_err();
        assert!(malformed.to_string().starts_with("TWILIO_API_KEY is not an API key SID"));
    }

    #[test]
    fn a_named_account_reads_its_own_variables_and_names_them_in_errors() {
        let vars = CredentialVars::named("eu");
        let creds = TwilioCredentials::from_vars(
            &env(&[("TWILIO_EU_ACCOUNT_SID", AC), ("TWILIO_EU_API_KEY", SK), ("TWILIO_EU_API_SECRET", "eu-secret")]),
            &vars,
        )
        .unwrap();
        assert_eq!(creds.api_key_sid.as_str(), SK);
        let missing = TwilioCredentials::from_vars(&env(&[(API_KEY_VAR, SK)]), &vars).unwrap_err();
        assert!(missing.to_string().starts_with("TWILIO_EU_API_KEY is not set"), "{missing}");
        let swapped = TwilioCredentials::from_vars(&env(&[("TWILIO_EU_API_KEY", AC)]), &vars).unwrap_err();
        assert!(swapped.to_string().starts_with("TWILIO_EU_API_KEY holds an Account SID"), "{swapped}");
    }

    #[test]
    fn debug_redacts_the_secret() {
        let creds = TwilioCredentials::placeholder(SecretString::from("hunter2-very-secret"));
        let shown = format!("{creds:?}");
        assert!(!shown.contains("hunter2"));
        assert!(shown.contains("REDACTED"));
    }
}
