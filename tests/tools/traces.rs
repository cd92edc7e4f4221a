//! OpenTelemetry traces, exported by the real binary over OTLP/HTTP to a receiver that decodes
//! them with the official protobuf definitions (`tests/python/otlp_receiver.py`, PyPI
//! `opentelemetry-proto`): the caller's `traceparent` is the parent, the steps of a mint are
//! children of the request span, `sample_ratio` keeps a share of the traces tokenmint starts, a
//! collector that is down costs no token, and with `[trace]` off nothing is sent even when the
//! standard OTEL variables point at a collector.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jsonwebtoken::Algorithm;
use serde_json::Value;

use crate::helpers::jwks::*;
use crate::helpers::*;

/// The caller's trace and span, as a W3C `traceparent` carries them.
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// The receiver, its spans written to a file the leak sweep also reads.
struct Receiver {
    child: Child,
    endpoint: String,
    spans: PathBuf,
    /// While this file exists, the receiver answers every export with 503.
    fail_switch: PathBuf,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Receiver {
    fn start(name: &str) -> Self {
        let dir = sweep_dir().join(format!("otlp-{name}-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&dir).unwrap();
        let (spans, fail_switch) = (dir.join("spans.jsonl"), dir.join("failing"));
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(test_python())
            .arg(repo_path("tests/python/otlp_receiver.py"))
            .args([port.to_string().as_str(), fail_switch.to_str().unwrap()])
            .stdout(std::fs::File::create(&spans).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("the OTLP receiver starts");
        let receiver = Self { child, endpoint: format!("http://127.0.0.1:{port}/v1/traces"), spans, fail_switch };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !std::fs::read_to_string(&receiver.spans).unwrap_or_default().contains("listening") {
            assert!(Instant::now() < deadline, "the OTLP receiver did not start within 20 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        receiver
    }

    /// Every span received so far.
    fn spans(&self) -> Vec<Value> {
        let file = std::fs::File::open(&self.spans).unwrap();
        BufReader::new(file)
            .lines()
            .map_while(Result::ok)
            .filter_map(|line| serde_json::from_str::<Value>(&line).ok())
            .filter(|span| span.get("span_id").is_some())
            .collect()
    }

    /// Waits (bounded) until a span satisfies `found`.
    async fn wait_for(&self, what: &str, found: impl Fn(&Value) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.spans().iter().any(&found) {
            assert!(Instant::now() < deadline, "no {what} within 10 s; received: {:#?}", self.spans());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// `tokenmint serve` with the test configuration plus `extra`, and `env` beside the test's own.
fn start_server(name: &str, extra: &str, env: &[(&str, &str)]) -> RunningBinary {
    // Beside the sweep, not in it: the test configuration holds the test API keys by design.
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-config-{}-{}", std::process::id(), unique()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("tokenmint.toml");
    std::fs::write(&config, std::fs::read_to_string(repo_path("config/test.toml")).unwrap() + extra).unwrap();
    let mut command = binary();
    command.args(["serve", "--config", config.to_str().unwrap()]);
    let mut vars = test_env();
    vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    start_command(name, command, &vars)
}

async fn wait_ready(server: &RunningBinary) {
    let url = format!("http://{}/readyz", server.admin_addr);
    let deadline = Instant::now() + Duration::from_secs(10);
    while reqwest::get(&url).await.map(|r| r.status()).ok() != Some(reqwest::StatusCode::OK) {
        assert!(Instant::now() < deadline, "never ready: {}", server.output());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn mint(server: &RunningBinary, credential: &str, traceparent: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!("http://{}/v1/tokens", server.addr))
        .bearer_auth(credential)
        .header("content-type", "application/json")
        .body(r#"{"grants":{"video":{"room":"standup"}}}"#);
    if let Some(traceparent) = traceparent {
        request = request.header("traceparent", traceparent);
    }
    request.send().await.unwrap()
}

async fn metric(server: &RunningBinary, series: &str) -> f64 {
    let text = reqwest::get(format!("http://{}/metrics", server.admin_addr)).await.unwrap().text().await.unwrap();
    metric_value(&text, series)
}

fn named<'a>(spans: &'a [Value], name: &str) -> Vec<&'a Value> {
    spans.iter().filter(|span| span["name"] == name).collect()
}

#[tokio::test]
async fn a_callers_trace_holds_the_request_and_every_step_of_the_mint_as_its_children() {
    let receiver = Receiver::start("tree");
    let (old, new) = (rsa_a(), key("rsa-b.pem", Algorithm::RS256, "rsa-b"));
    let idp = JwksServer::start(&[&old]).await;
    let extra = provider_toml(&idp.base, "unknown_kid_refetch_secs = 1")
        + &format!("\n[trace]\nenabled = true\nendpoint = \"{}\"\n", receiver.endpoint);
    let server = start_server("traces", &extra, &[("OTEL_BSP_SCHEDULE_DELAY", "100")]);
    wait_ready(&server).await;

    // A key the server has not seen yet: the request itself fetches the key set again.
    idp.served.set(&[&old, &new]);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let traceparent = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let minted = mint(&server, &sign(&new, &claims(&idp.base, "alice")), Some(&traceparent)).await;
    assert_eq!(minted.status(), 200);
    // A caller that chose not to sample its trace: its decision stands.
    let unsampled = format!("00-{}-{CALLER_SPAN}-00", "a".repeat(32));
    assert_eq!(mint(&server, &sign(&old, &claims(&idp.base, "bob")), Some(&unsampled)).await.status(), 200);
    // Malformed parents are ignored: the request starts a trace of its own.
    for garbage in ["00-00000000000000000000000000000000-00f067aa0ba902b7-01", "not a traceparent", "00-zz-yy-01"] {
        assert_eq!(mint(&server, &sign(&old, &claims(&idp.base, "carol")), Some(garbage)).await.status(), 200);
    }
    receiver.wait_for("the caller's request span", |s| s["trace_id"] == CALLER_TRACE && s["kind"] == 2).await;
    receiver.wait_for("three traces of their own", |_| named(&receiver.spans(), "POST /v1/tokens").len() >= 4).await;
    assert!(metric(&server, "tokenmint_trace_spans_total{outcome=\"exported\"}").await >= 8.0);
    let output = server.stop();

    let spans = receiver.spans();
    let trace: Vec<Value> = spans.iter().filter(|s| s["trace_id"] == CALLER_TRACE).cloned().collect();
    let request = named(&trace, "POST /v1/tokens");
    assert_eq!(request.len(), 1, "one server span in the caller's trace: {trace:#?}");
    let request = request[0];
    assert_eq!(request["parent_span_id"], CALLER_SPAN, "the caller's span is the parent");
    assert_eq!(request["kind"], 2, "SPAN_KIND_SERVER");
    assert_eq!(request["service"], "tokenmint");
    assert_eq!(request["attributes"]["http.response.status_code"], 200);
    assert_eq!(request["attributes"]["route"], "/v1/tokens");
    assert_eq!(request["attributes"]["identity"], "alice");
    let children: Vec<&str> = trace
        .iter()
        .filter(|s| s["parent_span_id"] == request["span_id"])
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    for step in ["authenticate", "policy", "mint", "audit"] {
        assert_eq!(children.iter().filter(|name| **name == step).count(), 1, "{step} under the request: {children:?}");
    }
    let limits: Vec<&Value> = named(&trace, "rate_limit");
    let scopes: Vec<&str> = limits.iter().map(|s| s["attributes"]["scope"].as_str().unwrap()).collect();
    assert_eq!(scopes, ["ip", "identity"], "the client's limit, then the principal's");
    assert!(limits.iter().all(|s| s["parent_span_id"] == request["span_id"] && s["attributes"]["store"] == "memory"));
    let authenticate = named(&trace, "authenticate")[0];
    let fetch = named(&trace, "jwks_fetch");
    assert_eq!(fetch.len(), 1, "the unknown key's fetch, in the request's trace");
    assert_eq!(fetch[0]["parent_span_id"], authenticate["span_id"], "the key fetch is part of authentication");
    for span in &trace {
        let (start, end) = (span["start"].as_u64().unwrap(), span["end"].as_u64().unwrap());
        assert!(start <= end && start >= request["start"].as_u64().unwrap() && end <= request["end"].as_u64().unwrap());
    }

    assert!(
        spans.iter().all(|s| !s["trace_id"].as_str().unwrap().starts_with("aaaa")),
        "an unsampled trace is not sent"
    );
    let roots: Vec<&Value> =
        named(&spans, "POST /v1/tokens").into_iter().filter(|s| s["trace_id"] != CALLER_TRACE).collect();
    assert_eq!(roots.len(), 3, "each malformed parent starts a trace of its own");
    for root in roots {
        assert_eq!(root["parent_span_id"], "", "a root span: {root}");
        assert_ne!(root["trace_id"], "0".repeat(32));
    }

    // The log lines of the caller's request, and its audit record, name its trace.
    let audit = audit_records(&output, "token minted");
    let alice = audit.iter().find(|r| r["identity"] == "alice").expect("alice's audit record");
    assert_eq!(alice["trace_id"], CALLER_TRACE);
    let lines: Vec<Value> = output.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let answered = lines
        .iter()
        .find(|l| l["message"] == "answered" && l["span"]["trace_id"] == CALLER_TRACE)
        .expect("the access line of the caller's request names its trace");
    assert_eq!(answered["status"], 200);
}

#[tokio::test]
async fn a_collector_that_is_down_costs_no_token_and_is_counted_and_logged_once() {
    let receiver = Receiver::start("down");
    std::fs::write(&receiver.fail_switch, "").unwrap();
    let extra = format!("\n[trace]\nenabled = true\nendpoint = \"{}\"\n", receiver.endpoint);
    let server = start_server("traces-down", &extra, &[("OTEL_BSP_SCHEDULE_DELAY", "50")]);
    wait_ready(&server).await;
    let credential = session_token("dora", &["user"]);
    for round in 0..3 {
        for _ in 0..10 {
            assert_eq!(mint(&server, &credential, None).await.status(), 200, "round {round}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&server, "tokenmint_trace_spans_total{outcome=\"failed\"}").await < 30.0 {
        assert!(Instant::now() < deadline, "failed exports were not counted: {}", server.output());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(receiver.spans().is_empty());

    std::fs::remove_file(&receiver.fail_switch).unwrap();
    assert_eq!(mint(&server, &credential, None).await.status(), 200);
    receiver.wait_for("a span once the collector is back", |s| s["name"] == "POST /v1/tokens").await;
    let output = server.stop();
    let failures = output.matches("trace export failed").count();
    assert_eq!(failures, 1, "one line per outage, not one per batch: {output}");
    assert!(output.contains("trace export recovered"));
}

#[tokio::test]
async fn with_trace_off_nothing_is_sent_even_when_the_otel_variables_name_a_collector() {
    let receiver = Receiver::start("off");
    let collector = receiver.endpoint.trim_end_matches("/v1/traces").to_owned();
    let server = start_server(
        "traces-off",
        "",
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", &collector), ("OTEL_BSP_SCHEDULE_DELAY", "50")],
    );
    wait_ready(&server).await;
    let traceparent = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    assert_eq!(mint(&server, &session_token("olive", &["user"]), Some(&traceparent)).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let output = server.stop();
    assert!(receiver.spans().is_empty(), "spans were sent with [trace] off");
    let audit = audit_records(&output, "token minted");
    assert_eq!(audit.len(), 1);
    assert!(audit[0].get("trace_id").is_none(), "no trace id without traces: {}", audit[0]);
}

#[tokio::test]
async fn sample_ratio_keeps_a_share_of_the_traces_tokenmint_starts_and_a_callers_choice_stands() {
    let receiver = Receiver::start("ratio");
    let extra = format!("\n[trace]\nenabled = true\nendpoint = \"{}\"\nsample_ratio = 0.0\n", receiver.endpoint);
    let server = start_server("traces-ratio", &extra, &[("OTEL_BSP_SCHEDULE_DELAY", "50")]);
    wait_ready(&server).await;
    let credential = session_token("rita", &["user"]);
    for _ in 0..20 {
        assert_eq!(mint(&server, &credential, None).await.status(), 200);
    }
    let traceparent = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    assert_eq!(mint(&server, &credential, Some(&traceparent)).await.status(), 200);
    receiver.wait_for("the caller's sampled trace", |s| s["trace_id"] == CALLER_TRACE && s["kind"] == 2).await;
    server.stop();
    let spans = receiver.spans();
    assert!(spans.iter().all(|s| s["trace_id"] == CALLER_TRACE), "only the caller's trace: {spans:#?}");
    let names: Vec<&str> = spans.iter().map(|s| s["name"].as_str().unwrap()).collect();
    for step in ["POST /v1/tokens", "authenticate", "rate_limit", "policy", "mint", "audit"] {
        assert!(names.contains(&step), "{step} in the caller's trace: {names:?}");
    }
}
