//! The audit trail loses nothing: a token is handed out only once its record is written to the
//! sink, unless the operator chose best effort. Stalled sinks (a stdout pipe nobody reads, a
//! full disk) hold tokens back with 503; when the sink recovers, every token that was answered
//! has its record.

use std::io::Read;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// `count` requests, `concurrency` at a time: each token answered (its `jti`), and each refusal
/// with how long it took.
async fn mint(addr: SocketAddr, count: usize, concurrency: usize) -> (Vec<String>, Vec<(u16, Duration, String)>) {
    let client = reqwest::Client::new();
    let session = session_token("alice", &["user"]);
    let results = bounded_join(count, concurrency, |_| {
        let (client, session) = (client.clone(), session.clone());
        async move {
            let started = Instant::now();
            let response = client
                .post(format!("http://{addr}/v1/tokens"))
                .bearer_auth(&session)
                .timeout(Duration::from_secs(30))
                .send()
                .await
                .expect("answered");
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap();
            (status, started.elapsed(), body)
        }
    })
    .await;
    let mut tokens = Vec::new();
    let mut refusals = Vec::new();
    for (status, took, body) in results {
        if status == 200 {
            tokens.push(decode_token(body["token"].as_str().unwrap()).1["jti"].as_str().unwrap().to_owned());
        } else {
            refusals.push((status, took, body["detail"].as_str().unwrap_or_default().to_owned()));
        }
    }
    (tokens, refusals)
}

/// Runs `make(i)` for `i` in `0..count`, at most `concurrency` at once, in order of completion.
async fn bounded_join<F, Fut, T>(count: usize, concurrency: usize, make: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let semaphore = std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = Vec::new();
    for i in 0..count {
        let permit = semaphore.clone().acquire_owned().await.unwrap();
        let future = make(i);
        tasks.push(tokio::spawn(async move {
            let result = future.await;
            drop(permit);
            result
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

fn audited_jtis(text: &str) -> Vec<String> {
    audit_records(text, "token minted").iter().map(|l| l["jti"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn a_stalled_stdout_holds_tokens_back_and_every_token_answered_has_its_record() {
    // stdout, block (the default), a short wait for the test.
    let (child, addr, admin, mut stdout) =
        start_with_stdout_pipe(&env(&[("TOKENMINT__AUDIT__STALL_TIMEOUT_MS", "300")]));
    // Nobody reads: the pipe (64 KiB) fills with log and audit lines within a few hundred tokens.
    let (stalled_tokens, refusals) = mint(addr, 600, 16).await;
    assert!(!refusals.is_empty(), "a stalled sink holds tokens back");
    for (status, took, detail) in &refusals {
        assert_eq!(*status, 503);
        assert!(detail.contains("audit trail"), "{detail}");
        assert!(*took >= Duration::from_millis(250), "waited for the sink first: {took:?}");
    }
    // The collector comes back: everything waiting is written, and minting goes on.
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        stdout.read_to_string(&mut text).unwrap();
        text
    });
    let (recovered_tokens, refusals) = mint(addr, 100, 8).await;
    assert!(refusals.is_empty(), "{refusals:?}");
    let metrics = reqwest::get(format!("http://{admin}/metrics")).await.unwrap().text().await.unwrap();
    assert!(metric_value(&metrics, "tokenmint_audit_records_total{outcome=\"refused\"}") >= refusals.len() as f64);
    child.stop().await;
    let written = audited_jtis(&reader.join().unwrap());
    for jti in stalled_tokens.iter().chain(&recovered_tokens) {
        assert!(written.contains(jti), "the token {jti} was answered without its record");
    }
}

#[tokio::test]
async fn refuse_answers_at_once_and_best_effort_mints_on_counting_what_it_drops() {
    let refuse = env(&[
        ("TOKENMINT__AUDIT__ON_STALL", "refuse"),
        ("TOKENMINT__AUDIT__STALL_TIMEOUT_MS", "5000"),
        ("TOKENMINT__AUDIT__QUEUE_RECORDS", "8"),
    ]);
    let (child, addr, _, stdout) = start_with_stdout_pipe(&refuse);
    let (_, refusals) = mint(addr, 600, 16).await;
    assert!(
        refusals.iter().any(|(status, took, _)| *status == 503 && *took < Duration::from_secs(1)),
        "refused at once, not after the 5 s wait"
    );
    drop(stdout);
    child.stop().await;

    let (child, addr, admin, stdout) = start_with_stdout_pipe(&env(&[
        ("TOKENMINT__AUDIT__ON_STALL", "best_effort"),
        ("TOKENMINT__AUDIT__QUEUE_RECORDS", "64"),
    ]));
    let (tokens, refusals) = mint(addr, 3_000, 16).await;
    assert!(refusals.is_empty() && tokens.len() == 3_000, "best effort never holds a token back");
    let metrics = reqwest::get(format!("http://{admin}/metrics")).await.unwrap().text().await.unwrap();
    assert!(metric_value(&metrics, "tokenmint_audit_records_total{outcome=\"dropped\"}") > 0.0, "drops are counted");
    drop(stdout);
    child.stop().await;
}

#[tokio::test]
async fn a_full_disk_refuses_every_token_rather_than_mint_one_unrecorded() {
    let app = spawn_app_with(&[("TOKENMINT__AUDIT__PATH", "/dev/full")]).await;
    let response = app.post_token(Some(&session_token("alice", &["user"])), None).await;
    assert_eq!(response.headers()["retry-after"], "1");
    assert_problem(response, 503, "the audit trail could not be written, so no token was issued").await;
}

/// logrotate moves the file and sends SIGHUP; the next record starts a new file, and the two
/// files hold every token's record exactly once.
#[tokio::test]
async fn the_audit_file_reopens_on_sighup_for_logrotate() {
    let dir = std::env::temp_dir().join(format!("tokenmint-audit-rotate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("audit.jsonl");
    let mut vars = test_env();
    vars.extend(env(&[("TOKENMINT__AUDIT__SINK", "file"), ("TOKENMINT__AUDIT__PATH", path.to_str().unwrap())]));
    let running = start_binary("audit-rotate", &vars);
    let (before, _) = mint(running.addr, 5, 1).await;
    std::fs::rename(&path, dir.join("audit.jsonl.1")).unwrap();
    running.signal("HUP");
    running.wait_for_output("configuration reloaded").await;
    let (after, _) = mint(running.addr, 7, 1).await;
    let stdout = running.stop();
    assert!(audited_jtis(&stdout).is_empty(), "the records went to the file, not stdout");
    assert_eq!(audited_jtis(&std::fs::read_to_string(dir.join("audit.jsonl.1")).unwrap()), before);
    assert_eq!(audited_jtis(&std::fs::read_to_string(&path).unwrap()), after);
}
