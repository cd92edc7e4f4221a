//! CORS in a real browser: headless Chromium (Debian's package, driven by playwright-core)
//! loads a page from an allowed origin and one from another origin, and each page calls
//! `fetch()` on the running service as a browser app would.

use std::time::Duration;

use axum::response::Html;
use serde_json::Value;

use crate::helpers::*;

/// Serves a blank page on a new loopback port, i.e. a distinct origin.
async fn serve_page() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let page =
        axum::Router::new().route("/", axum::routing::get(|| async { Html("<!doctype html><title>app</title>") }));
    tokio::spawn(async move { axum::serve(listener, page).await });
    origin
}

#[tokio::test]
async fn a_browser_page_on_the_allowed_origin_gets_a_token_and_another_origin_is_blocked() {
    let node_modules = repo_path("tests/browser/node_modules/playwright-core");
    assert!(node_modules.exists(), "run scripts/test: it installs playwright-core into tests/browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "{chromium} is missing: run scripts/test, which installs Debian's chromium"
    );

    let (allowed, denied) = (serve_page().await, serve_page().await);
    let app = spawn_app_with(&[("TOKENMINT__CORS__ALLOWED_ORIGINS", allowed.as_str())]).await;
    let api = format!("http://{}", app.addr);
    let session = session_token("alice", &["user"]);

    let run = tokio::process::Command::new("node")
        .arg(repo_path("tests/browser/cors.mjs"))
        .args([&api, &format!("{allowed}/"), &format!("{denied}/"), &session])
        .env("CHROMIUM", &chromium)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("the browser run finished within 90 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();

    let allowed = &seen["allowed"];
    assert_eq!(allowed["fetched"], true, "{allowed}");
    assert_eq!(allowed["status"], 200);
    assert_eq!(allowed["identity"], "alice");
    assert_eq!(allowed["token"], true);
    assert!(
        allowed["requestId"].is_string() && allowed["rateLimit"].is_string(),
        "exposed headers are readable: {allowed}"
    );

    let denied = &seen["denied"];
    assert_eq!(denied["fetched"], false, "the browser must block the other origin: {denied}");
    assert!(denied["error"].as_str().unwrap().contains("Failed to fetch"), "{denied}");

    let metrics = app.client.get(app.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
    let minted = metrics.lines().find(|l| l.starts_with(r#"tokenmint_tokens_issued_total{grant="video"}"#)).unwrap();
    assert!(minted.ends_with(" 1"), "only the allowed origin's request reached the handler: {minted}");
}
