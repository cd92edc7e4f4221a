//! The rules compiled from the settings once, at start-up and on each reload: every problem is
//! reported at once, and what a rule pins, allows or leaves out is decided here.

use super::request::Label;
use super::rooms::{ROOM_RULE, Room};
use super::settings::{GrantName, IdentityEncoding, Platform, PolicySettings, RuleSettings};
use super::{Policy, RoomPattern};
use crate::accounts::AccountOffer;
use crate::sid::{Application, Kind, PushCredential, Role, Service, Sid, Worker, Workspace};
use crate::token::{MAX_TTL_SECS, VoiceIdentity};

/// A configured value a client may or may not choose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Pin<T> {
    Any,
    Exact(T),
}

#[derive(Debug, Clone)]
pub(super) struct Rule {
    pub(super) name: String,
    pub(super) roles: Vec<String>,
    pub(super) accounts: Vec<String>,
    pub(super) max_ttl_secs: u32,
    pub(super) defaults: Vec<GrantName>,
    pub(super) video: Option<VideoPolicy>,
    pub(super) voice: Option<VoicePolicy>,
    pub(super) chat: Option<ChatPolicy>,
    pub(super) sync: Option<Option<Pin<Sid<Service>>>>,
    pub(super) task_router: Option<TaskRouterPolicy>,
    pub(super) identity_encoding: IdentityEncoding,
    /// The ttl of a token of each grant the rule has, when its request names none.
    pub(super) default_ttls: Vec<(GrantName, u32)>,
}

/// The rooms a video grant may name, and the one it gets when it names none.
#[derive(Debug, Clone)]
pub(super) struct VideoPolicy {
    pub(super) rooms: Vec<RoomPattern>,
    pub(super) default_room: Option<RoomPattern>,
}

#[derive(Debug, Clone)]
pub(super) struct ChatPolicy {
    pub(super) service: Option<Pin<Sid<Service>>>,
    pub(super) push_credential: Option<Pin<Sid<PushCredential>>>,
    pub(super) push_by_platform: PushByPlatform,
    pub(super) deployment_role: Option<Pin<Sid<Role>>>,
}

#[derive(Debug, Clone)]
pub(super) struct TaskRouterPolicy {
    pub(super) workspace: Option<Pin<Sid<Workspace>>>,
    pub(super) worker: Option<Pin<Sid<Worker>>>,
    pub(super) role: Option<Pin<Label>>,
}

#[derive(Debug, Clone)]
pub(super) struct VoicePolicy {
    pub(super) incoming: bool,
    pub(super) application: Option<Pin<Sid<Application>>>,
    pub(super) outgoing_params: bool,
    pub(super) push_credential: Option<Pin<Sid<PushCredential>>>,
    pub(super) push_by_platform: PushByPlatform,
    pub(super) identity: VoiceIdentity,
}

/// A grant's push credential for each client platform; empty when the rule maps none.
pub(super) type PushByPlatform = Vec<(Platform, Sid<PushCredential>)>;

impl Policy {
    /// How many rules there are (for the reload log line).
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Validates the rules; every problem is reported at once. `accounts` are the Twilio
    /// accounts that exist (`"default"` and each `[accounts.<name>]`) with the products their
    /// regions offer; `default_ttl_secs` is `token.default_ttl_secs`.
    pub fn from_settings(
        settings: &PolicySettings,
        default_ttl_secs: u32,
        accounts: &[AccountOffer],
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
                for account in rule.accounts.iter().filter(|a| !accounts.iter().any(|o| &o.name == *a)) {
                    problems.push(format!(
                        "{at}: accounts names {account:?}, which is not configured: use \"default\" (TWILIO_*) or add [accounts.{account}] with TWILIO_{}_ACCOUNT_SID, _API_KEY and _API_SECRET",
                        account.to_ascii_uppercase()
                    ));
                }
                let compiled = Rule::from_settings(rule, &at, default_ttl_secs, &mut problems)?;
                compiled.check_products(&at, accounts, &mut problems);
                Some(compiled)
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
            accounts: accounts.iter().map(|a| a.name.clone()).collect(),
            denied_identities: settings.deny.identities.iter().cloned().collect(),
            denied_subjects: settings.deny.subjects.iter().cloned().collect(),
        })
    }
}

impl Rule {
    pub(super) fn from_settings(
        settings: &RuleSettings,
        at: &str,
        default_ttl_secs: u32,
        problems: &mut Vec<String>,
    ) -> Option<Self> {
        let before = problems.len();
        let voice = settings.voice.as_ref().map(|v| VoicePolicy {
            incoming: v.incoming,
            application: pin(problems, at, "voice.application_sid", &v.application_sid, sid),
            outgoing_params: v.outgoing_params,
            push_credential: pin(problems, at, "voice.push_credential_sid", &v.push_credential_sid, sid),
            push_by_platform: push_by_platform(problems, at, "voice", &v.push_credential_sid, &v.push_credentials),
            identity: if v.allow_unsafe_identity { VoiceIdentity::Unchecked } else { VoiceIdentity::Documented },
        });
        let chat = settings.chat.as_ref().map(|c| ChatPolicy {
            service: pin(problems, at, "chat.service_sid", &c.service_sid, sid),
            push_credential: pin(problems, at, "chat.push_credential_sid", &c.push_credential_sid, sid),
            push_by_platform: push_by_platform(problems, at, "chat", &c.push_credential_sid, &c.push_credentials),
            deployment_role: pin(problems, at, "chat.deployment_role_sid", &c.deployment_role_sid, sid),
        });
        let sync = settings.sync.as_ref().map(|s| pin(problems, at, "sync.service_sid", &s.service_sid, sid));
        let task_router = settings.task_router.as_ref().map(|t| TaskRouterPolicy {
            workspace: pin(problems, at, "task_router.workspace_sid", &t.workspace_sid, sid),
            worker: pin(problems, at, "task_router.worker_sid", &t.worker_sid, sid),
            role: pin(problems, at, "task_router.role", &t.role, |v| Label::parse(v).map_err(|e| e.to_string())),
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
                && Room::parse(&room).is_err()
            {
                problems.push(format!(
                    "{at}: video.default_room is not a valid room name even for a one-letter identity ({ROOM_RULE})"
                ));
            }
            VideoPolicy { rooms: v.rooms.iter().map(|r| RoomPattern::parse(r)).collect(), default_room }
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
        if let Some(v) = &settings.voice
            && !v.incoming
            && v.application_sid.is_none()
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
            && let Some(VideoPolicy { rooms, default_room: None }) = &video
            && !rooms.iter().any(RoomPattern::is_any)
        {
            problems.push(format!(
                "{at}: video is a default grant, so set video.default_room (or allow any room with \"*\")"
            ));
        }
        let default_ttls = default_ttls(settings, at, default_ttl_secs, problems);
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
            identity_encoding: settings.identity_encoding,
            default_ttls,
        })
    }

    /// Refuses a grant the rule could give from an account whose region lacks the product:
    /// Twilio would refuse the token when the client connects.
    fn check_products(&self, at: &str, accounts: &[AccountOffer], problems: &mut Vec<String>) {
        let grants: Vec<GrantName> = self.default_ttls.iter().map(|(grant, _)| *grant).collect();
        for offer in accounts.iter().filter(|offer| self.accounts.contains(&offer.name)) {
            for grant in grants.iter().filter(|grant| !offer.products.contains(grant)) {
                let error = match grant {
                    GrantName::Video => " (Twilio error 51007 when the client connects)",
                    _ => "",
                };
                problems.push(format!(
                    "{at}: its {grant} grant would be signed by account {:?} in region {}, where Twilio does not offer {grant}{error}: take {grant} out of this rule, mint it from an account in a region that has it, or, if Twilio now offers it there, list it in {}.products",
                    offer.name, offer.region, offer.key
                ));
            }
        }
    }
}

/// The ttl of each grant's tokens when the request names none: the grant's own
/// `default_ttl_secs`, else `token.default_ttl_secs` capped by the rule. A default over the
/// rule's cap or under the grant's floor, or a cap under a floor, is a problem.
fn default_ttls(settings: &RuleSettings, at: &str, global: u32, problems: &mut Vec<String>) -> Vec<(GrantName, u32)> {
    let max = settings.max_ttl_secs;
    let sections = [
        (GrantName::Video, settings.video.as_ref().map(|v| v.default_ttl_secs)),
        (GrantName::Voice, settings.voice.as_ref().map(|v| v.default_ttl_secs)),
        (GrantName::Chat, settings.chat.as_ref().map(|c| c.default_ttl_secs)),
        (GrantName::Sync, settings.sync.as_ref().map(|s| s.default_ttl_secs)),
        (GrantName::TaskRouter, settings.task_router.as_ref().map(|t| t.default_ttl_secs)),
    ];
    let mut ttls = Vec::new();
    for (grant, own) in sections {
        let Some(own) = own else { continue };
        let floor = grant.min_ttl_secs();
        let why = floor_reason(grant);
        match own {
            Some(ttl) if !(1..=MAX_TTL_SECS).contains(&ttl) => {
                problems.push(format!("{at}: {grant}.default_ttl_secs must be from 1 to {MAX_TTL_SECS}"));
            }
            Some(ttl) if ttl > max => problems.push(format!(
                "{at}: {grant}.default_ttl_secs ({ttl}) is over the rule's max_ttl_secs ({max}): lower it or raise the cap"
            )),
            Some(ttl) if ttl < floor => problems.push(format!(
                "{at}: {grant}.default_ttl_secs ({ttl}) is under {floor} seconds, the floor for {grant} tokens{why}"
            )),
            None if max < floor => problems.push(format!(
                "{at}: max_ttl_secs ({max}) is under {floor} seconds, the floor for {grant} tokens{why}"
            )),
            None if global.min(max) < floor => problems.push(format!(
                "{at}: {grant} tokens would default to token.default_ttl_secs ({global}), under {floor} seconds, the floor for {grant} tokens{why}: set {grant}.default_ttl_secs"
            )),
            _ => {}
        }
        ttls.push((grant, own.unwrap_or(global.min(max))));
    }
    ttls
}

/// Why a grant has its ttl floor, for messages.
pub(super) fn floor_reason(grant: GrantName) -> &'static str {
    match grant {
        GrantName::Chat => {
            " (Conversations SDKs warn three minutes before a token expires, so a shorter token leaves the client disconnected)"
        }
        _ => "",
    }
}

/// A field a rule may pin, as written: `"*"` lets the client choose, a value is the only one
/// accepted (parsed by `parse`, which describes the shape wanted when it fails), unset accepts
/// nothing.
fn pin<T>(
    problems: &mut Vec<String>,
    at: &str,
    field: &str,
    value: &Option<String>,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Option<Pin<T>> {
    match value.as_deref()? {
        "*" => Some(Pin::Any),
        value => match parse(value) {
            Ok(parsed) => Some(Pin::Exact(parsed)),
            Err(shape) => {
                problems.push(format!("{at}: {field} must be \"*\" or {shape}, not {value:?}"));
                None
            }
        },
    }
}

/// A SID of the kind its field holds, or the shape it must have.
fn sid<K: Kind>(value: &str) -> Result<Sid<K>, String> {
    Sid::parse(value).map_err(|_| K::KIND.shape())
}

/// `<grant>.push_credentials`: one credential per platform, each a CR SID, instead of one
/// `push_credential_sid` for every platform.
fn push_by_platform(
    problems: &mut Vec<String>,
    at: &str,
    grant: &str,
    single: &Option<String>,
    by_platform: &Option<std::collections::BTreeMap<Platform, String>>,
) -> PushByPlatform {
    let Some(by_platform) = by_platform else { return Vec::new() };
    if single.is_some() {
        problems.push(format!(
            "{at}: set {grant}.push_credential_sid (one for every platform) or {grant}.push_credentials (one per platform), not both"
        ));
    }
    if by_platform.is_empty() {
        problems.push(format!("{at}: {grant}.push_credentials is empty: map a platform to a CR SID, or leave it out"));
    }
    by_platform
        .iter()
        .filter_map(|(platform, value)| match sid::<PushCredential>(value) {
            Ok(parsed) => Some((*platform, parsed)),
            Err(shape) => {
                problems.push(format!("{at}: {grant}.push_credentials.{platform} must be {shape}, not {value:?}"));
                None
            }
        })
        .collect()
}
