//! RFC 8693 token exchange at `POST /oauth2/token`: an app-user JWT in, a Twilio Access Token
//! out, through the same limits, authentication, policy, metrics and audit as `/v1/tokens`, with
//! RFC 6749 errors.

use serde_json::Value;

use crate::helpers::*;

const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";

/// Asserts an RFC 6749 error with `status` and `code`, and returns its description.
async fn assert_oauth_error(response: reqwest::Response, status: u16, code: &str) -> String {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], code, "{body}");
    body["error_description"].as_str().expect("a description").to_owned()
}

#[tokio::test]
async fn an_app_user_jwt_is_exchanged_for_a_twilio_token_with_the_scoped_grants() {
    let app = spawn_app().await;
    let session = session_token("alice", &["user"]);
    let body = form(&[
        ("grant_type", EXCHANGE),
        ("subject_token", &session),
        ("subject_token_type", JWT),
        ("scope", "video:room:standup chat"),
    ]);
    let response = exchange(&app, body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["pragma"], "no-cache");
    assert!(response.headers().contains_key("ratelimit-policy"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["issued_token_type"], JWT);
    assert_eq!(body["token_type"], "N_A");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "video chat");
    let (header, payload) = verify_token(body["access_token"].as_str().unwrap(), API_SECRET);
    assert_eq!(header["cty"], "twilio-fpa;v=1");
    assert_eq!(payload["grants"]["identity"], "alice");
    assert_eq!(payload["grants"]["video"]["room"], "standup");
    assert_eq!(payload["grants"]["chat"]["service_sid"], CHAT_SID);
    assert!(payload["grants"]["voice"].is_null());

    // No scope: the policy's defaults, as an empty body to /v1/tokens gets; id_token works too.
    let body = form(&[("grant_type", EXCHANGE), ("subject_token", &session), ("subject_token_type", ID_TOKEN)]);
    let body: Value = exchange(&app, body).await.json().await.unwrap();
    assert_eq!(body["scope"], "video chat");
    let (_, payload) = verify_token(body["access_token"].as_str().unwrap(), API_SECRET);
    assert_eq!(payload["grants"]["video"]["room"], "user-alice");

    // Counted under its own route, and in the grants issued.
    let metrics = app.client.get(app.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"tokenmint_http_requests_total{method="POST",route="/oauth2/token",status="200"} 2"#));
}

#[tokio::test]
async fn failures_are_rfc_6749_errors() {
    let app = spawn_app().await;
    let alice = session_token("alice", &["user"]);
    let ok = |extra: &[(&str, &str)]| {
        let mut pairs = vec![("grant_type", EXCHANGE), ("subject_token", alice.as_str()), ("subject_token_type", JWT)];
        pairs.extend_from_slice(extra);
        form(&pairs)
    };

    let wrong_grant = form(&[("grant_type", "client_credentials"), ("subject_token", &alice)]);
    assert_oauth_error(exchange(&app, wrong_grant).await, 400, "unsupported_grant_type").await;
    let missing = form(&[("grant_type", EXCHANGE), ("subject_token_type", JWT)]);
    assert!(assert_oauth_error(exchange(&app, missing).await, 400, "invalid_request").await.contains("subject_token"));
    let wrong_type = form(&[("grant_type", EXCHANGE), ("subject_token", &alice), ("subject_token_type", "saml2")]);
    assert_oauth_error(exchange(&app, wrong_type).await, 400, "invalid_request").await;
    let twice = ok(&[("scope", "video"), ("scope", "chat")]);
    assert!(assert_oauth_error(exchange(&app, twice).await, 400, "invalid_request").await.contains("more than once"));
    let actor = ok(&[("actor_token", "x")]);
    assert_oauth_error(exchange(&app, actor).await, 400, "invalid_request").await;
    let requested = ok(&[("requested_token_type", "urn:ietf:params:oauth:token-type:access_token")]);
    assert_oauth_error(exchange(&app, requested).await, 400, "invalid_request").await;
    // RFC 6749: parameters it does not know are ignored.
    assert_eq!(exchange(&app, ok(&[("client_id", "web-app")])).await.status(), 200);

    // The subject token is the grant.
    let forged = format!("{}x", &alice[..alice.len() - 1]);
    let forged = form(&[("grant_type", EXCHANGE), ("subject_token", &forged), ("subject_token_type", JWT)]);
    assert_oauth_error(exchange(&app, forged).await, 400, "invalid_grant").await;
    let expired = sign_hs256(
        &serde_json::json!({"alg": "HS256", "typ": "JWT"}),
        &serde_json::json!({"iss": SESSION_ISSUER, "aud": SESSION_AUDIENCE, "sub": "alice", "exp": now() - 600}),
        SESSION_SECRET,
    );
    let expired = form(&[("grant_type", EXCHANGE), ("subject_token", &expired), ("subject_token_type", JWT)]);
    assert!(assert_oauth_error(exchange(&app, expired).await, 400, "invalid_grant").await.contains("expired"));

    // Scopes: unknown ones, and ones the policy does not allow.
    let unknown = ok(&[("scope", "openid video")]);
    assert!(assert_oauth_error(exchange(&app, unknown).await, 400, "invalid_scope").await.contains("openid"));
    let not_allowed = ok(&[("scope", "video:room:boardroom")]);
    assert!(assert_oauth_error(exchange(&app, not_allowed).await, 400, "invalid_scope").await.contains("boardroom"));

    // Not a form.
    let json = app
        .client
        .post(app.url("/oauth2/token"))
        .header("content-type", "application/json")
        .body(r#"{"grant_type": "x"}"#)
        .send()
        .await
        .unwrap();
    assert!(assert_oauth_error(json, 400, "invalid_request").await.contains("form-encoded"));
    let big = ok(&[("scope", &"video ".repeat(4000))]);
    assert_oauth_error(exchange(&app, big).await, 413, "invalid_request").await;
}

#[tokio::test]
async fn the_per_identity_limit_applies_to_exchanges_as_to_v1_tokens() {
    let app = spawn_app_with(&[
        ("TOKENMINT__RATE_LIMIT__PER_IDENTITY__PER_MINUTE", "1"),
        ("TOKENMINT__RATE_LIMIT__PER_IDENTITY__BURST", "1"),
    ])
    .await;
    let alice = session_token("alice", &["user"]);
    let body = || form(&[("grant_type", EXCHANGE), ("subject_token", &alice), ("subject_token_type", JWT)]);
    assert_eq!(exchange(&app, body()).await.status(), 200);
    let limited = exchange(&app, body()).await;
    assert!(limited.headers().contains_key("retry-after"));
    assert!(limited.headers()["ratelimit-policy"].to_str().unwrap().contains("identity"));
    assert_oauth_error(limited, 429, "temporarily_unavailable").await;
    // One quota for both endpoints.
    assert_eq!(app.post_token(Some(&alice), None).await.status(), 429);
}

#[tokio::test]
async fn the_exchange_is_described_in_the_openapi_document() {
    let app = spawn_app().await;
    let document = app.get_json(&app.url("/openapi.json")).await;
    let operation = &document["paths"]["/oauth2/token"]["post"];
    assert!(operation["requestBody"]["content"]["application/x-www-form-urlencoded"].is_object());
    for schema in ["ExchangeForm", "ExchangeResponse", "OAuthErrorBody"] {
        assert!(document["components"]["schemas"][schema].is_object(), "{schema}");
    }
}

/// The subject token is an app user's token. A backend API key is not one: it was once
/// exchanged, minting for the key's own name.
#[tokio::test]
async fn a_backend_api_key_is_no_subject_token() {
    let app = spawn_app().await;
    for key in [BACKEND_KEY, KIOSK_KEY] {
        let body = form(&[("grant_type", EXCHANGE), ("subject_token", key), ("subject_token_type", JWT)]);
        let description = assert_oauth_error(exchange(&app, body).await, 400, "invalid_grant").await;
        assert!(description.contains("app user's JWT"), "{description}");
    }
    let text = app.client.get(app.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert_eq!(metric_value(&text, "tokenmint_tokens_issued_total{grant=\"video\"}"), 0.0);
    assert_eq!(metric_value(&text, "tokenmint_auth_failures_total{reason=\"not_app_user_token\"}"), 2.0);
}

/// RFC 6749 §3.1: a parameter sent without a value is treated as if it were left out.
#[tokio::test]
async fn an_empty_parameter_is_a_missing_one() {
    let app = spawn_app().await;
    let alice = session_token("alice", &["user"]);
    for (empty, others) in [
        ("grant_type", vec![("subject_token", alice.as_str()), ("subject_token_type", JWT)]),
        ("subject_token", vec![("grant_type", EXCHANGE), ("subject_token_type", JWT)]),
        ("subject_token_type", vec![("grant_type", EXCHANGE), ("subject_token", alice.as_str())]),
    ] {
        let mut pairs = others.clone();
        pairs.push((empty, ""));
        let description = assert_oauth_error(exchange(&app, form(&pairs)).await, 400, "invalid_request").await;
        assert!(description.contains(&format!("{empty} is missing")), "{empty}: {description}");
    }
    // An empty scope is no scope: the policy's defaults.
    let body = form(&[("grant_type", EXCHANGE), ("subject_token", &alice), ("subject_token_type", JWT), ("scope", "")]);
    assert_eq!(exchange(&app, body).await.status(), 200);
}

/// A stricter per-IP limit for /v1/tokens covers the other route that mints: once, the token
/// exchange went on minting after /v1/tokens said 429.
#[tokio::test]
async fn a_minting_route_limit_covers_the_token_exchange() {
    let app =
        spawn_app_configured("\n[rate_limit.routes.\"/v1/tokens\"]\nper_minute = 1\nburst = 2\n", &[], true).await;
    let alice = session_token("alice", &["user"]);
    assert_eq!(app.post_token(Some(&alice), None).await.status(), 200);
    assert_eq!(app.post_token(Some(&alice), None).await.status(), 200);
    assert_eq!(app.post_token(Some(&alice), None).await.status(), 429);
    let body = form(&[("grant_type", EXCHANGE), ("subject_token", &alice), ("subject_token_type", JWT)]);
    let limited = exchange(&app, body).await;
    assert!(limited.headers()["ratelimit-policy"].to_str().unwrap().contains("\"ip:mint\""));
    assert_oauth_error(limited, 429, "temporarily_unavailable").await;
}
