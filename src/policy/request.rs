//! What a client asks for: the body of `POST /v1/tokens`. Unknown fields are refused, so a typo
//! in a grant name can never mint a token that silently lacks that grant.

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::token::MAX_TTL_SECS;

/// A token request. Every field is optional: an empty body asks for the policy's defaults.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// Lifetime in seconds, 1 to 86400; capped by the policy rule (a request above the cap is
    /// refused, never shortened). Default: min(3600, the cap).
    #[serde(default, deserialize_with = "deserialize_ttl")]
    #[schema(minimum = 1, maximum = 86400, value_type = Option<u32>, example = 3600)]
    pub ttl: Option<u32>,
    /// The identity to mint for. Only principals allowed to act on behalf of others may name
    /// one; an app user's identity always comes from their verified credential.
    #[schema(example = "alice")]
    pub identity: Option<String>,
    /// The grants wanted; left out, the policy's default grants.
    pub grants: Option<RequestedGrants>,
}

/// The grants a client asks for. A field left out of a grant takes the policy's value.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestedGrants {
    pub video: Option<VideoRequest>,
    pub voice: Option<VoiceRequest>,
    pub chat: Option<ChatRequest>,
    pub sync: Option<SyncRequest>,
    pub task_router: Option<TaskRouterRequest>,
}

/// Programmable Video. `{}` asks for the policy's default room (or any room, where allowed).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VideoRequest {
    #[schema(example = "standup")]
    pub room: Option<String>,
}

/// Programmable Voice.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoiceRequest {
    /// Receive incoming calls.
    pub incoming: Option<bool>,
    pub outgoing: Option<OutgoingRequest>,
    #[schema(example = "CR22222222222222222222222222222222")]
    pub push_credential_sid: Option<String>,
    pub endpoint_id: Option<String>,
}

/// Outgoing calls through a TwiML application.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutgoingRequest {
    #[schema(example = "AP11111111111111111111111111111111")]
    pub application_sid: Option<String>,
    /// Parameters passed to the TwiML application (only where the policy allows them).
    #[schema(value_type = Option<Object>)]
    pub params: Option<Map<String, Value>>,
}

/// Conversations (Chat).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatRequest {
    #[schema(example = "IS33333333333333333333333333333333")]
    pub service_sid: Option<String>,
    pub push_credential_sid: Option<String>,
    pub endpoint_id: Option<String>,
    pub deployment_role_sid: Option<String>,
}

/// Sync (written as `data_sync` in the token).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    #[schema(example = "IS44444444444444444444444444444444")]
    pub service_sid: Option<String>,
    pub endpoint_id: Option<String>,
}

/// TaskRouter.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskRouterRequest {
    pub workspace_sid: Option<String>,
    pub worker_sid: Option<String>,
    pub role: Option<String>,
}

/// Accepts only whole numbers from 1 to 86400, with one clear message for everything else
/// (0, negative, fractional, too large, a string).
fn deserialize_ttl<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    match Option::<Value>::deserialize(deserializer)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            n.as_u64().filter(|ttl| (1..=u64::from(MAX_TTL_SECS)).contains(ttl)).map(|ttl| Some(ttl as u32)).ok_or_else(
                || {
                    serde::de::Error::custom(format!(
                        "ttl must be a whole number of seconds from 1 to {MAX_TTL_SECS}, not {n}"
                    ))
                },
            )
        }
        Some(other) => Err(serde::de::Error::custom(format!(
            "ttl must be a whole number of seconds from 1 to {MAX_TTL_SECS}, not {other}"
        ))),
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
        for bad in ["0", "-5", "1.5", "86401", "\"600\""] {
            let err = parse(&format!(r#"{{"ttl": {bad}}}"#)).unwrap_err();
            assert!(err.contains("ttl must be a whole number"), "{bad}: {err}");
        }
    }

    #[test]
    fn unknown_fields_are_refused_at_every_level() {
        assert!(parse(r#"{"grant": {}}"#).unwrap_err().contains("unknown field"));
        assert!(parse(r#"{"grants": {"vidoe": {}}}"#).unwrap_err().contains("unknown field"));
        assert!(parse(r#"{"grants": {"video": {"rooom": "x"}}}"#).unwrap_err().contains("unknown field"));
    }
}
