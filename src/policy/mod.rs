//! Which grants a principal may receive. Pure code: no HTTP, no clock, no I/O.
//!
//! Rules map roles to grants. A principal's candidate rules are those naming one of its roles,
//! in file order; the first rule that allows the whole request decides it (filling in the SIDs
//! it pins), and when none does the first rule's reason is returned. Nothing is ever widened:
//! a request for anything outside a rule is refused with the reason, never trimmed to fit.

mod request;
mod rooms;
mod scope;

use serde::{Deserialize, Serialize};

pub use request::{
    ChatRequest, OutgoingRequest, RequestedGrants, SyncRequest, TaskRouterRequest, TokenRequest, VideoRequest,
    VoiceRequest,
};
pub use rooms::RoomPattern;
pub use scope::request_from_scope;

use crate::auth::Principal;
use crate::sid::SidKind;
use crate::token::{
    self, ChatGrant, Grants, MAX_TTL_SECS, SyncGrant, TaskRouterGrant, TokenSpec, VideoGrant, VoiceGrant,
};

/// Longest room name Twilio Video accepts.
const MAX_ROOM_CHARS: usize = 128;
/// Longest endpoint id or TaskRouter role we pass on.
const MAX_LABEL_CHARS: usize = 256;

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
    pub video: Option<VideoRule>,
    pub voice: Option<VoiceRule>,
    pub chat: Option<ChatRule>,
    pub sync: Option<SyncRule>,
    pub task_router: Option<TaskRouterRule>,
}

fn max_ttl() -> u32 {
    MAX_TTL_SECS
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantName {
    Video,
    Voice,
    Chat,
    Sync,
    TaskRouter,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VideoRule {
    /// Room patterns: `*` matches any run of characters, `{identity}` the caller's identity;
    /// `"*"` alone also allows a grant for any room.
    pub rooms: Vec<String>,
    /// The room given when the client names none (a pattern without `*`).
    pub default_room: Option<String>,
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
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChatRule {
    pub service_sid: Option<String>,
    pub push_credential_sid: Option<String>,
    pub deployment_role_sid: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SyncRule {
    pub service_sid: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TaskRouterRule {
    pub workspace_sid: Option<String>,
    pub worker_sid: Option<String>,
    /// The worker's TaskRouter role, or `"*"` to let the client name it.
    pub role: Option<String>,
}

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
}

/// The validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    rules: Vec<Rule>,
    /// Every configured Twilio account name: a tenant naming one of them means that account.
    accounts: Vec<String>,
    default_ttl_secs: u32,
    denied_identities: std::collections::HashSet<String>,
    denied_subjects: std::collections::HashSet<String>,
}

/// A configured value a client may or may not choose.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pin {
    Any,
    Exact(String),
}

#[derive(Debug, Clone)]
struct Rule {
    name: String,
    roles: Vec<String>,
    accounts: Vec<String>,
    max_ttl_secs: u32,
    defaults: Vec<GrantName>,
    video: Option<(Vec<RoomPattern>, Option<RoomPattern>)>,
    voice: Option<VoicePolicy>,
    chat: Option<[Option<Pin>; 3]>,
    sync: Option<Option<Pin>>,
    task_router: Option<[Option<Pin>; 3]>,
}

#[derive(Debug, Clone)]
struct VoicePolicy {
    incoming: bool,
    application: Option<Pin>,
    outgoing_params: bool,
    push_credential: Option<Pin>,
}

impl Policy {
    /// How many rules there are (for the reload log line).
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Validates the rules; every problem is reported at once. `accounts` are the Twilio account names that exist (`"default"` and
    /// each `[accounts.<name>]`).
    pub fn from_settings(
        settings: &PolicySettings,
        default_ttl_secs: u32,
        accounts: &[&str],
    ) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        if settings.rules.is_empty() {
            problems
                .push("policy: no rules, so no token could ever be minted: add a [[policy.rules]] entry".to_owned());
        }
        let rules = settings
            .rules
            .iter()
            .enumerate()
            .filter_map(|(index, rule)| {
                let at = format!("policy.rules[{index}] ({})", rule.name);
                if settings.rules[..index].iter().any(|other| other.name == rule.name) {
                    problems.push(format!("{at}: the name is used twice"));
                }
                for account in rule.accounts.iter().filter(|a| !accounts.contains(&a.as_str())) {
                    problems.push(format!(
                        "{at}: accounts names {account:?}, which is not configured: use \"default\" (TWILIO_*) or add [accounts.{account}] with TWILIO_{}_ACCOUNT_SID, _API_KEY and _API_SECRET",
                        account.to_ascii_uppercase()
                    ));
                }
                Rule::from_settings(rule, &at, &mut problems)
            })
            .collect();
        for (key, entries) in [("identities", &settings.deny.identities), ("subjects", &settings.deny.subjects)] {
            if entries.iter().any(|entry| entry.trim().is_empty()) {
                problems.push(format!("policy.deny.{key}: an entry is empty; remove it"));
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self {
            rules,
            accounts: accounts.iter().map(|a| (*a).to_owned()).collect(),
            default_ttl_secs,
            denied_identities: settings.deny.identities.iter().cloned().collect(),
            denied_subjects: settings.deny.subjects.iter().cloned().collect(),
        })
    }

    /// Why a backend key with `roles` and `tenant` would never be served, if it would not: its
    /// tenant matches none of the rules its roles select (for `check-config`).
    pub fn tenant_warning(&self, key: &str, roles: &[String], tenant: Option<&str>) -> Option<String> {
        let mut rules = self.rules.iter().filter(|rule| rule.roles.iter().any(|r| roles.contains(r))).peekable();
        rules.peek()?;
        if rules.any(|rule| rule.serves_tenant(tenant, &self.accounts)) {
            return None;
        }
        Some(format!(
            "auth.api_keys {key:?}: its tenant {:?} matches the accounts of none of the policy rules its roles select, so every request with it will be refused",
            tenant.unwrap_or("(none)")
        ))
    }

    /// Decides what `principal` may receive for `request`.
    pub fn decide(&self, principal: &Principal, request: &TokenRequest) -> Result<Decision, PolicyError> {
        if self.denied_subjects.contains(&principal.subject) {
            return Err(PolicyError::Denied(DenyList::Subject));
        }
        check_request_shape(request)?;
        let identity_from_request = match &request.identity {
            Some(identity) if identity != &principal.identity => {
                if !principal.may_act_as {
                    return Err(PolicyError::Forbidden(
                        "identity may only be named by a principal allowed to act on behalf of others; app users receive the identity of their credential".into(),
                    ));
                }
                true
            }
            _ => false,
        };
        let identity = request.identity.as_deref().unwrap_or(&principal.identity);
        if self.denied_identities.contains(identity) {
            return Err(PolicyError::Denied(DenyList::Identity));
        }
        // A named identity that Twilio would refuse is the caller's mistake (400); one that came
        // from a credential is not something the caller can fix in the request (403).
        let unusable = |e: token::IdentityError| {
            let message = format!("identity {identity:?} cannot be used: {e}");
            if identity_from_request { PolicyError::Invalid(message) } else { PolicyError::Forbidden(message) }
        };
        if crate::text::has_forbidden_chars(identity) {
            return Err(unusable(token::IdentityError::ControlCharacter));
        }
        let mut candidates =
            self.rules.iter().filter(|rule| rule.roles.iter().any(|r| principal.roles.contains(r))).peekable();
        if candidates.peek().is_none() {
            return Err(PolicyError::Forbidden(format!(
                "no policy rule grants tokens to the roles {:?}",
                principal.roles
            )));
        }
        let mut first_refusal = None;
        for rule in candidates {
            let account = match rule.account_for(principal, &self.accounts) {
                Ok(account) => account,
                Err(refusal) => {
                    first_refusal.get_or_insert(refusal);
                    continue;
                }
            };
            match rule.apply(identity, request, self.default_ttl_secs) {
                Ok(spec) => {
                    token::check_identity(&spec.identity, &spec.grants).map_err(unusable)?;
                    return Ok(Decision { spec, rule: rule.name.clone(), account: account.to_owned() });
                }
                Err(refusal) => {
                    first_refusal.get_or_insert(refusal);
                }
            }
        }
        Err(first_refusal.expect("at least one candidate rule was tried"))
    }
}

impl Rule {
    fn from_settings(settings: &RuleSettings, at: &str, problems: &mut Vec<String>) -> Option<Self> {
        let before = problems.len();
        let mut pin = |field: &str, value: &Option<String>, kind: Option<SidKind>| -> Option<Pin> {
            match value.as_deref() {
                None => None,
                Some("*") => Some(Pin::Any),
                Some(v) => {
                    if let Some(kind) = kind.filter(|k| !k.matches(v)) {
                        problems.push(format!("{at}: {field} must be \"*\" or {}, not {v:?}", kind.shape()));
                    } else if v.is_empty() {
                        problems.push(format!("{at}: {field} is empty"));
                    }
                    Some(Pin::Exact(v.to_owned()))
                }
            }
        };
        let voice = settings.voice.as_ref().map(|v| VoicePolicy {
            incoming: v.incoming,
            application: pin("voice.application_sid", &v.application_sid, Some(SidKind::Application)),
            outgoing_params: v.outgoing_params,
            push_credential: pin("voice.push_credential_sid", &v.push_credential_sid, Some(SidKind::PushCredential)),
        });
        let chat = settings.chat.as_ref().map(|c| {
            [
                pin("chat.service_sid", &c.service_sid, Some(SidKind::Service)),
                pin("chat.push_credential_sid", &c.push_credential_sid, Some(SidKind::PushCredential)),
                pin("chat.deployment_role_sid", &c.deployment_role_sid, Some(SidKind::Role)),
            ]
        });
        let sync = settings.sync.as_ref().map(|s| pin("sync.service_sid", &s.service_sid, Some(SidKind::Service)));
        let task_router = settings.task_router.as_ref().map(|t| {
            [
                pin("task_router.workspace_sid", &t.workspace_sid, Some(SidKind::Workspace)),
                pin("task_router.worker_sid", &t.worker_sid, Some(SidKind::Worker)),
                pin("task_router.role", &t.role, None),
            ]
        });
        let video = settings.video.as_ref().map(|v| {
            if v.rooms.is_empty() || v.rooms.iter().any(String::is_empty) {
                problems.push(format!(
                    "{at}: video.rooms must list at least one non-empty room pattern (\"*\" for any room)"
                ));
            }
            let default_room = v.default_room.as_deref().map(RoomPattern::parse);
            if default_room.as_ref().is_some_and(RoomPattern::has_wildcard) {
                problems.push(format!("{at}: video.default_room must name one room, without *"));
            } else if let Some(room) = default_room.as_ref().and_then(|p| p.expand("x"))
                && !is_valid_room(&room)
            {
                problems.push(format!(
                    "{at}: video.default_room is not a valid room name even for a one-letter identity ({ROOM_RULE})"
                ));
            }
            (v.rooms.iter().map(|r| RoomPattern::parse(r)).collect::<Vec<_>>(), default_room)
        });
        if settings.name.is_empty() {
            problems.push(format!("{at}: name is empty"));
        }
        if settings.roles.is_empty() {
            problems.push(format!("{at}: roles is empty, so the rule applies to nobody"));
        }
        if !(1..=MAX_TTL_SECS).contains(&settings.max_ttl_secs) {
            problems.push(format!("{at}: max_ttl_secs must be from 1 to {MAX_TTL_SECS}"));
        }
        if let Some(v) = &voice
            && !v.incoming
            && v.application.is_none()
        {
            problems
                .push(format!("{at}: voice allows neither incoming calls nor an application_sid for outgoing ones"));
        }
        let present: Vec<GrantName> = [
            (GrantName::Video, video.is_some()),
            (GrantName::Voice, voice.is_some()),
            (GrantName::Chat, chat.is_some()),
            (GrantName::Sync, sync.is_some()),
            (GrantName::TaskRouter, task_router.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, present)| present.then_some(name))
        .collect();
        if present.is_empty() {
            problems.push(format!(
                "{at}: the rule has no grant section ([policy.rules.video], .voice, .chat, .sync or .task_router)"
            ));
        }
        let defaults = settings.defaults.clone().unwrap_or_else(|| present.clone());
        for name in &defaults {
            if !present.contains(name) {
                problems.push(format!("{at}: defaults names {name:?}, which the rule does not grant"));
            }
        }
        if defaults.contains(&GrantName::Video)
            && let Some((rooms, None)) = &video
            && !rooms.iter().any(RoomPattern::is_any)
        {
            problems.push(format!(
                "{at}: video is a default grant, so set video.default_room (or allow any room with \"*\")"
            ));
        }
        (problems.len() == before).then(|| Self {
            name: settings.name.clone(),
            roles: settings.roles.clone(),
            accounts: if settings.accounts.is_empty() {
                vec![crate::accounts::DEFAULT_ACCOUNT.to_owned()]
            } else {
                settings.accounts.clone()
            },
            max_ttl_secs: settings.max_ttl_secs,
            defaults,
            video,
            voice,
            chat,
            sync,
            task_router,
        })
    }

    /// The account this rule signs with for `principal`: its only one, or the one the
    /// principal's tenant names among several. A tenant that names a configured account always
    /// means that account: a rule that does not mint for it refuses, rather than quietly serving
    /// the caller from another account.
    fn account_for(&self, principal: &Principal, configured: &[String]) -> Result<&str, PolicyError> {
        let mine: &[String] = &self.accounts;
        let tenant = principal.tenant.as_deref();
        if let Some(tenant) = tenant.filter(|t| configured.iter().any(|a| a == t))
            && !mine.iter().any(|a| a == tenant)
        {
            return Err(PolicyError::Forbidden(format!(
                "the caller's tenant names the Twilio account {tenant:?}, and policy rule {:?} mints only for {mine:?}",
                self.name
            )));
        }
        match mine {
            [only] => Ok(only),
            [] => Ok(crate::accounts::DEFAULT_ACCOUNT),
            several => several.iter().find(|a| tenant == Some(a.as_str())).map(String::as_str).ok_or_else(|| {
                PolicyError::Forbidden(format!(
                    "policy rule {:?} mints for the accounts {several:?}, and the caller's tenant ({}) names none of them",
                    self.name,
                    tenant.unwrap_or("none")
                ))
            }),
        }
    }

    /// Whether a principal with `tenant` could ever be served by this rule (for `check-config`).
    pub fn serves_tenant(&self, tenant: Option<&str>, configured: &[String]) -> bool {
        let principal = Principal {
            identity: String::new(),
            subject: String::new(),
            roles: Vec::new(),
            may_act_as: false,
            tenant: tenant.map(str::to_owned),
            source: crate::auth::PrincipalSource::ApiKey { name: String::new() },
        };
        self.account_for(&principal, configured).is_ok()
    }

    fn apply(&self, identity: &str, request: &TokenRequest, default_ttl_secs: u32) -> Result<TokenSpec, PolicyError> {
        let ttl_secs = match request.ttl {
            Some(ttl) if ttl > self.max_ttl_secs => {
                return Err(PolicyError::Forbidden(format!(
                    "ttl {ttl} exceeds the cap of {} seconds set by policy rule {:?}",
                    self.max_ttl_secs, self.name
                )));
            }
            Some(ttl) => ttl,
            None => default_ttl_secs.min(self.max_ttl_secs),
        };
        let defaults;
        let requested = match &request.grants {
            Some(grants) => grants,
            None => {
                defaults = self.default_request();
                &defaults
            }
        };
        let grants = Grants {
            video: requested.video.as_ref().map(|v| self.video(identity, v)).transpose()?,
            voice: requested.voice.as_ref().map(|v| self.voice(v)).transpose()?,
            chat: requested.chat.as_ref().map(|c| self.chat(c)).transpose()?,
            sync: requested.sync.as_ref().map(|s| self.sync(s)).transpose()?,
            task_router: requested.task_router.as_ref().map(|t| self.task_router(t)).transpose()?,
            playback: None,
        };
        Ok(TokenSpec { identity: identity.to_owned(), ttl_secs, grants, not_before: None })
    }

    /// The request an empty body stands for: each default grant, asked for with no fields.
    fn default_request(&self) -> RequestedGrants {
        let wants = |name| self.defaults.contains(&name);
        RequestedGrants {
            video: wants(GrantName::Video).then(VideoRequest::default),
            voice: wants(GrantName::Voice).then(VoiceRequest::default),
            chat: wants(GrantName::Chat).then(ChatRequest::default),
            sync: wants(GrantName::Sync).then(SyncRequest::default),
            task_router: wants(GrantName::TaskRouter).then(TaskRouterRequest::default),
        }
    }

    fn section<'a, T>(&self, section: &'a Option<T>, grant: &str) -> Result<&'a T, PolicyError> {
        section.as_ref().ok_or_else(|| {
            PolicyError::Forbidden(format!("policy rule {:?} does not allow the {grant} grant", self.name))
        })
    }

    fn video(&self, identity: &str, request: &VideoRequest) -> Result<VideoGrant, PolicyError> {
        let (rooms, default_room) = self.section(&self.video, "video")?;
        let room = match &request.room {
            Some(room) if rooms.iter().any(|p| p.matches(identity, room)) => Some(room.clone()),
            Some(room) => {
                let allowed: Vec<&str> = rooms.iter().map(RoomPattern::as_str).collect();
                return Err(PolicyError::Forbidden(format!(
                    "video room {room:?} is not allowed by policy rule {:?} (allowed: {allowed:?})",
                    self.name
                )));
            }
            None => match default_room {
                Some(pattern) => match pattern.expand(identity) {
                    Some(room) if !is_valid_room(&room) => {
                        return Err(PolicyError::Forbidden(format!(
                            "the default room of policy rule {:?} for this identity is not a valid room ({ROOM_RULE}): name a room",
                            self.name
                        )));
                    }
                    room => room,
                },
                None if rooms.iter().any(RoomPattern::is_any) => None,
                None => {
                    return Err(PolicyError::Forbidden(format!(
                        "policy rule {:?} does not allow a video grant for any room: name a room",
                        self.name
                    )));
                }
            },
        };
        Ok(VideoGrant { room })
    }

    fn voice(&self, request: &VoiceRequest) -> Result<VoiceGrant, PolicyError> {
        let policy = self.section(&self.voice, "voice")?;
        let incoming_allow = match request.incoming {
            Some(true) if !policy.incoming => {
                return Err(PolicyError::Forbidden(format!(
                    "policy rule {:?} does not allow incoming calls",
                    self.name
                )));
            }
            Some(asked) => asked,
            None => policy.incoming,
        };
        let outgoing = request.outgoing.as_ref();
        let outgoing_application_sid = resolve(
            &self.name,
            "voice.outgoing.application_sid",
            &policy.application,
            outgoing.and_then(|o| o.application_sid.as_deref()),
        )?;
        let outgoing_application_params = outgoing.and_then(|o| o.params.clone());
        if outgoing_application_params.is_some() {
            if !policy.outgoing_params {
                return Err(PolicyError::Forbidden(format!(
                    "policy rule {:?} does not allow voice.outgoing.params",
                    self.name
                )));
            }
            if outgoing_application_sid.is_none() {
                return Err(PolicyError::Invalid("voice.outgoing.params needs an outgoing application_sid".into()));
            }
        }
        Ok(VoiceGrant {
            incoming_allow,
            outgoing_application_sid,
            outgoing_application_params,
            push_credential_sid: resolve(
                &self.name,
                "voice.push_credential_sid",
                &policy.push_credential,
                request.push_credential_sid.as_deref(),
            )?,
            endpoint_id: request.endpoint_id.clone(),
        })
    }

    fn chat(&self, request: &ChatRequest) -> Result<ChatGrant, PolicyError> {
        let [service, push_credential, deployment_role] = self.section(&self.chat, "chat")?;
        Ok(ChatGrant {
            service_sid: resolve(&self.name, "chat.service_sid", service, request.service_sid.as_deref())?,
            endpoint_id: request.endpoint_id.clone(),
            deployment_role_sid: resolve(
                &self.name,
                "chat.deployment_role_sid",
                deployment_role,
                request.deployment_role_sid.as_deref(),
            )?,
            push_credential_sid: resolve(
                &self.name,
                "chat.push_credential_sid",
                push_credential,
                request.push_credential_sid.as_deref(),
            )?,
        })
    }

    fn sync(&self, request: &SyncRequest) -> Result<SyncGrant, PolicyError> {
        let service = self.section(&self.sync, "sync")?;
        Ok(SyncGrant {
            service_sid: resolve(&self.name, "sync.service_sid", service, request.service_sid.as_deref())?,
            endpoint_id: request.endpoint_id.clone(),
        })
    }

    fn task_router(&self, request: &TaskRouterRequest) -> Result<TaskRouterGrant, PolicyError> {
        let [workspace, worker, role] = self.section(&self.task_router, "task_router")?;
        Ok(TaskRouterGrant {
            workspace_sid: resolve(
                &self.name,
                "task_router.workspace_sid",
                workspace,
                request.workspace_sid.as_deref(),
            )?,
            worker_sid: resolve(&self.name, "task_router.worker_sid", worker, request.worker_sid.as_deref())?,
            role: resolve(&self.name, "task_router.role", role, request.role.as_deref())?,
        })
    }
}

/// A field the rule may pin: pinned values are filled in and the only ones accepted; `"*"`
/// accepts what the client names; unset accepts nothing.
fn resolve(rule: &str, field: &str, pin: &Option<Pin>, requested: Option<&str>) -> Result<Option<String>, PolicyError> {
    match (pin, requested) {
        (_, None) => Ok(match pin {
            Some(Pin::Exact(value)) => Some(value.clone()),
            _ => None,
        }),
        (Some(Pin::Any), Some(value)) => Ok(Some(value.to_owned())),
        (Some(Pin::Exact(pinned)), Some(value)) if pinned == value => Ok(Some(value.to_owned())),
        (Some(Pin::Exact(_)), Some(value)) => {
            Err(PolicyError::Forbidden(format!("{field} {value:?} is not the one policy rule {rule:?} allows")))
        }
        (None, Some(_)) => {
            Err(PolicyError::Forbidden(format!("policy rule {rule:?} does not let clients choose {field}")))
        }
    }
}

/// What a room name must be, as every refusal says it.
const ROOM_RULE: &str = "video.room must be 1 to 128 characters without control characters";

/// A room Twilio Video accepts: 1 to 128 characters, none of them a control character.
fn is_valid_room(room: &str) -> bool {
    !room.is_empty() && room.chars().count() <= MAX_ROOM_CHARS && !crate::text::has_forbidden_chars(room)
}

/// Refuses malformed fields (400) before any rule is consulted.
fn check_request_shape(request: &TokenRequest) -> Result<(), PolicyError> {
    let invalid = |message: String| Err(PolicyError::Invalid(message));
    let Some(grants) = &request.grants else {
        return Ok(());
    };
    if grants.video.is_none()
        && grants.voice.is_none()
        && grants.chat.is_none()
        && grants.sync.is_none()
        && grants.task_router.is_none()
    {
        return invalid(
            "grants is empty: name at least one grant, or leave grants out for the policy's defaults".into(),
        );
    }
    let mut sids: Vec<(&str, Option<&String>, SidKind)> = Vec::new();
    let mut labels: Vec<(&str, Option<&String>)> = Vec::new();
    if let Some(video) = &grants.video
        && let Some(room) = &video.room
        && !is_valid_room(room)
    {
        return invalid(ROOM_RULE.into());
    }
    if let Some(voice) = &grants.voice {
        sids.push((
            "voice.outgoing.application_sid",
            voice.outgoing.as_ref().and_then(|o| o.application_sid.as_ref()),
            SidKind::Application,
        ));
        sids.push(("voice.push_credential_sid", voice.push_credential_sid.as_ref(), SidKind::PushCredential));
        labels.push(("voice.endpoint_id", voice.endpoint_id.as_ref()));
    }
    if let Some(chat) = &grants.chat {
        sids.push(("chat.service_sid", chat.service_sid.as_ref(), SidKind::Service));
        sids.push(("chat.push_credential_sid", chat.push_credential_sid.as_ref(), SidKind::PushCredential));
        sids.push(("chat.deployment_role_sid", chat.deployment_role_sid.as_ref(), SidKind::Role));
        labels.push(("chat.endpoint_id", chat.endpoint_id.as_ref()));
    }
    if let Some(sync) = &grants.sync {
        sids.push(("sync.service_sid", sync.service_sid.as_ref(), SidKind::Service));
        labels.push(("sync.endpoint_id", sync.endpoint_id.as_ref()));
    }
    if let Some(task_router) = &grants.task_router {
        sids.push(("task_router.workspace_sid", task_router.workspace_sid.as_ref(), SidKind::Workspace));
        sids.push(("task_router.worker_sid", task_router.worker_sid.as_ref(), SidKind::Worker));
        labels.push(("task_router.role", task_router.role.as_ref()));
    }
    for (field, value, kind) in sids {
        if let Some(value) = value
            && !kind.matches(value)
        {
            return invalid(format!("{field} must be {}", kind.shape()));
        }
    }
    for (field, value) in labels {
        if let Some(value) = value
            && (value.is_empty() || value.chars().count() > MAX_LABEL_CHARS || crate::text::has_forbidden_chars(value))
        {
            return invalid(format!("{field} must be 1 to {MAX_LABEL_CHARS} characters without control characters"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
