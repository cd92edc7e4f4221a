//! CORS in a real browser: headless Chromium (Debian's package, driven by playwright-core)
//! loads a page from an allowed origin and one from another origin, and each page calls
//! `fetch()` on the running service as a browser app would.

use std::time::Duration;

use axum::response::Html;
use serde_json::Value;

use crate::helpers::*;

/// Runs a script of tests/browser in node (which drives Chromium), bounded in time, and returns
/// the JSON it printed last.
async fn run_browser_script(script: &str, args: &[&str], limit: Duration) -> Value {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(repo_path("tests/browser/node_modules/playwright-core").exists(), "run scripts/test");
    assert!(std::path::Path::new(&chromium).exists(), "{chromium} is missing: run scripts/test");
    let run = tokio::process::Command::new("node")
        .arg(repo_path(&format!("tests/browser/{script}")))
        .args(args)
        .env("CHROMIUM", &chromium)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(limit, run).await.expect("the browser run finished in time").unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

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
    let (allowed, denied) = (serve_page().await, serve_page().await);
    let app = spawn_app_with(&[("TOKENMINT__CORS__ALLOWED_ORIGINS", allowed.as_str())]).await;
    let api = format!("http://{}", app.addr);
    let session = session_token("alice", &["user"]);

    let (allowed_page, denied_page) = (format!("{allowed}/"), format!("{denied}/"));
    let seen =
        run_browser_script("cors.mjs", &[&api, &allowed_page, &denied_page, &session], Duration::from_secs(90)).await;

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

/// Serves `clients/js` (the module and its example page) on a new loopback origin.
async fn serve_client() -> String {
    use axum::http::header::CONTENT_TYPE;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let module = std::fs::read_to_string(repo_path("clients/js/tokenmint.js")).unwrap();
    let example = std::fs::read_to_string(repo_path("clients/js/example.html")).unwrap();
    let site = axum::Router::new()
        .route("/", axum::routing::get(|| async { Html("<!doctype html><title>app</title>") }))
        .route(
            "/tokenmint.js",
            axum::routing::get(move || async move { ([(CONTENT_TYPE, "text/javascript")], module) }),
        )
        .route("/example.html", axum::routing::get(move || async move { Html(example) }));
    tokio::spawn(async move { axum::serve(listener, site).await });
    origin
}

#[tokio::test]
async fn the_browser_client_fetches_caches_refreshes_and_backs_off_in_chromium() {
    let origin = serve_client().await;
    // One token a second per identity, so the refresh scenario fits and a quick second ask gets a 429.
    let app = spawn_app_with(&[
        ("TOKENMINT__CORS__ALLOWED_ORIGINS", origin.as_str()),
        ("TOKENMINT__RATE_LIMIT__PER_IDENTITY__PER_MINUTE", "60"),
        ("TOKENMINT__RATE_LIMIT__PER_IDENTITY__BURST", "1"),
    ])
    .await;
    let api = format!("http://{}", app.addr);
    let sessions: Vec<String> =
        ["alice", "bob", "carol", "dan"].iter().map(|who| session_token(who, &["user"])).collect();
    let args: Vec<&str> =
        [api.as_str(), origin.as_str()].into_iter().chain(sessions.iter().map(String::as_str)).collect();
    let seen = run_browser_script("client.mjs", &args, Duration::from_secs(120)).await;
    eprintln!("{seen:#}");

    let first = &seen["firstFetchAndCache"];
    assert_eq!(first["token"], true, "{first}");
    assert_eq!(first["cached"], true, "{first}");
    assert_eq!(first["fetched"], 1, "four asks, one request: {first}");

    let refresh = &seen["refreshBeforeExpiry"];
    assert_eq!(refresh["tokens"], 3, "{refresh}");
    assert_eq!(refresh["distinct"], 3, "{refresh}");
    assert_eq!(refresh["beforeExpiry"], true, "every refresh came before the old token expired: {refresh}");
    assert_eq!(refresh["notEarly"], true, "{refresh}");
    let after = refresh["refreshAfterMs"].as_u64().unwrap();
    assert!((1400..=2400).contains(&after), "a 4 s token is refreshed 1.6-2 s in: {after} ms");

    let limited = &seen["backOffOn429"];
    assert_eq!(limited["refused"]["status"], 429, "{limited}");
    assert_eq!(limited["refused"]["retryable"], true);
    assert!(limited["refused"]["retryAfterMs"].as_u64().unwrap() >= 1000, "Retry-After is read: {limited}");
    assert_eq!(limited["errors"], serde_json::json!([429]), "{limited}");
    assert!(limited["tokenAfterMs"].as_u64().unwrap() >= 900, "it waited for Retry-After: {limited}");

    let unavailable = &seen["backOffOn503"];
    assert_eq!(unavailable["statuses"], serde_json::json!([503, 503]), "{unavailable}");
    assert_eq!(unavailable["got"], true);
    let gaps: Vec<u64> = unavailable["gapsMs"].as_array().unwrap().iter().map(|g| g.as_u64().unwrap()).collect();
    assert!(gaps.len() == 2 && gaps[0] >= 190 && gaps[1] >= 190, "backed off between attempts: {gaps:?}");

    assert!(seen["example"]["log"].as_str().unwrap().contains("token for alice"), "{}", seen["example"]);
}
