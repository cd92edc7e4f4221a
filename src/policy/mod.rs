//! Which grants a principal may receive. Pure code: no HTTP, no clock, no I/O.
//!
//! Rules map roles to grants. A principal's candidate rules are those naming one of its roles,
//! in file order; the first rule that allows the whole request decides it (filling in the SIDs
//! it pins), and when none does the first rule's reason is returned. Nothing is ever widened:
//! a request for anything outside a rule is refused with the reason, never trimmed to fit.

//! - `settings`: the `[policy]` section as written;
//! - `compile`: the rules built from it, once, with every problem at once;
//! - `decide`: which rule allows a request, and the token spec it fills in;
//! - `request`, `rooms`, `scope`: what a client asks for (and its shape checks), room patterns,
//!   and the token exchange's scopes.

mod compile;
mod decide;
mod request;
mod rooms;
mod scope;
mod settings;

pub use request::{
    ChatRequest, OutgoingRequest, RequestedGrants, SyncRequest, TaskRouterRequest, TokenRequest, VideoRequest,
    VoiceRequest,
};
pub use rooms::RoomPattern;
pub use scope::request_from_scope;
pub use settings::{
    ChatRule, DenySettings, GrantName, IdentityEncoding, Platform, PolicySettings, RuleSettings, SyncRule,
    TaskRouterRule, VideoRule, VoiceRule,
};

use crate::token::TokenSpec;
use compile::Rule;

/// Why a request was refused: `Invalid` is the client's malformed input (400), `Forbidden`
/// is a well-formed request the policy does not allow (403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Forbidden(String),
    /// On the deny list (a 403, counted and audited apart from other refusals).
    #[error("{}", .0.detail())]
    Denied(DenyList),
}

/// Which deny list matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyList {
    Identity,
    Subject,
}

impl DenyList {
    pub fn label(self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::Subject => "subject",
        }
    }

    pub fn detail(self) -> &'static str {
        match self {
            Self::Identity => "tokens for this identity are blocked by the operator",
            Self::Subject => "this caller is blocked from getting tokens by the operator",
        }
    }
}

/// The outcome: what to mint, and which rule allowed it.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub spec: TokenSpec,
    pub rule: String,
    /// The Twilio account to sign with (`"default"` or an `[accounts.<name>]` name).
    pub account: String,
    /// The identity as authenticated, when the rule minted another form of it (voice-safe).
    pub original_identity: Option<String>,
}

/// The validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    rules: Vec<Rule>,
    /// Every configured Twilio account name: a tenant naming one of them means that account.
    accounts: Vec<String>,
    denied_identities: std::collections::HashSet<String>,
    denied_subjects: std::collections::HashSet<String>,
}

#[cfg(test)]
mod tests;
