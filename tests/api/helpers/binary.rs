//! The `tokenmint` executable, run as a user or a container would, and a bounded load on it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Stdio};

use serde_json::Value;

use super::{keep_for_sweep, repo_path, session_token, sweep_dir, test_env, unique};

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

/// Starts the binary at debug level with stdout a pipe, reads up to its "listening" line, and
/// hands back the pipe for the test to close, leave unread, or read later. `extra_env` is added
/// to the test environment.
#[allow(clippy::zombie_processes, reason = "the caller gets the child and waits for it")]
pub fn start_with_stdout_pipe(
    extra_env: &[(String, String)],
) -> (ServerChild, SocketAddr, SocketAddr, BufReader<ChildStdout>) {
    let mut child = binary()
        .args(["serve", "--config", repo_path("config/test.toml").to_str().unwrap()])
        .envs(test_env())
        .envs(extra_env.iter().cloned())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("binary starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        if stdout.read_line(&mut line).unwrap() == 0 {
            let _ = child.kill();
            let _ = child.wait();
            panic!("stdout ended before listening");
        }
        if let Ok(event) = serde_json::from_str::<Value>(&line)
            && event["message"] == "listening"
        {
            let addr = |key: &str| event[key].as_str().unwrap().parse().unwrap();
            return (ServerChild(Some(child)), addr("public"), addr("admin"), stdout);
        }
    }
}

/// A server started by [`start_with_stdout_pipe`]: stopped by [`ServerChild::stop`], or killed
/// when dropped, so a failed assertion leaves no server running.
pub struct ServerChild(Option<Child>);

impl ServerChild {
    /// SIGTERM, then a clean exit within 20 s.
    pub async fn stop(mut self) {
        let mut child = self.0.take().expect("stopped once");
        assert!(child.try_wait().unwrap().is_none(), "the server died");
        send_signal(child.id(), "TERM");
        let exited = tokio::task::spawn_blocking(move || child.wait().unwrap());
        let status = tokio::time::timeout(std::time::Duration::from_secs(20), exited).await.expect("exits").unwrap();
        assert!(status.success(), "exit status {status}");
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The audit records in `output` (a binary's stdout, or an audit file) with `message`, such as
/// `token minted` or `token refused: deny list`.
pub fn audit_records(output: &str, message: &str) -> Vec<Value> {
    output
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["target"] == "audit" && l["message"] == message)
        .collect()
}

/// `tokenmint check-config` over `config/test.toml` with `extra` appended, with the test
/// environment and `extra_env`: whether it passed, its stdout and its stderr.
pub fn check_config_with(extra: &str, extra_env: &[(&str, &str)]) -> (bool, String, String) {
    let config = std::env::temp_dir().join(format!("tokenmint-check-{}-{}.toml", std::process::id(), unique()));
    std::fs::write(&config, std::fs::read_to_string(repo_path("config/test.toml")).unwrap() + extra).unwrap();
    let env = test_env();
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env.extend_from_slice(extra_env);
    run_binary(&["check-config", "--config", config.to_str().unwrap()], &env)
}
