//! `spawn_app` and friends: the real application in-process on 127.0.0.1:0, and the client
//! calls the tests make of it.

use std::net::SocketAddr;

use serde_json::Value;
use tokenmint::config::Settings;
use tokenmint::env::EnvVars;
use tokenmint::startup::{Application, Runtime};

use super::sweep::log_in_process_to_sweep;
use super::{keep_for_sweep, repo_path, sweep_dir, test_env};

pub struct TestApp {
    pub health: std::sync::Arc<tokenmint::app::Health>,
    metrics: tokenmint::metrics::Metrics,
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub client: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Spawns the app with `TOKENMINT__…` overrides (or other variables) added to the environment.
pub async fn spawn_app_with(extra_env: &[(&str, &str)]) -> TestApp {
    spawn_app_configured("", extra_env, true).await
}

/// Spawns the app with TOML appended to `config/test.toml` (for tables, such as providers, that
/// variables cannot express), optionally without waiting for readiness.
pub async fn spawn_app_configured(extra_toml: &str, extra_env: &[(&str, &str)], wait_ready: bool) -> TestApp {
    let mut config = std::fs::read_to_string(repo_path("config/test.toml")).unwrap();
    config.push_str(extra_toml);
    spawn_app_from_config(&config, extra_env, wait_ready).await
}

/// Spawns the app with a whole configuration file's text.
pub async fn spawn_app_from_config(config: &str, extra_env: &[(&str, &str)], wait_ready: bool) -> TestApp {
    let mut vars = test_env();
    // The audit trail into the sweep directory (an in-process app's stdout is the test
    // runner's), unless the test chooses another sink.
    let audit = sweep_dir().join(format!("in-process-audit-{}-{}.jsonl", std::process::id(), unique()));
    vars.push(("TOKENMINT__AUDIT__SINK".into(), "file".into()));
    vars.push(("TOKENMINT__AUDIT__PATH".into(), audit.display().to_string()));
    vars.extend(extra_env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let env: EnvVars = vars.into_iter().collect();
    let file = std::env::temp_dir().join(format!("tokenmint-test-{}-{}.toml", std::process::id(), unique()));
    std::fs::write(&file, config).unwrap();
    let settings = Settings::load(Some(&file), false, &env).expect("test settings load");
    log_in_process_to_sweep();
    let runtime = Runtime::assemble(settings, &env, false).expect("test runtime assembles");
    let app = Application::build(runtime).await.expect("binds");
    let (addr, admin_addr, health) = (app.public_addr(), app.admin_addr(), app.state().health.clone());
    let metrics = app.state().metrics.clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    let test_app = TestApp {
        health,
        metrics,
        addr,
        admin_addr,
        client: reqwest::Client::new(),
        shutdown: Some(tx),
        server: Some(server),
    };
    if wait_ready {
        test_app.wait_ready().await;
    }
    test_app
}

/// Where everything the suite's servers write is kept for the leak sweep
/// (`leaks::the_whole_suite_wrote_no_secret_and_no_token`, run by scripts/test after the suite):
/// in-process logs, each binary's output, every problem body and every app's final metrics.
impl Drop for TestApp {
    fn drop(&mut self) {
        keep_for_sweep("metrics.txt", &self.metrics.render());
    }
}

/// A number not handed out before in this test process.
pub fn unique() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin_addr)
    }

    /// GETs a URL and parses its JSON body.
    pub async fn get_json(&self, url: &str) -> Value {
        self.client.get(url).send().await.unwrap().json().await.unwrap()
    }

    /// Polls /readyz instead of sleeping.
    pub async fn wait_ready(&self) {
        for _ in 0..200 {
            if let Ok(response) = self.client.get(self.admin_url("/readyz")).send().await
                && response.status() == 200
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the service never became ready");
    }

    /// POST /v1/tokens with an optional bearer credential and a JSON body (None: empty body).
    pub async fn post_token(&self, credential: Option<&str>, body: Option<Value>) -> reqwest::Response {
        post_token(&self.client, self.addr, credential, body).await
    }

    /// Asks for a token and returns the 200 response body, failing the test otherwise.
    pub async fn mint_ok(&self, credential: &str, body: Option<Value>) -> Value {
        let response = self.post_token(Some(credential), body).await;
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, 200, "{text}");
        serde_json::from_str(&text).unwrap()
    }

    /// Begins graceful shutdown without waiting for it.
    pub fn begin_shutdown(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }

    /// Begins graceful shutdown and waits for the server to finish.
    pub async fn stop(mut self) {
        self.begin_shutdown();
        self.server.take().unwrap().await.unwrap().unwrap();
    }
}

/// A form-encoded body of `pairs`.
pub fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

/// POST /oauth2/token with a form-encoded `body` (see [`form`]).
pub async fn exchange(app: &TestApp, body: String) -> reqwest::Response {
    app.client
        .post(app.url("/oauth2/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
}

/// Asserts a problem+json response with `status` whose detail contains `detail`.
pub async fn assert_problem(response: reqwest::Response, status: u16, detail: &str) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let problem: Value = response.json().await.expect("problem body is JSON");
    keep_for_sweep("problems.jsonl", &problem.to_string());
    assert_eq!(problem["status"], status);
    assert!(problem["type"].as_str().unwrap().starts_with("urn:tokenmint:problem:"));
    assert!(problem["title"].is_string());
    let shown = problem["detail"].as_str().unwrap();
    assert!(shown.contains(detail), "detail {shown:?} should contain {detail:?}");
    problem
}

/// POST /v1/tokens at `addr` (an in-process app's or a binary's) with an optional bearer
/// credential and a JSON body (None: an empty body).
pub async fn post_token(
    client: &reqwest::Client,
    addr: SocketAddr,
    credential: Option<&str>,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = client.post(format!("http://{addr}/v1/tokens"));
    if let Some(credential) = credential {
        request = request.bearer_auth(credential);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("request sent")
}
