//! The decision: which rule, if any, allows the whole request for this principal, and the
//! token spec it fills in. Nothing is widened: a request for anything outside a rule is refused
//! with the reason.

use super::compile::{ChatPolicy, Pin, PushByPlatform, Rule, TaskRouterPolicy, VideoPolicy, floor_reason};
use super::request::check_request_shape;
use super::rooms::{ROOM_RULE, Room};
use super::settings::{GrantName, IdentityEncoding, Platform};
use super::*;
use crate::auth::Principal;
use crate::sid::{PushCredential, Sid};
use crate::token::{
    self, ChatGrant, Grants, SyncGrant, TaskRouterGrant, TokenSpec, VideoGrant, VoiceGrant, VoiceIdentity,
};

impl Policy {
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

    /// The rules that give voice grants to identities as they are, where an issuer's prefix
    /// (`issuers`: issuer and prefix) puts every identity it makes outside Twilio's Voice
    /// alphabet, so that none of them could ever get a voice grant (for `check-config`).
    pub fn voice_prefix_warnings(&self, issuers: &[(String, String)]) -> Vec<String> {
        let mut warnings = Vec::new();
        let strict = self.rules.iter().filter(|rule| {
            rule.identity_encoding == IdentityEncoding::AsIs
                && rule.voice.as_ref().is_some_and(|voice| voice.identity == VoiceIdentity::Documented)
        });
        for rule in strict {
            for (issuer, prefix) in issuers.iter().filter(|(_, prefix)| !token::is_voice_safe(&format!("{prefix}x"))) {
                warnings.push(format!(
                    "policy rule {:?} gives voice grants to identities as they are, and every identity from {issuer} begins {prefix:?}, outside Twilio's Voice alphabet (letters, digits, _): its users would be refused the voice grant; set identity_encoding = \"voice_safe\" on the rule, or an identity_prefix of letters, digits and _",
                    rule.name
                ));
            }
        }
        warnings
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
        let unusable = |reason: String| {
            let message = format!("identity {identity:?} cannot be used: {reason}");
            if identity_from_request { PolicyError::Invalid(message) } else { PolicyError::Forbidden(message) }
        };
        if crate::text::has_forbidden_chars(identity) {
            return Err(unusable(token::IdentityError::ControlCharacter.to_string()));
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
            // The identity the rule writes: as authenticated, or its voice-safe form. The deny
            // list holds either.
            let minted = match rule.identity_encoding {
                IdentityEncoding::AsIs => std::borrow::Cow::Borrowed(identity),
                IdentityEncoding::VoiceSafe => token::voice_safe(identity),
            };
            if self.denied_identities.contains(minted.as_ref()) {
                return Err(PolicyError::Denied(DenyList::Identity));
            }
            match rule.apply(&minted, request) {
                Ok(spec) => {
                    let voice = rule.voice.as_ref().map_or(VoiceIdentity::Documented, |v| v.identity);
                    token::check_identity(&spec.identity, &spec.grants, voice).map_err(|e| {
                        let fix = match e {
                            token::IdentityError::NotVoiceSafe => format!(
                                "; set identity_encoding = \"voice_safe\" on policy rule {:?} to mint its voice-safe form, or voice.allow_unsafe_identity = true to pass it on as it is",
                                rule.name
                            ),
                            _ => String::new(),
                        };
                        unusable(format!("{e}{fix}"))
                    })?;
                    let original_identity = (minted != identity).then(|| identity.to_owned());
                    return Ok(Decision {
                        spec,
                        rule: rule.name.clone(),
                        account: account.to_owned(),
                        original_identity,
                    });
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

    fn apply(&self, identity: &str, request: &TokenRequest) -> Result<TokenSpec, PolicyError> {
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
            voice: requested.voice.as_ref().map(|v| self.voice(v, request.platform)).transpose()?,
            chat: requested.chat.as_ref().map(|c| self.chat(c, request.platform)).transpose()?,
            sync: requested.sync.as_ref().map(|s| self.sync(s)).transpose()?,
            task_router: requested.task_router.as_ref().map(|t| self.task_router(t)).transpose()?,
            playback: None,
        };
        let ttl_secs = self.ttl(request.ttl, &requested.names())?;
        Ok(TokenSpec { identity: identity.to_owned(), ttl_secs, grants, not_before: None })
    }

    /// The ttl of a token with `grants`: the one asked for, if the rule's cap and each grant's
    /// floor allow it; else the shortest of the grants' defaults, never under the longest floor
    /// among them (so chat with a short voice default still gets its 180 seconds).
    fn ttl(&self, asked: Option<u32>, grants: &[GrantName]) -> Result<u32, PolicyError> {
        let floor = grants.iter().map(|grant| (grant.min_ttl_secs(), *grant)).max();
        match asked {
            Some(ttl) if ttl > self.max_ttl_secs => Err(PolicyError::Forbidden(format!(
                "ttl {ttl} exceeds the cap of {} seconds set by policy rule {:?}",
                self.max_ttl_secs, self.name
            ))),
            Some(ttl) => match floor {
                Some((floor, grant)) if ttl < floor => Err(PolicyError::Invalid(format!(
                    "ttl {ttl} is under {floor} seconds, the floor for {grant} tokens{}",
                    floor_reason(grant)
                ))),
                _ => Ok(ttl),
            },
            None => {
                let default = self
                    .default_ttls
                    .iter()
                    .filter(|(grant, _)| grants.contains(grant))
                    .map(|(_, ttl)| *ttl)
                    .min()
                    .unwrap_or(self.max_ttl_secs);
                Ok(default.max(floor.map_or(1, |(floor, _)| floor)).min(self.max_ttl_secs))
            }
        }
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
        let VideoPolicy { rooms, default_room } = self.section(&self.video, "video")?;
        let room = match &request.room {
            Some(room) if rooms.iter().any(|p| p.matches(identity, room.as_str())) => Some(room.as_str().to_owned()),
            Some(room) => {
                let allowed: Vec<&str> = rooms.iter().map(RoomPattern::as_str).collect();
                return Err(PolicyError::Forbidden(format!(
                    "video room {room:?} is not allowed by policy rule {:?} (allowed: {allowed:?})",
                    self.name
                )));
            }
            None => match default_room {
                Some(pattern) => match pattern.expand(identity) {
                    Some(room) if Room::parse(&room).is_err() => {
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

    fn voice(&self, request: &VoiceRequest, platform: Option<Platform>) -> Result<VoiceGrant, PolicyError> {
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
            outgoing.and_then(|o| o.application_sid.as_ref()),
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
            push_credential_sid: self.push_credential(
                "voice",
                (&policy.push_credential, &policy.push_by_platform),
                request.push_credential_sid.as_ref(),
                platform,
            )?,
            endpoint_id: request.endpoint_id.as_ref().map(|id| id.as_str().to_owned()),
        })
    }

    fn chat(&self, request: &ChatRequest, platform: Option<Platform>) -> Result<ChatGrant, PolicyError> {
        let ChatPolicy { service, push_credential, push_by_platform, deployment_role } =
            self.section(&self.chat, "chat")?;
        Ok(ChatGrant {
            service_sid: resolve(&self.name, "chat.service_sid", service, request.service_sid.as_ref())?,
            endpoint_id: request.endpoint_id.as_ref().map(|id| id.as_str().to_owned()),
            deployment_role_sid: resolve(
                &self.name,
                "chat.deployment_role_sid",
                deployment_role,
                request.deployment_role_sid.as_ref(),
            )?,
            push_credential_sid: self.push_credential(
                "chat",
                (push_credential, push_by_platform),
                request.push_credential_sid.as_ref(),
                platform,
            )?,
        })
    }

    /// A grant's push credential: with a `platform` and a rule that maps platforms, that
    /// platform's (the client never names a SID); otherwise the pinned or requested one.
    fn push_credential(
        &self,
        grant: &str,
        (pin, by_platform): (&Option<Pin<Sid<PushCredential>>>, &PushByPlatform),
        requested: Option<&Sid<PushCredential>>,
        platform: Option<Platform>,
    ) -> Result<Option<String>, PolicyError> {
        let field = format!("{grant}.push_credential_sid");
        let Some(platform) = platform.filter(|_| !by_platform.is_empty()) else {
            return resolve(&self.name, &field, pin, requested);
        };
        if requested.is_some() {
            return Err(PolicyError::Invalid(format!(
                "name the platform or {field}, not both: policy rule {:?} chooses the push credential by platform",
                self.name
            )));
        }
        match by_platform.iter().find(|(mapped, _)| *mapped == platform) {
            Some((_, sid)) => Ok(Some(sid.as_str().to_owned())),
            None => {
                let mapped: Vec<&str> = by_platform.iter().map(|(p, _)| p.as_str()).collect();
                Err(PolicyError::Forbidden(format!(
                    "policy rule {:?} has no {grant} push credential for platform {platform} (it has {mapped:?})",
                    self.name
                )))
            }
        }
    }

    fn sync(&self, request: &SyncRequest) -> Result<SyncGrant, PolicyError> {
        let service = self.section(&self.sync, "sync")?;
        Ok(SyncGrant {
            service_sid: resolve(&self.name, "sync.service_sid", service, request.service_sid.as_ref())?,
            endpoint_id: request.endpoint_id.as_ref().map(|id| id.as_str().to_owned()),
        })
    }

    fn task_router(&self, request: &TaskRouterRequest) -> Result<TaskRouterGrant, PolicyError> {
        let TaskRouterPolicy { workspace, worker, role } = self.section(&self.task_router, "task_router")?;
        Ok(TaskRouterGrant {
            workspace_sid: resolve(&self.name, "task_router.workspace_sid", workspace, request.workspace_sid.as_ref())?,
            worker_sid: resolve(&self.name, "task_router.worker_sid", worker, request.worker_sid.as_ref())?,
            role: resolve(&self.name, "task_router.role", role, request.role.as_ref())?,
        })
    }
}

/// A field the rule may pin: pinned values are filled in and the only ones accepted; `"*"`
/// accepts what the client names; unset accepts nothing.
fn resolve<T: PartialEq + AsRef<str> + std::fmt::Debug>(
    rule: &str,
    field: &str,
    pin: &Option<Pin<T>>,
    requested: Option<&T>,
) -> Result<Option<String>, PolicyError> {
    let chosen = match (pin, requested) {
        (Some(Pin::Exact(pinned)), None) => Some(pinned),
        (_, None) => None,
        (Some(Pin::Any), Some(value)) => Some(value),
        (Some(Pin::Exact(pinned)), Some(value)) if pinned == value => Some(value),
        (Some(Pin::Exact(_)), Some(value)) => {
            return Err(PolicyError::Forbidden(format!(
                "{field} {value:?} is not the one policy rule {rule:?} allows"
            )));
        }
        (None, Some(_)) => {
            return Err(PolicyError::Forbidden(format!("policy rule {rule:?} does not let clients choose {field}")));
        }
    };
    Ok(chosen.map(|value| value.as_ref().to_owned()))
}
