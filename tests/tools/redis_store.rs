//! The shared rate-limit store against a real `redis-server` on a free loopback port: replicas
//! enforce one combined limit, and when Redis dies the configured mode holds and recovery
//! follows when it returns.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::*;

/// A `redis-server` child process on a loopback port, stopped on drop.
struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut server = Self { port, child: None };
        server.restart();
        server
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Starts (again) on the same port and waits until it answers PING.
    fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (scripts/test installs Debian's redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers() {
            assert!(Instant::now() < deadline, "redis-server did not answer within 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn answers(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else { return false };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok() && stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn shared_limit_env(redis: &RedisServer, on_error: &str) -> Vec<(String, String)> {
    [
        ("TOKENMINT__RATE_LIMIT__STORE", "redis"),
        ("TOKENMINT_REDIS_URL", redis.url().as_str()),
        ("TOKENMINT__RATE_LIMIT__REDIS__ON_ERROR", on_error),
        ("TOKENMINT__RATE_LIMIT__PER_IDENTITY__BURST", "3"),
        ("TOKENMINT__RATE_LIMIT__PER_IDENTITY__PER_MINUTE", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

async fn spawn_sharing(redis: &RedisServer, on_error: &str) -> TestApp {
    let env = shared_limit_env(redis, on_error);
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    spawn_app_with(&pairs).await
}

async fn ready_store(app: &TestApp) -> (u16, Value) {
    let response = app.client.get(app.admin_url("/readyz")).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn two_server_processes_enforce_one_combined_limit() {
    let redis = RedisServer::start();
    let mut env = test_env();
    env.extend(shared_limit_env(&redis, "fail_open"));
    env.push(("TOKENMINT__RATE_LIMIT__PER_IDENTITY__BURST".into(), "5".into()));
    let (first, second) = (start_binary("redis-a", &env), start_binary("redis-b", &env));
    let client = reqwest::Client::new();
    let session = session_token("alice", &["user"]);
    let mut allowed = 0;
    for i in 0..12 {
        let addr = if i % 2 == 0 { first.addr } else { second.addr };
        let response = client.post(format!("http://{addr}/v1/tokens")).bearer_auth(&session).send().await.unwrap();
        match response.status().as_u16() {
            200 => allowed += 1,
            429 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(allowed, 5, "N allowed in all, not 2N");
    first.stop();
    second.stop();
}

#[tokio::test]
async fn failing_open_keeps_serving_from_memory_and_recovers() {
    let mut redis = RedisServer::start();
    let app = spawn_sharing(&redis, "fail_open").await;
    let session = session_token("alice", &["user"]);
    for _ in 0..3 {
        assert_eq!(app.post_token(Some(&session), None).await.status(), 200);
    }
    assert_eq!(app.post_token(Some(&session), None).await.status(), 429, "the shared count applies");
    assert_eq!(ready_store(&app).await.1["rate_limit_store"], "redis");

    redis.kill();
    let served = app.post_token(Some(&session), None).await;
    assert_eq!(served.status(), 200, "failing open: the in-memory limiter takes over");
    let (status, ready) = ready_store(&app).await;
    assert_eq!(status, 200);
    assert_eq!(ready["rate_limit_store"], "redis unreachable, failing open to memory");
    let statuses: Vec<u16> = statuses_of(&app, &session, 4).await;
    assert_eq!(statuses, [200, 200, 429, 429], "the in-memory limit still holds");
    let metrics = app.client.get(app.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("tokenmint_ratelimit_store_up 0"), "{metrics}");
    assert!(!metrics.contains("tokenmint_ratelimit_store_errors_total 0"));

    redis.restart();
    wait_for_store(&app, 200, "redis").await;
    let response = app.post_token(Some(&session_token("bob", &["user"])), None).await;
    assert_eq!(response.status(), 200);
    let fields = response
        .headers()
        .get_all("ratelimit")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join(",");
    assert!(fields.contains("\"identity\";r=2;"), "counted in the restarted Redis again: {fields}");
}

#[tokio::test]
async fn failing_closed_refuses_with_503_and_recovers() {
    let mut redis = RedisServer::start();
    let app = spawn_sharing(&redis, "fail_closed").await;
    let session = session_token("alice", &["user"]);
    assert_eq!(app.post_token(Some(&session), None).await.status(), 200);

    redis.kill();
    let refused = app.post_token(Some(&session), None).await;
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_problem(refused, 503, "rate-limit store is unreachable").await;
    wait_for_store(&app, 503, "").await;
    assert_eq!(app.client.get(app.admin_url("/livez")).send().await.unwrap().status(), 200, "alive, not ready");

    redis.restart();
    wait_for_store(&app, 200, "redis").await;
    assert_eq!(app.post_token(Some(&session), None).await.status(), 200);
}

/// Polls /readyz (bounded) until it answers `status` (and, when given, this store label).
async fn wait_for_store(app: &TestApp, status: u16, store: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (seen, body) = ready_store(app).await;
        if seen == status && (store.is_empty() || body["rate_limit_store"] == store) {
            return;
        }
        assert!(Instant::now() < deadline, "readiness never became {status} {store}: {seen} {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn statuses_of(app: &TestApp, session: &str, count: usize) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..count {
        statuses.push(app.post_token(Some(session), None).await.status().as_u16());
    }
    statuses
}
