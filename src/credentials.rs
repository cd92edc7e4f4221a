//! The Twilio account and API key that tokens are signed with, read from the environment.
//!
//! Tokens are signed with an API key secret (revocable one key at a time), never the Account
//! Auth Token (permanent, and rotating it breaks every integration). Start-up refuses an Auth
//! Token offered in an API key's place, with a sentence that says why.

use secrecy::{ExposeSecret, SecretString};

use crate::config::env::{EnvError, EnvVars};
use crate::sid::SidKind;

pub const ACCOUNT_SID_VAR: &str = "TWILIO_ACCOUNT_SID";
pub const API_KEY_VAR: &str = "TWILIO_API_KEY";
pub const API_SECRET_VAR: &str = "TWILIO_API_SECRET";
const AUTH_TOKEN_VAR: &str = "TWILIO_AUTH_TOKEN";

/// The account SID, API key SID and API key secret. `Debug` shows the SIDs, never the secret.
#[derive(Clone)]
pub struct TwilioCredentials {
    pub account_sid: String,
    pub api_key_sid: String,
    pub api_secret: SecretString,
}

/// A problem with the credentials; each message names the variable and the fix.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CredentialError {
    #[error(transparent)]
    Env(#[from] EnvError),
    #[error("{0} is not set: set it (or {0}_FILE) to {1}")]
    Missing(&'static str, &'static str),
    #[error("{0} is not {1}: copy it from the Twilio Console")]
    Malformed(&'static str, String),
    #[error(
        "TWILIO_API_KEY holds an Account SID (AC…), not an API key SID: create an API key in the Twilio Console \
         and set TWILIO_API_KEY to its SK… SID and TWILIO_API_SECRET to its secret; production services sign with \
         API keys because each can be revoked alone, while the Auth Token is permanent and rotating it breaks every integration"
    )]
    AccountSidAsApiKey,
    #[error(
        "TWILIO_AUTH_TOKEN is set but TWILIO_API_KEY is not: tokenmint never signs with the Auth Token; create an API \
         key in the Twilio Console and set TWILIO_API_KEY (SK…) and TWILIO_API_SECRET instead, since an API key can be \
         revoked alone while the Auth Token is permanent and rotating it breaks every integration"
    )]
    AuthTokenInsteadOfApiKey,
    #[error(
        "TWILIO_API_SECRET equals TWILIO_AUTH_TOKEN: set TWILIO_API_SECRET to the secret shown when the API key was \
         created, never the Auth Token"
    )]
    AuthTokenAsApiSecret,
}

impl TwilioCredentials {
    /// Reads and validates `TWILIO_ACCOUNT_SID`, `TWILIO_API_KEY` and `TWILIO_API_SECRET`
    /// (each also as `NAME_FILE`).
    pub fn from_env(env: &EnvVars) -> Result<Self, CredentialError> {
        let api_key_sid = match env.value(API_KEY_VAR)? {
            Some(key) => key,
            None if env.is_set(AUTH_TOKEN_VAR) => {
                return Err(CredentialError::AuthTokenInsteadOfApiKey);
            }
            None => {
                return Err(CredentialError::Missing(API_KEY_VAR, "your API key SID (SK followed by 32 hex digits)"));
            }
        };
        if SidKind::Account.matches(&api_key_sid) {
            return Err(CredentialError::AccountSidAsApiKey);
        }
        if !SidKind::ApiKey.matches(&api_key_sid) {
            return Err(CredentialError::Malformed(
                API_KEY_VAR,
                format!("an API key SID ({})", SidKind::ApiKey.shape()),
            ));
        }
        let account_sid = env
            .value(ACCOUNT_SID_VAR)?
            .ok_or(CredentialError::Missing(ACCOUNT_SID_VAR, "your Account SID (AC followed by 32 hex digits)"))?;
        if !SidKind::Account.matches(&account_sid) {
            return Err(CredentialError::Malformed(
                ACCOUNT_SID_VAR,
                format!("an Account SID ({})", SidKind::Account.shape()),
            ));
        }
        let api_secret = env
            .secret(API_SECRET_VAR)?
            .ok_or(CredentialError::Missing(API_SECRET_VAR, "the secret shown when the API key was created"))?;
        if let Ok(Some(auth_token)) = env.secret(AUTH_TOKEN_VAR)
            && auth_token.expose_secret() == api_secret.expose_secret()
        {
            return Err(CredentialError::AuthTokenAsApiSecret);
        }
        Ok(Self { account_sid, api_key_sid, api_secret })
    }

    /// Clearly fake credentials for `serve --dev`: Twilio rejects tokens signed with them.
    pub fn placeholder(secret: SecretString) -> Self {
        Self {
            account_sid: format!("AC{}", "0".repeat(32)),
            api_key_sid: format!("SK{}", "0".repeat(32)),
            api_secret: secret,
        }
    }

    /// Whether these are the `--dev` placeholders.
    pub fn is_placeholder(&self) -> bool {
        self.api_key_sid[2..].bytes().all(|b| b == b'0')
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
    fn reads_valid_credentials() {
        let creds = TwilioCredentials::from_env(&env(&[
            (ACCOUNT_SID_VAR, AC),
            (API_KEY_VAR, SK),
            (API_SECRET_VAR, "s3cr3t-value"),
        ]))
        .unwrap();
        assert_eq!(creds.api_key_sid, SK);
        assert_eq!(creds.api_secret.expose_secret(), "s3cr3t-value");
    }

    #[test]
    fn refuses_an_account_sid_where_the_api_key_belongs() {
        let err = TwilioCredentials::from_env(&env(&[(ACCOUNT_SID_VAR, AC), (API_KEY_VAR, AC), (API_SECRET_VAR, "x")]))
            .unwrap_err();
        assert_eq!(err, CredentialError::AccountSidAsApiKey);
        assert!(err.to_string().contains("revoked"));
    }

    #[test]
    fn refuses_an_auth_token_without_an_api_key() {
        let err = TwilioCredentials::from_env(&env(&[(ACCOUNT_SID_VAR, AC), (AUTH_TOKEN_VAR, "abc")])).unwrap_err();
        assert_eq!(err, CredentialError::AuthTokenInsteadOfApiKey);
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
        assert_eq!(err, CredentialError::AuthTokenAsApiSecret);
    }

    #[test]
    fn names_the_missing_or_malformed_variable() {
        let missing = TwilioCredentials::from_env(&env(&[(API_KEY_VAR, SK)])).unwrap_err();
        assert!(missing.to_string().starts_with("TWILIO_ACCOUNT_SID is not set"));
        let malformed = TwilioCredentials::from_env(&env(&[(API_KEY_VAR, "SK123")])).unwrap_err();
        assert!(malformed.to_string().starts_with("TWILIO_API_KEY is not an API key SID"));
    }

    #[test]
    fn debug_redacts_the_secret() {
        let creds = TwilioCredentials::placeholder(SecretString::from("hunter2-very-secret"));
        let shown = format!("{creds:?}");
        assert!(!shown.contains("hunter2"));
        assert!(shown.contains("REDACTED"));
    }
}
