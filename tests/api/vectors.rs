//! Every case of `tests/fixtures/vectors/access-tokens.json` (tokens made by Twilio's official
//! helper libraries; the project's copy of the steering repository's `shared/vectors`): ours,
//! minted with the same inputs at the same instant, decode to the node variant's header and
//! payload, except that `jti` carries our unique suffix.

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use tokenmint::accounts::TwilioCredentials;
use tokenmint::token::{
    ChatGrant, Grants, SyncGrant, TaskRouterGrant, TokenSettings, TokenSpec, VideoGrant, VoiceGrant,
};

use crate::helpers::{repo_path, verify_token};

fn vectors() -> Value {
    let path = std::env::var("TOKENMINT_VECTORS")
        .map(Into::into)
        .unwrap_or_else(|_| repo_path("tests/fixtures/vectors/access-tokens.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("{} cannot be read ({e}): set TOKENMINT_VECTORS to the vectors file", path.display())
    });
    serde_json::from_str(&text).unwrap()
}

fn text(grant: &Value, key: &str) -> Option<String> {
    grant.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// The vectors name grant fields as twilio-python's constructor arguments.
fn grants_from(input: &Value) -> Grants {
    let object = |v: &Value| v.as_object().cloned();
    Grants {
        voice: input.get("voice").map(|g| VoiceGrant {
            incoming_allow: g.get("incoming_allow").and_then(Value::as_bool).unwrap_or(false),
            outgoing_application_sid: text(g, "outgoing_application_sid"),
            outgoing_application_params: g.get("outgoing_application_params").and_then(object),
            push_credential_sid: text(g, "push_credential_sid"),
            endpoint_id: text(g, "endpoint_id"),
        }),
        video: input.get("video").map(|g| VideoGrant { room: text(g, "room") }),
        chat: input.get("chat").map(|g| ChatGrant {
            service_sid: text(g, "service_sid"),
            endpoint_id: text(g, "endpoint_id"),
            deployment_role_sid: text(g, "deployment_role_sid"),
            push_credential_sid: text(g, "push_credential_sid"),
        }),
        sync: input
            .get("sync")
            .map(|g| SyncGrant { service_sid: text(g, "service_sid"), endpoint_id: text(g, "endpoint_id") }),
        task_router: input.get("task_router").map(|g| TaskRouterGrant {
            workspace_sid: text(g, "workspace_sid"),
            worker_sid: text(g, "worker_sid"),
            role: text(g, "role"),
        }),
        playback: input.get("playback").and_then(object),
    }
}

#[test]
fn every_vector_decodes_to_the_official_header_and_payload() {
    let vectors = vectors();
    let cases = vectors["cases"].as_array().unwrap();
    assert!(cases.len() >= 15, "the vectors file lists every case");
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let input = &case["input"];
        let secret = input["secret"].as_str().unwrap();
        let credentials = TwilioCredentials {
            account_sid: tokenmint::sid::Sid::parse(input["account_sid"].as_str().unwrap()).unwrap(),
            api_key_sid: tokenmint::sid::Sid::parse(input["key_sid"].as_str().unwrap()).unwrap(),
            api_secret: SecretString::from(secret),
        };
        let settings = TokenSettings {
            default_ttl_secs: 3600,
            region: text(input, "region"),
            nbf_backdate_secs: None,
            products: None,
        };
        let spec = TokenSpec {
            identity: input["identity"].as_str().unwrap().into(),
            ttl_secs: input["ttl"].as_u64().unwrap() as u32,
            grants: grants_from(&input["grants"]),
            // "default" and null both mean no nbf in twilio-node, whose output we match.
            not_before: input["nbf"].as_u64(),
        };
        let issued_at = input["issued_at"].as_u64().unwrap();
        let minted = credentials.minter(&settings).mint(&spec, issued_at).unwrap();

        let (header, mut payload) = verify_token(minted.token.expose_secret(), secret);
        let expected = &case["node"];
        assert_eq!(header, expected["header"], "{name}: header");
        let official_jti = expected["payload"]["jti"].as_str().unwrap();
        let ours = payload["jti"].as_str().unwrap().to_owned();
        let suffix = ours.strip_prefix(&format!("{official_jti}-")).unwrap_or_else(|| panic!("{name}: jti {ours}"));
        assert!(suffix.len() >= 16 && suffix.bytes().all(|b| b.is_ascii_hexdigit()), "{name}: jti suffix {suffix}");
        payload["jti"] = Value::String(official_jti.into());
        assert_eq!(payload, expected["payload"], "{name}: payload");
    }
}

#[test]
fn the_python_variant_differs_from_node_only_as_the_notes_say() {
    // Guards our reading of the vectors: python adds nbf and omits iat; nothing else differs.
    for case in vectors()["cases"].as_array().unwrap() {
        let strip = |payload: &Value| -> Map<String, Value> {
            let mut map = payload.as_object().unwrap().clone();
            map.remove("iat");
            map.remove("nbf");
            map
        };
        assert_eq!(strip(&case["python"]["payload"]), strip(&case["node"]["payload"]), "{}", case["name"]);
    }
}
