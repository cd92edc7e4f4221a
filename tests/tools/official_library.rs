//! Tokens minted by the running server, checked by Twilio's official Python helper library
//! (the `twilio` package, installed into `.venv` by `scripts/test`).

use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn the_official_twilio_library_verifies_our_tokens_and_writes_the_same_grants() {
    let python = test_python();
    // Callers get voice-safe identities and their push credential by platform.
    let callers = r#"
[[policy.rules]]
name = "callers"
roles = ["caller"]
identity_encoding = "voice_safe"
voice = { incoming = true, application_sid = "AP11111111111111111111111111111111", push_credentials = { ios = "CR22222222222222222222222222222222" } }
chat = { service_sid = "IS33333333333333333333333333333333", default_ttl_secs = 180 }
"#;
    let app = spawn_app_configured(callers, &[("TOKENMINT__TOKEN__REGION", "us1")], true).await;
    let user = session_token("carol@example.com", &["user"]);
    let caller = session_token("carol@example.com", &["caller"]);
    // SHA-256("carol@example.com"), its first 80 bits in base32.
    let carol = "carol_example_com__4dkhzin4d23c4zip";
    let requests: Vec<(&str, String, Value, Value)> = vec![
        (
            "video",
            user.clone(),
            json!({"grants": {"video": {"room": "standup"}}}),
            json!({"identity": "carol@example.com", "video": {"room": "standup"}}),
        ),
        (
            "voice, voice-safe identity, push credential by platform",
            caller.clone(),
            json!({"platform": "ios", "grants": {"voice": {"endpoint_id": "carol-web"}}}),
            json!({"identity": carol, "voice": {"incoming": {"allow": true}, "outgoing": {"application_sid": APP_SID}, "push_credential_sid": "CR22222222222222222222222222222222", "endpoint_id": "carol-web"}}),
        ),
        (
            "chat, voice-safe identity",
            caller.clone(),
            json!({"ttl": 180, "grants": {"chat": {}}}),
            json!({"identity": carol, "chat": {"service_sid": CHAT_SID}}),
        ),
        (
            "defaults",
            user.clone(),
            Value::Null,
            json!({"identity": "carol@example.com", "video": {"room": "user-carol@example.com"}, "chat": {"service_sid": CHAT_SID}}),
        ),
        (
            "backend, every grant",
            BACKEND_KEY.to_owned(),
            json!({"identity": "zoe_li_7", "grants": {
                "video": {},
                "voice": {"incoming": false, "outgoing": {"params": {"to": "+15005550006", "priority": 2}}},
                "chat": {"deployment_role_sid": "RL55555555555555555555555555555555", "endpoint_id": "e"},
                "sync": {"endpoint_id": "s"},
                "task_router": {"worker_sid": "WK77777777777777777777777777777777"}
            }}),
            json!({
                "identity": "zoe_li_7",
                "video": {},
                "voice": {"outgoing": {"application_sid": APP_SID, "params": {"to": "+15005550006", "priority": 2}}},
                "chat": {"service_sid": CHAT_SID, "deployment_role_sid": "RL55555555555555555555555555555555", "endpoint_id": "e"},
                "data_sync": {"service_sid": "IS44444444444444444444444444444444", "endpoint_id": "s"},
                "task_router": {"workspace_sid": "WS66666666666666666666666666666666", "worker_sid": "WK77777777777777777777777777777777", "role": "worker"}
            }),
        ),
        (
            "backend, a Unicode identity for the grants that take one",
            BACKEND_KEY.to_owned(),
            json!({"identity": "Zoë_李_😀", "grants": {"video": {}, "chat": {}, "sync": {}, "task_router": {}}}),
            json!({
                "identity": "Zoë_李_😀",
                "video": {},
                "chat": {"service_sid": CHAT_SID},
                "data_sync": {"service_sid": "IS44444444444444444444444444444444"},
                "task_router": {"workspace_sid": "WS66666666666666666666666666666666", "role": "worker"}
            }),
        ),
    ];
    let mut cases = Vec::new();
    for (name, credential, body, expected_grants) in requests {
        let minted = app.mint_ok(&credential, (!body.is_null()).then_some(body)).await;
        cases.push(json!({
            "name": name,
            "token": minted["token"],
            "grants": expected_grants,
            "header": {"alg": "HS256", "typ": "JWT", "cty": "twilio-fpa;v=1", "twr": "us1"},
        }));
    }
    let input = json!({"secret": API_SECRET, "account_sid": ACCOUNT_SID, "key_sid": KEY_SID, "cases": cases});

    let mut child = std::process::Command::new(python)
        .arg(repo_path("tests/python/twilio_verify.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python starts");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(input.to_string().as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("6 passed, 0 failed"), "{stdout}");
}
