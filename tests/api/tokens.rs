//! `POST /v1/tokens` success paths, each token verified with a plain HMAC and decoded.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn an_app_user_gets_a_token_for_an_allowed_room() {
    let app = spawn_app().await;
    let body =
        app.mint_ok(&session_token("alice", &["user"]), Some(json!({"grants": {"video": {"room": "standup"}}}))).await;

    assert_eq!(body["identity"], "alice");
    assert_eq!(body["ttl"], 3600);
    assert_eq!(body["grants"], json!(["video"]));
    let (header, payload) = verify_token(body["token"].as_str().unwrap(), API_SECRET);
    assert_eq!(header, json!({"alg": "HS256", "typ": "JWT", "cty": "twilio-fpa;v=1"}));
    assert_eq!(payload["grants"], json!({"identity": "alice", "video": {"room": "standup"}}));
    assert_eq!(payload["iss"], KEY_SID);
    assert_eq!(payload["sub"], ACCOUNT_SID);
    let iat = payload["iat"].as_u64().unwrap();
    assert_eq!(payload["exp"].as_u64().unwrap(), iat + 3600);
    assert!(payload.get("nbf").is_none(), "no nbf unless configured");
    assert!(payload["jti"].as_str().unwrap().starts_with(&format!("{KEY_SID}-{iat}-")));
    let expires_at = humantime::parse_rfc3339(body["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(expires_at.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs(), iat + 3600);
}

#[tokio::test]
async fn the_response_is_json_and_never_cached() {
    let app = spawn_app().await;
    let response = app.post_token(Some(&session_token("alice", &["user"])), None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert!(response.headers().contains_key("x-request-id"));
}

#[tokio::test]
async fn an_empty_body_gets_the_policy_defaults_with_sids_filled_in() {
    let app = spawn_app().await;
    let body = app.mint_ok(&session_token("alice", &["user"]), None).await;
    let (_, payload) = verify_token(body["token"].as_str().unwrap(), API_SECRET);
    assert_eq!(
        payload["grants"],
        json!({"identity": "alice", "video": {"room": "user-alice"}, "chat": {"service_sid": CHAT_SID}})
    );
    assert_eq!(body["grants"], json!(["video", "chat"]));
}

#[tokio::test]
async fn voice_gets_the_policy_application_and_the_client_push_credential() {
    let app = spawn_app().await;
    let push = "CR22222222222222222222222222222222";
    let body = app
        .mint_ok(
            &session_token("alice", &["user"]),
            Some(json!({"ttl": 600, "grants": {"voice": {"push_credential_sid": push, "endpoint_id": "alice-ios"}}})),
        )
        .await;
    let (_, payload) = verify_token(body["token"].as_str().unwrap(), API_SECRET);
    assert_eq!(
        payload["grants"]["voice"],
        json!({"incoming": {"allow": true}, "outgoing": {"application_sid": APP_SID}, "push_credential_sid": push, "endpoint_id": "alice-ios"})
    );
    assert_eq!(payload["exp"].as_u64().unwrap() - payload["iat"].as_u64().unwrap(), 600);
}

#[tokio::test]
async fn a_backend_key_acts_on_behalf_of_an_identity_with_every_grant() {
    let app = spawn_app().await;
    let body = app
        .mint_ok(
            BACKEND_KEY,
            Some(json!({
                "identity": "bob",
                "ttl": 86400,
                "grants": {
                    "video": {"room": "any-room"},
                    "voice": {"outgoing": {"params": {"to": "+15005550006"}}},
                    "chat": {},
                    "sync": {},
                    "task_router": {"worker_sid": "WK77777777777777777777777777777777"}
                }
            })),
        )
        .await;
    assert_eq!(body["identity"], "bob");
    let (_, payload) = verify_token(body["token"].as_str().unwrap(), API_SECRET);
    let grants = &payload["grants"];
    assert_eq!(grants["identity"], "bob");
    assert_eq!(grants["voice"]["outgoing"], json!({"application_sid": APP_SID, "params": {"to": "+15005550006"}}));
    assert_eq!(grants["data_sync"], json!({"service_sid": "IS44444444444444444444444444444444"}));
    assert_eq!(
        grants["task_router"],
        json!({"workspace_sid": "WS66666666666666666666666666666666", "worker_sid": "WK77777777777777777777777777777777", "role": "worker"})
    );
    assert_eq!(body["grants"], json!(["voice", "video", "chat", "sync", "task_router"]));
}

#[tokio::test]
async fn a_backend_key_without_an_identity_mints_for_itself() {
    let app = spawn_app().await;
    let body = app.mint_ok(KIOSK_KEY, None).await;
    assert_eq!(body["identity"], "kiosk");
    assert_eq!(body["ttl"], 300, "the default ttl is capped by the rule");
}

#[tokio::test]
async fn a_region_adds_the_twr_header_and_nbf_is_written_only_when_configured() {
    // The test rules have video and sync, which Twilio offers in US1 only: the operator lists
    // the products (as when Twilio adds one to a region).
    let app = spawn_app_with(&[
        ("TOKENMINT__TOKEN__REGION", "ie1"),
        ("TOKENMINT__TOKEN__PRODUCTS", "voice,video,chat,sync,task_router"),
        ("TOKENMINT__TOKEN__NBF_BACKDATE_SECS", "60"),
    ])
    .await;
    let body = app.mint_ok(&session_token("alice", &["user"]), None).await;
    let (header, payload) = verify_token(body["token"].as_str().unwrap(), API_SECRET);
    assert_eq!(header["twr"], "ie1");
    assert_eq!(body["region"], "ie1", "the answer says where to connect");
    assert_eq!(payload["nbf"].as_u64().unwrap(), payload["iat"].as_u64().unwrap() - 60);
}

#[tokio::test]
async fn every_token_has_its_own_jti() {
    let app = spawn_app().await;
    let session = session_token("alice", &["user"]);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..20 {
        let body = app.mint_ok(&session, None).await;
        let (_, payload) = decode_token(body["token"].as_str().unwrap());
        assert!(seen.insert(payload["jti"].as_str().unwrap().to_owned()), "jti repeated");
    }
}

#[tokio::test]
async fn shutdown_finishes_a_request_already_in_flight() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut app = spawn_app().await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /v1/tokens HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{{",
        session_token("alice", &["user"])
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // The request is in flight (headers read, body half sent) when shutdown begins.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    app.begin_shutdown();
    for _ in 0..500 {
        if app.health.is_draining() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    assert!(app.health.is_draining());
    stream.write_all(b"}").await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"token\""));
    app.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_finishes_and_the_port_closes() {
    let app = spawn_app().await;
    let addr = app.addr;
    app.stop().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
