//! The OAuth `scope` of a token exchange (`POST /oauth2/token`), read into the same
//! [`TokenRequest`] that `POST /v1/tokens` takes, so both go through one policy.
//!
//! Syntax: space-separated grant names, `voice`, `video`, `chat`, `sync` and `task_router`,
//! where `video:room:<name>` asks for one room. Every value a grant leaves out comes from the
//! policy, as with an empty JSON grant. No scope at all asks for the policy's defaults.

use super::rooms::{ROOM_RULE, Room};
use super::{RequestedGrants, TokenRequest, VideoRequest};

/// What `scope` asks for, or why it cannot be read (a sentence for `invalid_scope`).
pub fn request_from_scope(scope: Option<&str>) -> Result<TokenRequest, String> {
    let Some(scope) = scope.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(TokenRequest::default());
    };
    let mut grants = RequestedGrants::default();
    for item in scope.split(' ').filter(|item| !item.is_empty()) {
        let (name, room) = match item.split_once(':') {
            Some(("video", rest)) => match rest.strip_prefix("room:") {
                Some(room) if !room.is_empty() => {
                    let room = Room::parse(room).map_err(|_| format!("scope {item:?}: {ROOM_RULE}"))?;
                    ("video", Some(room))
                }
                _ => return Err(format!("scope {item:?} is not video:room:<name>")),
            },
            Some(_) => return Err(unknown(item)),
            None => (item, None),
        };
        let taken = match name {
            "video" => grants.video.replace(VideoRequest { room }).is_some(),
            "voice" => grants.voice.replace(Default::default()).is_some(),
            "chat" => grants.chat.replace(Default::default()).is_some(),
            "sync" => grants.sync.replace(Default::default()).is_some(),
            "task_router" => grants.task_router.replace(Default::default()).is_some(),
            _ => return Err(unknown(item)),
        };
        if taken {
            return Err(format!("scope names {name} twice"));
        }
    }
    Ok(TokenRequest { grants: Some(grants), ..TokenRequest::default() })
}

fn unknown(item: &str) -> String {
    format!("scope {item:?} is unknown: use voice, video, video:room:<name>, chat, sync or task_router")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_and_a_room_are_read() {
        let request = request_from_scope(Some("video:room:standup  chat voice")).unwrap();
        let grants = request.grants.unwrap();
        assert_eq!(grants.video.unwrap().room.as_ref().map(|r| r.as_str()), Some("standup"));
        assert!(grants.chat.is_some() && grants.voice.is_some());
        assert!(grants.sync.is_none() && grants.task_router.is_none());
        assert!(request_from_scope(Some("video")).unwrap().grants.unwrap().video.unwrap().room.is_none());
    }

    #[test]
    fn no_scope_means_the_policy_defaults() {
        for scope in [None, Some(""), Some("   ")] {
            assert!(request_from_scope(scope).unwrap().grants.is_none());
        }
    }

    #[test]
    fn unknown_malformed_and_repeated_scopes_are_refused() {
        for bad in ["openid", "video:standup", "video:room:", "chat:x", "video video:room:a", "sync sync"] {
            assert!(request_from_scope(Some(bad)).is_err(), "{bad}");
        }
    }
}
