//! The `[policy]` section as operators write it: rules mapping roles to grants, and the deny
//! list. [`super::compile`] turns it into the rules [`super::decide`] applies.

use serde::{Deserialize, Serialize};

pub use crate::token::GrantName;
use crate::token::MAX_TTL_SECS;

/// The `[policy]` section of the configuration.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySettings {
    #[serde(default)]
    pub rules: Vec<RuleSettings>,
    /// The issuance kill switch.
    #[serde(default)]
    pub deny: DenySettings,
}

/// `[policy.deny]`: who gets no token at all, whatever the rules say. Twilio cannot revoke a
/// token already issued, so stopping issuance is the lever operators have; a reload (SIGHUP or
/// a changed config file) applies a change at once.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DenySettings {
    /// Twilio identities no token may carry, whoever asks (a backend acting for them included).
    #[serde(default)]
    pub identities: Vec<String>,
    /// Callers that get no token: a JWT's `sub`, or a backend API key's name.
    #[serde(default)]
    pub subjects: Vec<String>,
}

/// One `[[policy.rules]]` entry. A grant section left out is a grant the rule never gives.
/// SID fields take a SID (pinned: filled in when the client leaves it out, and the only value
/// accepted) or `"*"` (the client may name any well-formed SID); left out, the client may not
/// name one at all.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSettings {
    /// Names the rule in errors and the audit log.
    pub name: String,
    /// The rule applies to principals holding any of these roles.
    pub roles: Vec<String>,
    /// The longest ttl this rule grants, in seconds (at most 86400).
    #[serde(default = "max_ttl")]
    pub max_ttl_secs: u32,
    /// The Twilio accounts this rule mints for: `"default"` (`TWILIO_*`) or `[accounts.<name>]`
    /// names. One: always that account. Several: the principal's tenant (a provider's
    /// `tenant_claim`, an API key's `tenant`) picks one of them, and a principal whose tenant
    /// names none is refused. Left out: the default account.
    #[serde(default)]
    pub accounts: Vec<String>,
    /// The grants an empty request receives; default: every grant the rule has.
    pub defaults: Option<Vec<GrantName>>,
    /// `"voice_safe"`: every token of this rule carries the voice-safe form of the identity
    /// (letters, digits and `_`: `alice@example.com` → `alice_example_com__<16 characters>`),
    /// whatever its grants, so a user is one Twilio identity across tokens. Default `"as_is"`.
    #[serde(default)]
    pub identity_encoding: IdentityEncoding,
    pub video: Option<VideoRule>,
    pub voice: Option<VoiceRule>,
    pub chat: Option<ChatRule>,
    pub sync: Option<SyncRule>,
    pub task_router: Option<TaskRouterRule>,
}

fn max_ttl() -> u32 {
    MAX_TTL_SECS
}

/// The platform a client runs on, which decides its push credential: APNs VoIP for iOS (apps
/// built for development use the sandbox), FCM for Android and web browsers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    Ios,
    IosSandbox,
    Android,
    Web,
}

impl Platform {
    pub const ALL: [Platform; 4] = [Self::Ios, Self::IosSandbox, Self::Android, Self::Web];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ios => "ios",
            Self::IosSandbox => "ios_sandbox",
            Self::Android => "android",
            Self::Web => "web",
        }
    }

    /// The platform named `name`, as a form parameter or a command-line flag names it; the
    /// error says which names there are.
    pub fn parse(name: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|platform| platform.as_str() == name).ok_or_else(|| {
            let known: Vec<&str> = Self::ALL.iter().map(|p| p.as_str()).collect();
            format!("must be one of {}", known.join(", "))
        })
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a rule writes the identity into its tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityEncoding {
    /// As authenticated (a voice grant then needs it in the Voice alphabet already).
    #[default]
    AsIs,
    /// Mapped into the Voice alphabet ([`crate::token::voice_safe`]).
    VoiceSafe,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VideoRule {
    /// Room patterns: `*` matches any run of characters, `{identity}` the caller's identity;
    /// `"*"` alone also allows a grant for any room.
    pub rooms: Vec<String>,
    /// The room given when the client names none (a pattern without `*`).
    pub default_room: Option<String>,
    /// The ttl of a video token whose request names none (see [`RuleSettings`]'s ttl notes).
    pub default_ttl_secs: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VoiceRule {
    /// Whether the client may receive incoming calls (and does, unless it asks not to).
    #[serde(default)]
    pub incoming: bool,
    /// The TwiML application for outgoing calls.
    pub application_sid: Option<String>,
    /// Whether the client may pass `outgoing.params` to the TwiML application.
    #[serde(default)]
    pub outgoing_params: bool,
    pub push_credential_sid: Option<String>,
    /// A push credential per client platform (`ios`, `ios_sandbox`, `android`, `web`), chosen
    /// by the request's `platform`; instead of `push_credential_sid`.
    pub push_credentials: Option<std::collections::BTreeMap<Platform, String>>,
    /// Mint voice grants for identities outside Twilio's documented Voice alphabet (letters,
    /// digits, `_`, at most 121), as they are. Off: such an identity gets no voice grant unless
    /// the rule's `identity_encoding` is `"voice_safe"`.
    #[serde(default)]
    pub allow_unsafe_identity: bool,
    pub default_ttl_secs: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChatRule {
    pub service_sid: Option<String>,
    pub push_credential_sid: Option<String>,
    /// A push credential per client platform, as for voice.
    pub push_credentials: Option<std::collections::BTreeMap<Platform, String>>,
    pub deployment_role_sid: Option<String>,
    /// At least 180: Conversations SDKs warn three minutes before a token expires.
    pub default_ttl_secs: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SyncRule {
    pub service_sid: Option<String>,
    pub default_ttl_secs: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TaskRouterRule {
    pub workspace_sid: Option<String>,
    pub worker_sid: Option<String>,
    /// The worker's TaskRouter role, or `"*"` to let the client name it.
    pub role: Option<String>,
    pub default_ttl_secs: Option<u32>,
}
