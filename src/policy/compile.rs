//! The rules compiled from the settings once, at start-up and on each reload: every problem is
//! reported at once, and what a rule pins, allows or leaves out is decided here.

use super::request::Label;
use super::rooms::{ROOM_RULE, Room};
use super::settings::{GrantName, PolicySettings, RuleSettings};
use super::{Policy, RoomPattern};
use crate::sid::{Application, Kind, PushCredential, Role, Service, Sid, Worker, Workspace};
use crate::token::MAX_TTL_SECS;

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
}

impl Rule {
    pub(super) fn from_settings(settings: &RuleSettings, at: &str, problems: &mut Vec<String>) -> Option<Self> {
        let before = problems.len();
        let voice = settings.voice.as_ref().map(|v| VoicePolicy {
            incoming: v.incoming,
            application: pin(problems, at, "voice.application_sid", &v.application_sid, sid),
            outgoing_params: v.outgoing_params,
            push_credential: pin(problems, at, "voice.push_credential_sid", &v.push_credential_sid, sid),
        });
        let chat = settings.chat.as_ref().map(|c| ChatPolicy {
            service: pin(problems, at, "chat.service_sid", &c.service_sid, sid),
            push_credential: pin(problems, at, "chat.push_credential_sid", &c.push_credential_sid, sid),
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
