//! The tower layers through the real server: rate limits, client IP from trusted proxies, load
//! shedding, the header-read timeout, CORS and metrics.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

fn header(response: &reqwest::Response, name: &str) -> String {
    response.headers().get_all(name).iter().map(|v| v.to_str().unwrap()).collect::<Vec<_>>().join(", ")
}

#[tokio::test]
async fn a_burst_then_429_with_retry_after_and_ratelimit_fields() {
    let app = spawn_app_with(&[
        ("TOKENMINT__RATE_LIMIT__PER_IP__BURST", "3"),
        ("TOKENMINT__RATE_LIMIT__PER_IP__PER_MINUTE", "1"),
    ])
    .await;
    let session = session_token("alice", &["user"]);
    for remaining in [2, 1, 0] {
        let response = app.post_token(Some(&session), None).await;
        assert_eq!(response.status(), 200);
        assert!(header(&response, "ratelimit-policy").contains("\"ip\";q=1;w=60"));
        assert!(
            header(&response, "ratelimit").contains(&format!("\"ip\";r={remaining};")),
            "{}",
            header(&response, "ratelimit")
        );
    }
    let limited = app.post_token(Some(&session), None).await;
    let retry_after: u64 = header(&limited, "retry-after").parse().unwrap();
    assert!((1..=60).contains(&retry_after));
    assert_eq!(header(&limited, "ratelimit-policy"), "\"ip\";q=1;w=60");
    assert_eq!(header(&limited, "ratelimit"), format!("\"ip\";r=0;t={retry_after}"));
    let problem = assert_problem(limited, 429, "retry after").await;
    assert_eq!(problem["type"], "urn:tokenmint:problem:rate-limited");
    assert_eq!(app.client.get(app.url("/livez")).send().await.unwrap().status(), 200, "probes are not limited");
}

#[tokio::test]
async fn the_per_identity_limit_is_separate_from_the_per_ip_one() {
    let app = spawn_app_with(&[
        ("TOKENMINT__RATE_LIMIT__PER_IDENTITY__BURST", "2"),
        ("TOKENMINT__RATE_LIMIT__PER_IDENTITY__PER_MINUTE", "1"),
    ])
    .await;
    let alice = session_token("alice", &["user"]);
    for _ in 0..2 {
        assert_eq!(app.post_token(Some(&alice), None).await.status(), 200);
    }
    let limited = app.post_token(Some(&alice), None).await;
    // Both quotas are reported: the exhausted identity one and the IP one that still had room.
    assert!(header(&limited, "ratelimit-policy").contains("\"identity\";q=1;w=60"));
    assert!(header(&limited, "ratelimit").contains("\"identity\";r=0;"));
    assert_problem(limited, 429, "retry after").await;
    assert_eq!(
        app.post_token(Some(&session_token("bob", &["user"])), None).await.status(),
        200,
        "bob has his own budget"
    );
}

#[tokio::test]
async fn roles_get_their_own_identity_quota() {
    let app = spawn_app_with(&[
        ("TOKENMINT__RATE_LIMIT__PER_IDENTITY__BURST", "1"),
        ("TOKENMINT__RATE_LIMIT__ROLES__BACKEND__BURST", "5"),
        ("TOKENMINT__RATE_LIMIT__ROLES__BACKEND__PER_MINUTE", "1"),
    ])
    .await;
    for _ in 0..5 {
        let response =
            app.post_token(Some(BACKEND_KEY), Some(json!({"identity": "bob", "grants": {"video": {}}}))).await;
        assert_eq!(response.status(), 200);
        assert!(header(&response, "ratelimit-policy").contains("\"identity:backend\";q=1;w=60"));
    }
    assert_eq!(app.post_token(Some(BACKEND_KEY), None).await.status(), 429);
}

#[tokio::test]
async fn bad_credentials_spend_the_ip_budget_before_any_verification() {
    let app = spawn_app_with(&[
        ("TOKENMINT__RATE_LIMIT__PER_IP__BURST", "3"),
        ("TOKENMINT__RATE_LIMIT__PER_IP__PER_MINUTE", "1"),
    ])
    .await;
    for _ in 0..3 {
        assert_eq!(app.post_token(Some("not-a-key"), None).await.status(), 401);
    }
    let response = app.post_token(Some(&session_token("alice", &["user"])), None).await;
    assert_eq!(response.status(), 429, "limited before the credential is even looked at");
}

#[tokio::test]
async fn forwarded_addresses_count_only_from_trusted_proxies() {
    let limits = [("TOKENMINT__RATE_LIMIT__PER_IP__BURST", "1"), ("TOKENMINT__RATE_LIMIT__PER_IP__PER_MINUTE", "1")];
    let session = session_token("alice", &["user"]);
    let post_from = |app: &TestApp, client: &'static str| {
        app.client.post(app.url("/v1/tokens")).bearer_auth(&session).header("x-forwarded-for", client).send()
    };

    let untrusted = spawn_app_with(&limits).await;
    assert_eq!(post_from(&untrusted, "198.51.100.1").await.unwrap().status(), 200);
    assert_eq!(
        post_from(&untrusted, "198.51.100.2").await.unwrap().status(),
        429,
        "a client cannot pick its own address"
    );

    let mut trusting_env = limits.to_vec();
    trusting_env.push(("TOKENMINT__SERVER__TRUSTED_PROXIES", "127.0.0.0/8,::1/128"));
    let behind_proxy = spawn_app_with(&trusting_env).await;
    assert_eq!(post_from(&behind_proxy, "198.51.100.1").await.unwrap().status(), 200);
    assert_eq!(post_from(&behind_proxy, "198.51.100.1").await.unwrap().status(), 429);
    assert_eq!(
        post_from(&behind_proxy, "198.51.100.2").await.unwrap().status(),
        200,
        "each client behind the proxy has its own budget"
    );
}

/// Opens a token request whose body never finishes, holding one unit of concurrency.
async fn hold_a_request(app: &TestApp) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /v1/tokens HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{{",
        session_token("alice", &["user"])
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

#[tokio::test]
async fn beyond_the_concurrency_limit_requests_are_shed_at_once_with_503() {
    let app = spawn_app_with(&[("TOKENMINT__SERVER__MAX_CONCURRENT_REQUESTS", "1")]).await;
    let mut held = hold_a_request(&app).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let shed = loop {
        let started = Instant::now();
        let response = app.client.get(app.url("/livez")).send().await.unwrap();
        if response.status() == 503 {
            assert!(started.elapsed() < Duration::from_secs(1), "shed at once, not queued");
            break response;
        }
        assert!(Instant::now() < deadline, "never shed");
    };
    assert_eq!(header(&shed, "retry-after"), "1");
    assert_problem(shed, 503, "at capacity").await;

    held.write_all(b"}").await.unwrap();
    let mut response = String::new();
    held.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "the held request completes: {response}");
    assert_eq!(app.client.get(app.url("/livez")).send().await.unwrap().status(), 200, "capacity is back");
    let metrics = app.client.get(app.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metric_value(&metrics, "tokenmint_requests_shed_total") >= 1.0);
}

#[tokio::test]
async fn a_request_past_the_request_timeout_is_answered_503_and_its_capacity_freed() {
    let app = spawn_app_with(&[
        ("TOKENMINT__SERVER__REQUEST_TIMEOUT_MS", "300"),
        ("TOKENMINT__SERVER__MAX_CONCURRENT_REQUESTS", "1"),
    ])
    .await;
    let started = Instant::now();
    let mut held = hold_a_request(&app).await;
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(5), held.read_to_string(&mut response))
        .await
        .expect("answered, not left hanging")
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(250), "not before the timeout");
    assert!(response.starts_with("HTTP/1.1 503"), "{response}");
    assert!(response.contains("took too long") && response.contains("retry-after: 1"), "{response}");
    assert_eq!(app.client.get(app.url("/livez")).send().await.unwrap().status(), 200, "capacity is back");
}

#[tokio::test]
async fn a_client_that_trickles_its_headers_is_cut_off_while_others_are_served() {
    let app = spawn_app_with(&[("TOKENMINT__SERVER__HEADER_READ_TIMEOUT_MS", "300")]).await;
    let mut slow = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(b"GET /livez HTTP/1.1\r\nHost: t\r\n").await.unwrap();
    let started = Instant::now();
    assert_eq!(app.client.get(app.url("/livez")).send().await.unwrap().status(), 200, "others are served meanwhile");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the connection was closed by the server");
    assert!(started.elapsed() >= Duration::from_millis(250), "not before the timeout");
    assert!(!String::from_utf8_lossy(&rest).contains("200 OK"));
}

#[tokio::test]
async fn cors_grants_the_allowed_origin_only() {
    let app = spawn_app().await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/v1/tokens"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization,content-type")
            .send()
    };
    let allowed = preflight("http://allowed.test").await.unwrap();
    assert_eq!(header(&allowed, "access-control-allow-origin"), "http://allowed.test");
    let allowed_headers = header(&allowed, "access-control-allow-headers").to_lowercase();
    assert!(allowed_headers.contains("authorization") && allowed_headers.contains("content-type"));
    assert_eq!(header(&allowed, "access-control-max-age"), "600");
    let other = preflight("http://evil.test").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());

    let response = app
        .client
        .post(app.url("/v1/tokens"))
        .header("origin", "http://allowed.test")
        .bearer_auth(session_token("alice", &["user"]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "access-control-allow-origin"), "http://allowed.test");
    assert!(header(&response, "access-control-expose-headers").to_lowercase().contains("ratelimit"));
    assert!(header(&response, "vary").to_lowercase().contains("origin"));
}

#[tokio::test]
async fn metrics_move_as_requests_flow_and_labels_stay_bounded() {
    let app = spawn_app().await;
    let session = session_token("alice", &["user"]);
    app.mint_ok(&session, Some(json!({"grants": {"video": {"room": "standup"}, "voice": {}}}))).await;
    app.mint_ok(&session, None).await;
    assert_eq!(app.post_token(Some("bogus-key"), None).await.status(), 401);
    for i in 0..200 {
        let path = format!("/random/{i}/{}", "x".repeat(i % 7));
        assert_eq!(app.client.get(app.url(&path)).send().await.unwrap().status(), 404);
    }
    assert_eq!(
        app.client
            .request(reqwest::Method::from_bytes(b"BREW").unwrap(), app.url("/v1/tokens"))
            .send()
            .await
            .unwrap()
            .status(),
        405
    );

    let response = app.client.get(app.admin_url("/metrics")).send().await.unwrap();
    assert!(header(&response, "content-type").starts_with("text/plain; version=0.0.4"));
    let text = response.text().await.unwrap();
    assert_eq!(
        metric_value(&text, r#"tokenmint_http_requests_total{method="POST",route="/v1/tokens",status="200"}"#),
        2.0
    );
    assert_eq!(
        metric_value(&text, r#"tokenmint_http_requests_total{method="GET",route="unmatched",status="404"}"#),
        200.0
    );
    assert_eq!(
        metric_value(&text, r#"tokenmint_http_requests_total{method="other",route="/v1/tokens",status="405"}"#),
        1.0
    );
    assert_eq!(metric_value(&text, r#"tokenmint_tokens_issued_total{grant="video"}"#), 2.0);
    assert_eq!(metric_value(&text, r#"tokenmint_tokens_issued_total{grant="voice"}"#), 1.0);
    assert_eq!(metric_value(&text, r#"tokenmint_tokens_issued_total{grant="chat"}"#), 1.0);
    assert_eq!(metric_value(&text, r#"tokenmint_auth_failures_total{reason="unknown_api_key"}"#), 1.0);
    assert_eq!(metric_value(&text, r#"tokenmint_rate_limited_total{scope="ip"}"#), 0.0);
    assert_eq!(metric_value(&text, r#"tokenmint_token_mint_duration_seconds_count"#), 2.0);
    assert_eq!(metric_value(&text, r#"tokenmint_build_info{version="0.1.0"}"#), 1.0);
    assert!(metric_value(&text, "process_resident_memory_bytes") > 0.0);
    assert!(
        metric_value(
            &text,
            r#"tokenmint_http_request_duration_seconds_count{method="POST",route="/v1/tokens",status="200"}"#
        ) == 2.0
    );
    let request_series = text.lines().filter(|l| l.starts_with("tokenmint_http_requests_total{")).count();
    assert!(request_series <= 5, "the label set stays bounded under random paths: {request_series} series");
    assert!(!text.contains("/random/"));

    assert_eq!(
        app.client.get(app.url("/metrics")).send().await.unwrap().status(),
        404,
        "metrics are not on the public listener"
    );
}

#[tokio::test]
async fn two_hundred_clients_trickling_headers_are_all_cut_while_tokens_are_still_minted() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app_with(&[("TOKENMINT__SERVER__HEADER_READ_TIMEOUT_MS", "1000")]).await;
    let started = Instant::now();
    // Each sends a request head one byte every 100 ms: it would take 4 s to finish.
    let trickling: Vec<_> = (0..200)
        .map(|_| {
            let addr = app.addr;
            tokio::spawn(async move {
                let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                let head = b"POST /v1/tokens HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\r\n";
                for byte in head {
                    if stream.write_all(&[*byte]).await.is_err() {
                        return Some(started.elapsed());
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                None
            })
        })
        .collect();
    // Meanwhile real clients mint, and stay fast.
    let session = session_token("alice", &["user"]);
    let mut slowest = Duration::ZERO;
    while started.elapsed() < Duration::from_millis(1500) {
        let sent = Instant::now();
        assert_eq!(app.post_token(Some(&session), None).await.status(), 200);
        slowest = slowest.max(sent.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(slowest < Duration::from_millis(500), "a real request took {slowest:?} beside the slow clients");
    for client in trickling {
        let cut_after = client.await.unwrap().expect("the server cut the connection before the head was complete");
        assert!(cut_after >= Duration::from_millis(900) && cut_after < Duration::from_secs(4), "{cut_after:?}");
    }
}

#[tokio::test]
async fn beyond_the_connection_limit_a_connection_gets_503_at_once_until_slow_clients_are_cut() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app_with(&[
        ("TOKENMINT__SERVER__MAX_CONNECTIONS", "4"),
        ("TOKENMINT__SERVER__HEADER_READ_TIMEOUT_MS", "1000"),
    ])
    .await;
    // Four clients that send half a request head and stall hold every slot.
    let mut stalled = Vec::new();
    for _ in 0..4 {
        let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        stream.write_all(b"GET /livez HTTP/1.1\r\n").await.unwrap();
        stalled.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let refused = app.client.get(app.url("/livez")).send().await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(500), "refused at once");
    assert_eq!(header(&refused, "connection"), "close");
    assert_eq!(header(&refused, "retry-after"), "1");
    assert_problem(refused, 503, "too many open connections").await;
    // The admin listener has slots of its own.
    let metrics = app.client.get(app.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metric_value(&metrics, "tokenmint_connections_refused_total{limit=\"listener\"}") >= 1.0);
    assert!(metric_value(&metrics, "tokenmint_open_connections") >= 4.0);
    // The header-read timeout cuts the stalled clients, and their slots serve again.
    for mut stream in stalled {
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut rest)).await.expect("cut").unwrap();
    }
    let session = session_token("alice", &["user"]);
    assert_eq!(app.post_token(Some(&session), None).await.status(), 200);
}

/// The README's advice to load balancers rests on this: hyper's header-read timer also runs while
/// a keep-alive connection waits for its next request.
#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_read_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app_with(&[("TOKENMINT__SERVER__HEADER_READ_TIMEOUT_MS", "300")]).await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(b"GET /livez HTTP/1.1\r\nHost: t\r\n\r\n").await.unwrap();
    let mut answer = [0; 1024];
    let n = stream.read(&mut answer).await.unwrap();
    assert!(answer[..n].starts_with(b"HTTP/1.1 200"));
    let idle = Instant::now();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await.expect("closed").unwrap();
    assert!(idle.elapsed() >= Duration::from_millis(250), "closed after {:?}", idle.elapsed());
}
