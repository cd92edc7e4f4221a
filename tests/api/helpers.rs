//! `spawn_app` and friends: the real application on 127.0.0.1:0, and independent token checks.

use std::net::SocketAddr;
use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokenmint::config::Settings;
use tokenmint::env::EnvVars;
use tokenmint::startup::{Application, Runtime};

pub const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const KEY_SID: &str = "SKfedcba9876543210fedcba9876543210";
pub const API_SECRET: &str = "test-api-secret-never-logged-7f3a";
pub const SESSION_SECRET: &str = "test-session-secret-never-logged-0123456789";
pub const SESSION_ISSUER: &str = "https://app.test";
pub const SESSION_AUDIENCE: &str = "tokenmint-test";
pub const BACKEND_KEY: &str = "tmk_test_backend_0123456789abcdef";
pub const KIOSK_KEY: &str = "tmk_test_kiosk_0123456789abcdef";
pub const APP_SID: &str = "AP11111111111111111111111111111111";
pub const CHAT_SID: &str = "IS33333333333333333333333333333333";

pub fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// The environment the test service runs with.
pub fn test_env() -> Vec<(String, String)> {
    [
        ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
        ("TWILIO_API_KEY", KEY_SID),
        ("TWILIO_API_SECRET", API_SECRET),
        ("TEST_SESSION_SECRET", SESSION_SECRET),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

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
pub fn sweep_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("leak-sweep");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Appends `text` to the sweep file `name`.
pub fn keep_for_sweep(name: &str, text: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(sweep_dir().join(name)).unwrap();
    writeln!(file, "{text}").unwrap();
}

/// Installs tokenmint's own subscriber for the in-process apps, at debug level for tokenmint and
/// its HTTP layers, writing JSON lines into the sweep directory.
fn log_in_process_to_sweep() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(sweep_dir().join(format!("in-process-{}.log", std::process::id())))
            .unwrap();
        let log = tokenmint::telemetry::LogSettings {
            format: tokenmint::telemetry::LogFormat::Json,
            filter: "info,tokenmint=debug,tower_http=debug".into(),
        };
        tokenmint::telemetry::install(&log, std::sync::Mutex::new(file)).expect("the test subscriber installs");
    });
}

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
        let mut request = self.client.post(self.url("/v1/tokens"));
        if let Some(credential) = credential {
            request = request.bearer_auth(credential);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("request sent")
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

/// An app-session JWT for `identity`, signed like an app backend would (HS256, test secret).
pub fn session_token(identity: &str, roles: &[&str]) -> String {
    let now = now();
    sign_hs256(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &json!({"iss": SESSION_ISSUER, "aud": SESSION_AUDIENCE, "sub": identity, "roles": roles, "iat": now, "exp": now + 300}),
        SESSION_SECRET,
    )
}

pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// Builds and signs a JWT by hand (so tests can also build malformed ones).
pub fn sign_hs256(header: &Value, claims: &Value, secret: &str) -> String {
    let message =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(message.as_bytes());
    format!("{message}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

/// Verifies an HS256 token's signature with a plain HMAC (not the library that minted it) and
/// returns its decoded header and payload.
pub fn verify_token(token: &str, secret: &str) -> (Value, Value) {
    let (message, signature) = token.rsplit_once('.').expect("three parts");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(message.as_bytes());
    mac.verify_slice(&URL_SAFE_NO_PAD.decode(signature).expect("base64url signature")).expect("signature verifies");
    decode_token(token)
}

pub fn decode_token(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut part =
        || -> Value { serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap()).unwrap() };
    (part(), part())
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

/// The `tokenmint` executable, run as a user or container would.
pub fn binary() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tokenmint"));
    command.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).stdin(std::process::Stdio::null());
    command
}

/// Runs the binary to completion and returns (success, stdout, stderr).
pub fn run_binary(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let output = binary().args(args).envs(env.iter().copied()).output().expect("binary runs");
    // `mint` prints a token on stdout: that is its job. Everything else is swept.
    if args.first() != Some(&"mint") {
        keep_for_sweep("commands.txt", &String::from_utf8_lossy(&output.stdout));
    }
    keep_for_sweep("commands.txt", &String::from_utf8_lossy(&output.stderr));
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into(),
        String::from_utf8_lossy(&output.stderr).into(),
    )
}

/// Sends `signal` (`TERM`, `HUP`, …) to process `pid` with kill(1).
pub fn send_signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status().unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

/// A running `tokenmint serve`, its output captured in files.
pub struct RunningBinary {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
}

/// Starts `tokenmint serve --config config/test.toml` with `env` (and nothing else) and waits
/// for its "listening" log line to learn the ports.
pub fn start_binary(name: &str, env: &[(String, String)]) -> RunningBinary {
    let mut command = binary();
    command.args(["serve", "--config", repo_path("config/test.toml").to_str().unwrap()]);
    start_command(name, command, env)
}

/// Starts a prepared `tokenmint serve` command and waits for its "listening" log line.
pub fn start_command(name: &str, mut command: std::process::Command, env: &[(String, String)]) -> RunningBinary {
    let dir = sweep_dir().join(format!("{name}-{}-{}", std::process::id(), unique()));
    std::fs::create_dir_all(&dir).unwrap();
    let (stdout_path, stderr_path) = (dir.join("stdout.log"), dir.join("stderr.log"));
    let mut child = command
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .expect("binary starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let log = std::fs::read_to_string(&stdout_path).unwrap_or_default();
        if let Some(line) =
            log.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).find(|l| l["message"] == "listening")
        {
            let addr = |key: &str| line[key].as_str().unwrap().parse().unwrap();
            return RunningBinary { addr: addr("public"), admin_addr: addr("admin"), child, stdout_path, stderr_path };
        }
        if std::time::Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("never listened; stderr: {}", std::fs::read_to_string(&stderr_path).unwrap_or_default());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

impl RunningBinary {
    pub fn signal(&self, signal: &str) {
        send_signal(self.child.id(), signal);
    }

    /// Sends SIGTERM and waits (bounded) for a clean exit; returns everything it printed.
    pub fn stop(mut self) -> String {
        self.signal("TERM");
        let status = self.wait_exit(std::time::Duration::from_secs(15));
        assert!(status.success(), "exit status {status}");
        self.output()
    }

    /// Waits for the process to exit, killing it and failing the test after `limit`.
    pub fn wait_exit(&mut self, limit: std::time::Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("did not exit within {limit:?}");
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Everything it has printed so far, stdout then stderr.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.stdout_path).unwrap() + &std::fs::read_to_string(&self.stderr_path).unwrap()
    }

    /// Waits (bounded) until its output contains `text`.
    pub async fn wait_for_output(&self, text: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !self.output().contains(text) {
            assert!(std::time::Instant::now() < deadline, "no {text:?} in the output within 5 s");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

/// One request of a [`Load`]: when it was sent, and the token or what went wrong.
pub struct LoadResult {
    pub sent: std::time::Instant,
    pub outcome: Result<String, String>,
}

/// A bounded load on `POST /v1/tokens`: `connections` clients asking for tokens back to back,
/// each with its own connection, until stopped (or 30 s, or 20,000 requests each, whichever
/// comes first).
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    clients: Vec<tokio::task::JoinHandle<Vec<LoadResult>>>,
}

impl Load {
    pub fn start(addr: SocketAddr, connections: usize) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let clients = (0..connections)
            .map(|i| {
                let stop = stop.clone();
                let credential = session_token(&format!("load-{i}"), &["user"]);
                tokio::spawn(async move {
                    let client = reqwest::Client::builder().pool_max_idle_per_host(1).build().unwrap();
                    let started = std::time::Instant::now();
                    let mut results = Vec::new();
                    while !stop.load(std::sync::atomic::Ordering::Relaxed)
                        && started.elapsed() < std::time::Duration::from_secs(30)
                        && results.len() < 20_000
                    {
                        let sent = std::time::Instant::now();
                        let outcome = mint_once(&client, addr, &credential).await;
                        results.push(LoadResult { sent, outcome });
                    }
                    results
                })
            })
            .collect();
        Self { stop, clients }
    }

    /// Stops every client and returns every result.
    pub async fn finish(self) -> Vec<LoadResult> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut all = Vec::new();
        for client in self.clients {
            all.extend(client.await.unwrap());
        }
        all
    }
}

async fn mint_once(client: &reqwest::Client, addr: SocketAddr, credential: &str) -> Result<String, String> {
    let response = client
        .post(format!("http://{addr}/v1/tokens"))
        .bearer_auth(credential)
        .send()
        .await
        .map_err(|e| format!("transport: {e:?}"))?;
    let status = response.status();
    let body: Value = response.json().await.map_err(|e| format!("body: {e:?}"))?;
    match body["token"].as_str() {
        Some(token) if status == 200 => Ok(token.to_owned()),
        _ => Err(format!("{status}: {body}")),
    }
}

impl Drop for RunningBinary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of the first sample of `series` (a name with optional labels) in `text`.
pub fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|line| line.starts_with(series) && line[series.len()..].starts_with([' ', '{']))
        .and_then(|line| line.rsplit(' ').next())
        .unwrap_or_else(|| panic!("{series} not in metrics"))
        .parse()
        .unwrap()
}

/// A client whose connections come from `local` (127.0.0.2 is a second loopback address).
pub fn client_from(local: &str) -> reqwest::Client {
    reqwest::Client::builder().local_address(local.parse::<std::net::IpAddr>().unwrap()).build().unwrap()
}
