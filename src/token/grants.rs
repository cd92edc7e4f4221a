//! The grants an Access Token carries, serialized with the field names Twilio's helper
//! libraries write. A field without a value is left out.

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Map, Value};

/// Every grant a token can carry. `None` means the token does not carry that grant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grants {
    pub voice: Option<VoiceGrant>,
    pub video: Option<VideoGrant>,
    pub chat: Option<ChatGrant>,
    /// Sync; its wire name is `data_sync`.
    pub sync: Option<SyncGrant>,
    pub task_router: Option<TaskRouterGrant>,
    /// Twilio Live playback; the helper libraries copy the grant object as given, under `player`.
    pub playback: Option<Map<String, Value>>,
}

impl Serialize for Grants {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        self.serialize_entries(&mut map)?;
        map.end()
    }
}

impl Grants {
    /// Writes each grant present under its wire name, into a map the caller has begun (the
    /// token's `grants` claim also holds `identity`).
    pub fn serialize_entries<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        if let Some(voice) = &self.voice {
            map.serialize_entry("voice", voice)?;
        }
        if let Some(video) = &self.video {
            map.serialize_entry("video", video)?;
        }
        if let Some(chat) = &self.chat {
            map.serialize_entry("chat", chat)?;
        }
        if let Some(sync) = &self.sync {
            map.serialize_entry("data_sync", sync)?;
        }
        if let Some(task_router) = &self.task_router {
            map.serialize_entry("task_router", task_router)?;
        }
        if let Some(playback) = &self.playback {
            map.serialize_entry("player", playback)?;
        }
        Ok(())
    }

    /// The names of the grants present, as the HTTP API spells them.
    pub fn names(&self) -> Vec<&'static str> {
        [
            ("voice", self.voice.is_some()),
            ("video", self.video.is_some()),
            ("chat", self.chat.is_some()),
            ("sync", self.sync.is_some()),
            ("task_router", self.task_router.is_some()),
            ("playback", self.playback.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, present)| present.then_some(name))
        .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.names().is_empty()
    }
}

/// Programmable Voice. `incoming.allow` is written only when true, and `outgoing.params` only
/// with an application SID, as the helper libraries do.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VoiceGrant {
    pub incoming_allow: bool,
    pub outgoing_application_sid: Option<String>,
    pub outgoing_application_params: Option<Map<String, Value>>,
    pub push_credential_sid: Option<String>,
    pub endpoint_id: Option<String>,
}

impl Serialize for VoiceGrant {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Incoming {
            allow: bool,
        }
        #[derive(Serialize)]
        struct Outgoing<'a> {
            application_sid: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            params: Option<&'a Map<String, Value>>,
        }
        let mut map = serializer.serialize_map(None)?;
        if self.incoming_allow {
            map.serialize_entry("incoming", &Incoming { allow: true })?;
        }
        if let Some(application_sid) = &self.outgoing_application_sid {
            let params = self.outgoing_application_params.as_ref();
            map.serialize_entry("outgoing", &Outgoing { application_sid, params })?;
        }
        if let Some(sid) = &self.push_credential_sid {
            map.serialize_entry("push_credential_sid", sid)?;
        }
        if let Some(id) = &self.endpoint_id {
            map.serialize_entry("endpoint_id", id)?;
        }
        map.end()
    }
}

/// Programmable Video. No room means any room.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VideoGrant {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
}

/// Conversations (formerly Chat).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ChatGrant {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_sid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_role_sid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push_credential_sid: Option<String>,
}

/// Sync.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SyncGrant {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_sid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_id: Option<String>,
}

/// TaskRouter.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TaskRouterGrant {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace_sid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_sid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// Why Twilio would refuse an identity at connect time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("the identity is empty")]
    Empty,
    #[error(
        "the identity is longer than {max} (counting double-byte characters as 2), the limit for the {grant} grant"
    )]
    TooLong { max: usize, grant: &'static str },
    #[error("the identity contains a space or a control character, which the voice grant does not allow")]
    ForbiddenCharacter,
    #[error(
        "the identity contains a control character, a line separator or a bidirectional override, which no grant allows"
    )]
    ControlCharacter,
}

/// Video identities may be 128 long, others 256; double-byte characters count 2.
const MAX_VIDEO_IDENTITY: usize = 128;
const MAX_IDENTITY: usize = 256;

/// Checks `identity` against the rules Twilio applies for the grants it will be used with.
pub fn check_identity(identity: &str, grants: &Grants) -> Result<(), IdentityError> {
    if identity.is_empty() {
        return Err(IdentityError::Empty);
    }
    if crate::text::has_forbidden_chars(identity) {
        return Err(IdentityError::ControlCharacter);
    }
    let length: usize = identity.chars().map(|c| if c.is_ascii() { 1 } else { 2 }).sum();
    if grants.video.is_some() && length > MAX_VIDEO_IDENTITY {
        return Err(IdentityError::TooLong { max: MAX_VIDEO_IDENTITY, grant: "video" });
    }
    if length > MAX_IDENTITY {
        let grant = grants.names().first().copied().unwrap_or("any");
        return Err(IdentityError::TooLong { max: MAX_IDENTITY, grant });
    }
    if grants.voice.is_some() && identity.chars().any(char::is_whitespace) {
        return Err(IdentityError::ForbiddenCharacter);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video() -> Grants {
        Grants { video: Some(VideoGrant::default()), ..Grants::default() }
    }

    fn voice() -> Grants {
        Grants { voice: Some(VoiceGrant::default()), ..Grants::default() }
    }

    #[test]
    fn voice_writes_incoming_only_when_allowed_and_params_only_with_an_application() {
        let grant = VoiceGrant {
            outgoing_application_params: Some(Map::from_iter([("to".into(), "x".into())])),
            ..VoiceGrant::default()
        };
        assert_eq!(serde_json::to_string(&grant).unwrap(), "{}");
    }

    #[test]
    fn video_identities_stop_at_128_with_double_byte_characters_counting_two() {
        assert!(check_identity(&"a".repeat(128), &video()).is_ok());
        assert!(check_identity(&"a".repeat(129), &video()).is_err());
        assert!(check_identity(&"李".repeat(64), &video()).is_ok());
        assert!(check_identity(&"李".repeat(65), &video()).is_err());
        assert!(check_identity(&"a".repeat(256), &voice()).is_ok());
        assert!(check_identity(&"a".repeat(257), &voice()).is_err());
    }

    #[test]
    fn voice_identities_have_no_spaces_or_control_characters() {
        assert_eq!(check_identity("a b", &voice()), Err(IdentityError::ForbiddenCharacter));
        assert!(check_identity("a b", &video()).is_ok());
        assert_eq!(check_identity("", &video()), Err(IdentityError::Empty));
    }

    #[test]
    fn no_grant_takes_an_identity_with_control_characters() {
        let chat = Grants { chat: Some(ChatGrant::default()), ..Grants::default() };
        for grants in [video(), voice(), chat, Grants::default()] {
            for bad in ["a\u{7}", "alice\n{\"forged\":1}", "a\u{1b}[31m", "a\u{2028}", "\u{202E}x"] {
                assert_eq!(check_identity(bad, &grants), Err(IdentityError::ControlCharacter), "{bad:?}");
            }
        }
    }
}
