//! What a client asks for: the body of `POST /v1/tokens`. Unknown fields are refused, so a typo
//! in a grant name can never mint a token that silently lacks that grant. SIDs, rooms and labels
//! are parsed into their types as the body is read, so a request that exists is well-formed.

use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::PolicyError;
use super::rooms::Room;
use super::settings::Platform;
use crate::sid::{Application, PushCredential, Role, Service, Sid, Worker, Workspace};
use crate::text::BoundedText;
use crate::token::{GrantName, MAX_TTL_SECS};

/// A token request. Every field is optional: an empty body asks for the policy's defaults.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// Lifetime in seconds, 1 to 86400; capped by the policy rule (a request above the cap is
    /// refused, never shortened) and at least each grant's floor (chat: 180). Default: the
    /// shortest of the grants' defaults, never under the longest floor among them.
    #[serde(default, deserialize_with = "deserialize_ttl")]
    #[schema(minimum = 1, maximum = 86400, value_type = Option<u32>, example = 3600)]
    pub ttl: Option<u32>,
    /// The identity to mint for. Only principals allowed to act on behalf of others may name
    /// one; an app user's identity always comes from their verified credential.
    #[schema(example = "alice", min_length = 1)]
    pub identity: Option<String>,
    /// The grants wanted; left out, the policy's default grants.
    #[serde(default, deserialize_with = "object")]
    pub grants: Option<RequestedGrants>,
    /// The platform the client runs on (`ios`, `ios_sandbox`, `android`, `web`): a rule with
    /// `push_credentials` gives the voice and chat grants that platform's push credential.
    /// `null` counts as left out.
    pub platform: Option<Platform>,
}

/// The grants a client asks for, at least one. A field left out of a grant takes the policy's
/// value. A grant is an object (`{}` for the policy's values), never `null`: leave it out.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestedGrants {
    #[serde(default, deserialize_with = "grant")]
    #[schema(nullable = false)]
    pub video: Option<VideoRequest>,
    #[serde(default, deserialize_with = "grant")]
    #[schema(nullable = false)]
    pub voice: Option<VoiceRequest>,
    #[serde(default, deserialize_with = "grant")]
    #[schema(nullable = false)]
    pub chat: Option<ChatRequest>,
    #[serde(default, deserialize_with = "grant")]
    #[schema(nullable = false)]
    pub sync: Option<SyncRequest>,
    #[serde(default, deserialize_with = "grant")]
    #[schema(nullable = false)]
    pub task_router: Option<TaskRouterRequest>,
}

/// Programmable Video. `{}` asks for the policy's default room (or any room, where allowed).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VideoRequest {
    /// 1 to 128 characters, no control characters.
    #[schema(value_type = Option<String>, example = "standup", min_length = 1, max_length = 128, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    pub room: Option<Room>,
}

/// Programmable Voice.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoiceRequest {
    /// Receive incoming calls.
    pub incoming: Option<bool>,
    #[serde(default, deserialize_with = "object")]
    pub outgoing: Option<OutgoingRequest>,
    #[schema(value_type = Option<String>, example = "CR22222222222222222222222222222222", pattern = "^CR[0-9a-fA-F]{32}$")]
    pub push_credential_sid: Option<Sid<PushCredential>>,
    #[schema(value_type = Option<String>, min_length = 1, max_length = 256, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    pub endpoint_id: Option<Label>,
}

/// Outgoing calls through a TwiML application.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutgoingRequest {
    #[schema(value_type = Option<String>, example = "AP11111111111111111111111111111111", pattern = "^AP[0-9a-fA-F]{32}$")]
    pub application_sid: Option<Sid<Application>>,
    /// Parameters passed to the TwiML application (only where the policy allows them).
    #[schema(value_type = Option<Object>)]
    pub params: Option<Map<String, Value>>,
}

/// Conversations (Chat).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatRequest {
    #[schema(value_type = Option<String>, example = "IS33333333333333333333333333333333", pattern = "^IS[0-9a-fA-F]{32}$")]
    pub service_sid: Option<Sid<Service>>,
    #[schema(value_type = Option<String>, pattern = "^CR[0-9a-fA-F]{32}$")]
    pub push_credential_sid: Option<Sid<PushCredential>>,
    #[schema(value_type = Option<String>, min_length = 1, max_length = 256, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    pub endpoint_id: Option<Label>,
    #[schema(value_type = Option<String>, pattern = "^RL[0-9a-fA-F]{32}$")]
    pub deployment_role_sid: Option<Sid<Role>>,
}

/// Sync (written as `data_sync` in the token).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    #[schema(value_type = Option<String>, example = "IS44444444444444444444444444444444", pattern = "^IS[0-9a-fA-F]{32}$")]
    pub service_sid: Option<Sid<Service>>,
    #[schema(value_type = Option<String>, min_length = 1, max_length = 256, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    pub endpoint_id: Option<Label>,
}

/// TaskRouter.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskRouterRequest {
    #[schema(value_type = Option<String>, pattern = "^WS[0-9a-fA-F]{32}$")]
    pub workspace_sid: Option<Sid<Workspace>>,
    #[schema(value_type = Option<String>, pattern = "^WK[0-9a-fA-F]{32}$")]
    pub worker_sid: Option<Sid<Worker>>,
    #[schema(value_type = Option<String>, min_length = 1, max_length = 256, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    pub role: Option<Label>,
}

impl RequestedGrants {
    /// The grants asked for.
    pub fn names(&self) -> Vec<GrantName> {
        [
            (GrantName::Video, self.video.is_some()),
            (GrantName::Voice, self.voice.is_some()),
            (GrantName::Chat, self.chat.is_some()),
            (GrantName::Sync, self.sync.is_some()),
            (GrantName::TaskRouter, self.task_router.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, asked)| asked.then_some(name))
        .collect()
    }
}

/// A nested object: `null` or left out is `None`, and an array is refused. (A derived
/// `Deserialize` would read `[…]` into a struct field by field, which the schema does not allow.)
fn object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<T>, D::Error> {
    deserializer.deserialize_any(ObjectOnly::<T, true>(PhantomData))
}

/// A grant: an object, never `null` (which could mean "no grant" or "the default grant").
fn grant<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<T>, D::Error> {
    deserializer.deserialize_any(ObjectOnly::<T, false>(PhantomData))
}

struct ObjectOnly<T, const OR_NULL: bool>(PhantomData<T>);

impl<'de, T: Deserialize<'de>, const OR_NULL: bool> Visitor<'de> for ObjectOnly<T, OR_NULL> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if OR_NULL { "an object or null" } else { "an object (leave a grant out rather than null)" })
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        if OR_NULL { Ok(None) } else { Err(E::invalid_type(serde::de::Unexpected::Unit, &self)) }
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(Some)
    }
}

/// Accepts only whole numbers from 1 to 86400, with one clear message for everything else
/// (0, negative, fractional, too large, a string).
fn deserialize_ttl<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    match Option::<Value>::deserialize(deserializer)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            // JSON Schema's `integer` includes 600.0, so the API does too.
            let whole = n.as_u64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0).map(|f| f as u64));
            whole.filter(|ttl| (1..=u64::from(MAX_TTL_SECS)).contains(ttl)).map(|ttl| Some(ttl as u32)).ok_or_else(
                || {
                    serde::de::Error::custom(format!(
                        "must be a whole number of seconds from 1 to {MAX_TTL_SECS}, not {n}"
                    ))
                },
            )
        }
        Some(other) => Err(serde::de::Error::custom(format!(
            "must be a whole number of seconds from 1 to {MAX_TTL_SECS}, not {other}"
        ))),
    }
}

/// An endpoint id or a TaskRouter role: 1 to 256 characters, no control characters.
pub type Label = BoundedText<256>;

/// Refuses a request naming no grant at all (400), before any rule is consulted: every field
/// is already well-formed.
pub(super) fn check_request_shape(request: &TokenRequest) -> Result<(), PolicyError> {
    match &request.grants {
        Some(RequestedGrants { video: None, voice: None, chat: None, sync: None, task_router: None }) => {
            Err(PolicyError::Invalid(
                "grants is empty: name at least one grant, or leave grants out for the policy's defaults".into(),
            ))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<TokenRequest, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn ttl_must_be_a_whole_number_in_range() {
        assert_eq!(parse(r#"{"ttl": 600}"#).unwrap().ttl, Some(600));
        assert_eq!(parse(r#"{"ttl": null}"#).unwrap().ttl, None);
        assert_eq!(parse(r#"{"ttl": 600.0}"#).unwrap().ttl, Some(600), "JSON Schema's integer includes 600.0");
        for bad in ["0", "-5", "1.5", "86401", "86401.0", "1e300", "-0.0", "\"600\""] {
            let err = parse(&format!(r#"{{"ttl": {bad}}}"#)).unwrap_err();
            assert!(err.contains("must be a whole number of seconds"), "{bad}: {err}");
        }
    }

    #[test]
    fn unknown_fields_are_refused_at_every_level() {
        assert!(parse(r#"{"grant": {}}"#).unwrap_err().contains("unknown field"));
        assert!(parse(r#"{"grants": {"vidoe": {}}}"#).unwrap_err().contains("unknown field"));
        assert!(parse(r#"{"grants": {"video": {"rooom": "x"}}}"#).unwrap_err().contains("unknown field"));
    }

    /// Found by schemathesis: `"sync": [null, null]` was read field by field as a SyncRequest.
    #[test]
    fn nested_grants_are_objects_or_null_never_arrays() {
        for bad in [
            r#"{"grants": []}"#,
            r#"{"grants": {"sync": [null, null]}}"#,
            r#"{"grants": {"video": ["standup"]}}"#,
            r#"{"grants": {"voice": {"outgoing": ["AP11111111111111111111111111111111"]}}}"#,
            r#"{"grants": {"chat": "x"}}"#,
        ] {
            assert!(parse(bad).unwrap_err().contains("expected an object"), "{bad}");
        }
        let request = parse(r#"{"grants": {"voice": {"outgoing": null}, "sync": {}}}"#).unwrap();
        let grants = request.grants.unwrap();
        assert!(grants.video.is_none() && grants.sync.is_some() && grants.voice.unwrap().outgoing.is_none());
        assert!(parse(r#"{"grants": null}"#).unwrap().grants.is_none());
        // Found by schemathesis too: `{"video": null}` is refused, not read as "no video".
        assert!(parse(r#"{"grants": {"video": null}}"#).unwrap_err().contains("leave a grant out"));
    }
}
