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

/// A product a token can grant, as configuration and responses name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantName {
    Video,
    Voice,
    Chat,
    Sync,
    TaskRouter,
}

impl GrantName {
    pub const ALL: [GrantName; 5] = [Self::Video, Self::Voice, Self::Chat, Self::Sync, Self::TaskRouter];

    /// The name configuration and responses use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Video => "video",
            Self::Voice => "voice",
            Self::Chat => "chat",
            Self::Sync => "sync",
            Self::TaskRouter => "task_router",
        }
    }

    /// The shortest ttl a token with this grant may have. Conversations (chat) SDKs raise their
    /// about-to-expire event in a token's final three minutes; a shorter token leaves the client
    /// no time to refresh, and it disconnects.
    pub fn min_ttl_secs(self) -> u32 {
        match self {
            Self::Chat => MIN_CHAT_TTL_SECS,
            _ => 1,
        }
    }
}

impl std::fmt::Display for GrantName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// See [`GrantName::min_ttl_secs`].
pub const MIN_CHAT_TTL_SECS: u32 = 180;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voice_writes_incoming_only_when_allowed_and_params_only_with_an_application() {
        let grant = VoiceGrant {
            outgoing_application_params: Some(Map::from_iter([("to".into(), "x".into())])),
            ..VoiceGrant::default()
        };
        assert_eq!(serde_json::to_string(&grant).unwrap(), "{}");
    }
}
