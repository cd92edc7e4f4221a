//! Every bad input gets the right status and a problem+json reason, and the server keeps serving.

use serde_json::json;

use crate::helpers::*;

async fn post_raw(app: &TestApp, content_type: Option<&str>, body: impl Into<reqwest::Body>) -> reqwest::Response {
    let mut request = app.client.post(app.url("/v1/tokens")).bearer_auth(session_token("alice", &["user"])).body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn malformed_json_is_400() {
    let app = spawn_app().await;
    let response = post_raw(&app, Some("application/json"), "{\"ttl\": 60,").await;
    assert_problem(response, 400, "invalid JSON body").await;
}

#[tokio::test]
async fn wrong_types_are_400() {
    let app = spawn_app().await;
    let session = session_token("alice", &["user"]);
    for (body, detail) in [
        (json!({"ttl": "600"}), "ttl: must be a whole number"),
        (json!({"grants": "video"}), "invalid type"),
        (json!({"grants": {"video": {"room": 5}}}), "invalid type"),
        (json!({"grants": {"voice": {"incoming": "yes"}}}), "invalid type"),
        (json!([3600]), "must be a JSON object"),
        (json!(null), "must be a JSON object"),
        (json!({"grants": {"sync": [null, null]}}), "expected an object"),
        (json!({"grants": {"video": null}}), "leave a grant out"),
    ] {
        assert_problem(app.post_token(Some(&session), Some(body)).await, 400, detail).await;
    }
}

#[tokio::test]
async fn unknown_fields_are_400_so_a_typo_never_drops_a_grant() {
    let app = spawn_app().await;
    let session = session_token("alice", &["user"]);
    for body in
        [json!({"tll": 60}), json!({"grants": {"vidoe": {}}}), json!({"grants": {"video": {"rooom": "standup"}}})]
    {
        assert_problem(app.post_token(Some(&session), Some(body)).await, 400, "unknown field").await;
    }
}

#[tokio::test]
async fn ttl_out_of_range_is_400_and_above_the_cap_is_403_naming_it() {
    let app = spawn_app().await;
    let session = session_token("alice", &["user"]);
    for ttl in [json!(0), json!(-5), json!(1.5), json!(86401)] {
        let response = app.post_token(Some(&session), Some(json!({"ttl": ttl}))).await;
        assert_problem(response, 400, "ttl: must be a whole number of seconds from 1 to 86400").await;
    }
    let over_cap = app.post_token(Some(&session), Some(json!({"ttl": 7200}))).await;
    assert_problem(over_cap, 403, "cap of 3600 seconds").await;
}

#[tokio::test]
async fn a_body_over_16_kib_is_413() {
    let app = spawn_app().await;
    let body = format!("{{\"identity\": \"{}\"}}", "a".repeat(17 * 1024));
    assert_problem(post_raw(&app, Some("application/json"), body).await, 413, "16384 bytes").await;
}

#[tokio::test]
async fn a_body_that_is_not_json_is_415() {
    let app = spawn_app().await;
    assert_problem(post_raw(&app, Some("text/plain"), "{}").await, 415, "application/json").await;
    assert_problem(post_raw(&app, None, "{}").await, 415, "application/json").await;
    assert_problem(post_raw(&app, Some("application/x-www-form-urlencoded"), "ttl=60").await, 415, "JSON").await;
}

#[tokio::test]
async fn a_missing_credential_is_401_with_a_bare_bearer_challenge() {
    let app = spawn_app().await;
    let response = app.post_token(None, None).await;
    assert_eq!(response.headers()["www-authenticate"], "Bearer realm=\"tokenmint\"");
    assert_problem(response, 401, "Authorization: Bearer").await;
    let basic = app.client.post(app.url("/v1/tokens")).basic_auth("u", Some("p")).send().await.unwrap();
    assert_problem(basic, 401, "Bearer scheme").await;
}

#[tokio::test]
async fn bad_session_tokens_are_401_invalid_token() {
    let app = spawn_app().await;
    let now = now();
    let claims = |overrides: serde_json::Value| {
        let mut claims = json!({"iss": SESSION_ISSUER, "aud": SESSION_AUDIENCE, "sub": "alice", "exp": now + 300});
        claims.as_object_mut().unwrap().extend(overrides.as_object().unwrap().clone());
        claims
    };
    let hs256 = json!({"alg": "HS256", "typ": "JWT"});
    let valid = sign_hs256(&hs256, &claims(json!({})), SESSION_SECRET);
    let (unsigned, _) = valid.rsplit_once('.').unwrap();
    let alg_none = {
        let none = sign_hs256(&json!({"alg": "none", "typ": "JWT"}), &claims(json!({})), SESSION_SECRET);
        format!("{}.", none.rsplit_once('.').unwrap().0)
    };
    let cases = [
        ("garbled", "not.a.jwt".to_owned(), "not valid"),
        ("garbled base64", "e30.e30.e30".to_owned(), "not valid"),
        ("expired", sign_hs256(&hs256, &claims(json!({"exp": now - 60})), SESSION_SECRET), "expired"),
        ("wrong audience", sign_hs256(&hs256, &claims(json!({"aud": "someone-else"})), SESSION_SECRET), "not valid"),
        ("wrong issuer", sign_hs256(&hs256, &claims(json!({"iss": "https://evil.test"})), SESSION_SECRET), "not valid"),
        (
            "no exp",
            sign_hs256(
                &hs256,
                &json!({"iss": SESSION_ISSUER, "aud": SESSION_AUDIENCE, "sub": "alice"}),
                SESSION_SECRET,
            ),
            "not valid",
        ),
        (
            "wrong secret",
            sign_hs256(&hs256, &claims(json!({})), "another-secret-of-sufficient-length-000"),
            "not valid",
        ),
        ("alg none", alg_none, "not valid"),
        ("alg none, no dot", unsigned.to_owned(), "not valid"),
        ("HS384", sign_hs256(&json!({"alg": "HS384", "typ": "JWT"}), &claims(json!({})), SESSION_SECRET), "not valid"),
        ("empty identity", sign_hs256(&hs256, &claims(json!({"sub": ""})), SESSION_SECRET), "not valid"),
    ];
    for (name, credential, detail) in cases {
        let response = app.post_token(Some(&credential), None).await;
        let challenge = response.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(challenge.contains("error=\"invalid_token\""), "{name}: {challenge}");
        let problem = assert_problem(response, 401, detail).await;
        assert!(!problem.to_string().contains(SESSION_SECRET), "{name}");
    }
    assert_eq!(app.post_token(Some(&valid), None).await.status(), 200, "the valid one passes");
}

#[tokio::test]
async fn an_unknown_api_key_is_401() {
    let app = spawn_app().await;
    assert_problem(app.post_token(Some("tmk_test_backend_0123456789abcdeX"), None).await, 401, "not valid").await;
}

#[tokio::test]
async fn naming_another_identity_without_act_as_is_403() {
    let app = spawn_app().await;
    let user = app.post_token(Some(&session_token("alice", &["user"])), Some(json!({"identity": "bob"}))).await;
    assert_problem(user, 403, "act on behalf of others").await;
    let kiosk = app.post_token(Some(KIOSK_KEY), Some(json!({"identity": "bob"}))).await;
    assert_problem(kiosk, 403, "act on behalf of others").await;
}

#[tokio::test]
async fn identities_twilio_would_refuse_are_refused() {
    let app = spawn_app().await;
    let long = "a".repeat(129);
    let video = app.post_token(Some(BACKEND_KEY), Some(json!({"identity": long, "grants": {"video": {}}}))).await;
    assert_problem(video, 400, "longer than 128").await;
    let wide = "李".repeat(65);
    let video = app.post_token(Some(BACKEND_KEY), Some(json!({"identity": wide, "grants": {"video": {}}}))).await;
    assert_problem(video, 400, "longer than 128").await;
    let longer = "a".repeat(257);
    let chat = app.post_token(Some(BACKEND_KEY), Some(json!({"identity": longer, "grants": {"chat": {}}}))).await;
    assert_problem(chat, 400, "longer than 256").await;
    let control =
        app.post_token(Some(BACKEND_KEY), Some(json!({"identity": "bob\u{7}", "grants": {"voice": {}}}))).await;
    assert_problem(control, 400, "control character").await;
    let spaced =
        app.post_token(Some(&session_token("alice smith", &["user"])), Some(json!({"grants": {"voice": {}}}))).await;
    assert_problem(spaced, 403, "letters, digits and _").await;
    let empty = app.post_token(Some(BACKEND_KEY), Some(json!({"identity": "", "grants": {"chat": {}}}))).await;
    assert_problem(empty, 400, "empty").await;
}

#[tokio::test]
async fn rooms_and_grants_outside_the_policy_are_403() {
    let app = spawn_app().await;
    let session = session_token("alice", &["user"]);
    let room = app.post_token(Some(&session), Some(json!({"grants": {"video": {"room": "user-bob"}}}))).await;
    assert_problem(room, 403, "\"user-bob\" is not allowed").await;
    let kiosk_voice = app.post_token(Some(KIOSK_KEY), Some(json!({"grants": {"voice": {}}}))).await;
    assert_problem(kiosk_voice, 403, "does not allow the voice grant").await;
    let nobody = app.post_token(Some(&session_token("eve", &["guest"])), None).await;
    assert_problem(nobody, 403, "no policy rule").await;
    let params = app
        .post_token(Some(&session), Some(json!({"grants": {"voice": {"outgoing": {"params": {"to": "+1"}}}}})))
        .await;
    assert_problem(params, 403, "params").await;
}

#[tokio::test]
async fn sids_of_the_wrong_shape_or_kind_are_400_naming_the_field() {
    let app = spawn_app().await;
    let ok = |prefix: &str| format!("{prefix}{}", "1".repeat(32));
    let cases = [
        (
            json!({"voice": {"outgoing": {"application_sid": ok("AC")}}}),
            "grants.voice.outgoing.application_sid: must be AP",
        ),
        (json!({"voice": {"push_credential_sid": "CR123"}}), "grants.voice.push_credential_sid: must be CR"),
        (json!({"chat": {"service_sid": ok("IS") + "0"}}), "grants.chat.service_sid: must be IS"),
        (json!({"sync": {"service_sid": "IS3333333333333333333333333333333g"}}), "grants.sync.service_sid: must be IS"),
        (json!({"task_router": {"workspace_sid": ok("WK")}}), "grants.task_router.workspace_sid: must be WS"),
        (json!({"task_router": {"worker_sid": ok("WS")}}), "grants.task_router.worker_sid: must be WK"),
    ];
    for (grants, detail) in cases {
        assert_problem(
            app.post_token(Some(BACKEND_KEY), Some(json!({"identity": "bob", "grants": grants}))).await,
            400,
            detail,
        )
        .await;
    }
}

#[tokio::test]
async fn unknown_paths_and_methods_are_problems_too() {
    let app = spawn_app().await;
    assert_problem(app.client.get(app.url("/v2/tokens")).send().await.unwrap(), 404, "no such resource").await;
    let get = app.client.get(app.url("/v1/tokens")).send().await.unwrap();
    assert_eq!(get.headers()["allow"], "POST");
    assert_problem(get, 405, "not allowed").await;
    assert_problem(app.client.get(app.admin_url("/v1/tokens")).send().await.unwrap(), 404, "no such resource").await;
}

#[tokio::test]
async fn the_server_keeps_serving_after_bad_input() {
    let app = spawn_app().await;
    for body in ["{", "[]", "null", "\u{0}", "{\"grants\": {\"video\": {\"room\": \"\"}}}"] {
        let status = post_raw(&app, Some("application/json"), body).await.status();
        assert_eq!(status, 400, "{body:?}");
    }
    app.mint_ok(&session_token("alice", &["user"]), None).await;
}
