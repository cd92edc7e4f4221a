//! Probes on both listeners, and the OpenAPI document.

use crate::helpers::*;

#[tokio::test]
async fn both_listeners_answer_the_probes() {
    let app = spawn_app().await;
    for url in [app.url("/livez"), app.url("/readyz"), app.admin_url("/livez"), app.admin_url("/readyz")] {
        assert_eq!(app.client.get(&url).send().await.unwrap().status(), 200, "{url}");
    }
    let ready = app.get_json(&app.admin_url("/readyz")).await;
    assert_eq!(ready["key_sid"], KEY_SID);
    assert_eq!(ready["rate_limit_store"], "memory");
    assert_eq!(ready["reloader"], "not running", "the in-process app has no reloader");
}

/// What an attacker on the public ingress learns from the readiness probe: that it is ready,
/// nothing about keys, accounts or the rate-limit store.
#[tokio::test]
async fn the_public_readiness_probe_says_only_its_status() {
    let app = spawn_app().await;
    let public = app.get_json(&app.url("/readyz")).await;
    assert_eq!(public, serde_json::json!({"status": "ready"}));
    let text = app.client.get(app.url("/readyz")).send().await.unwrap().text().await.unwrap();
    assert!(!text.contains(KEY_SID) && !text.contains("memory"), "{text}");
}

#[tokio::test]
async fn readiness_fails_while_draining_and_liveness_does_not() {
    let app = spawn_app().await;
    app.health.start_draining();
    let response = app.client.get(app.admin_url("/readyz")).send().await.unwrap();
    assert_eq!(response.headers()["retry-after"], "1");
    assert_problem(response, 503, "shutting down").await;
    assert_eq!(app.client.get(app.admin_url("/livez")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn openapi_describes_the_token_endpoint_and_its_errors() {
    let app = spawn_app().await;
    let doc = app.get_json(&app.url("/openapi.json")).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let post = &doc["paths"]["/v1/tokens"]["post"];
    for status in ["200", "400", "401", "403", "413", "415", "503"] {
        assert!(post["responses"][status].is_object(), "response {status} documented");
    }
    let schemas = &doc["components"]["schemas"];
    for schema in ["TokenRequest", "TokenResponse", "Problem", "VoiceRequest"] {
        assert!(schemas[schema].is_object(), "{schema}");
    }
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let request_fields = schemas["TokenRequest"]["properties"].as_object().unwrap();
    assert_eq!(request_fields.keys().collect::<Vec<_>>(), ["grants", "identity", "platform", "ttl"]);
    assert_eq!(schemas["Platform"]["enum"], serde_json::json!(["ios", "ios_sandbox", "android", "web"]));
    assert!(schemas["TokenResponse"]["properties"]["region"].is_object());
    assert!(schemas["ExchangeResponse"]["properties"]["region"].is_object());
    assert!(schemas["ExchangeForm"]["properties"]["platform"].is_object());
}
