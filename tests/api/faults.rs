//! Faults around the process: its standard output closed or full. Logging must never stop the
//! service: a log collector that stalls or goes away costs log lines, not tokens.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Stdio};

use serde_json::Value;

use crate::helpers::*;

/// Starts the binary at debug level with stdout a pipe, reads up to its "listening" line, and
/// hands back the pipe for the test to close or leave unread.
#[allow(clippy::zombie_processes, reason = "the caller gets the child and waits for it")]
fn start_with_stdout_pipe() -> (Child, SocketAddr, SocketAddr, BufReader<ChildStdout>) {
    let mut child = binary()
        .args(["serve", "--config", repo_path("config/test.toml").to_str().unwrap()])
        .envs(test_env())
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
            return (child, addr("public"), addr("admin"), stdout);
        }
    }
}

/// `count` tokens (each writes about three lines at debug level), all within 60 s.
async fn mint_many(addr: SocketAddr, count: usize) {
    let client = reqwest::Client::new();
    let session = session_token("alice", &["user"]);
    let minting = async {
        for _ in 0..count {
            let response = client
                .post(format!("http://{addr}/v1/tokens"))
                .bearer_auth(&session)
                .send()
                .await
                .expect("the server answers");
            assert_eq!(response.status(), 200);
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), minting).await.expect("every token within 60 s");
}

/// The process is still alive and stops cleanly on SIGTERM.
async fn stop(mut child: Child) {
    assert!(child.try_wait().unwrap().is_none(), "the server died");
    send_signal(child.id(), "TERM");
    let exited = tokio::task::spawn_blocking(move || child.wait().unwrap());
    let status = tokio::time::timeout(std::time::Duration::from_secs(20), exited).await.expect("exits").unwrap();
    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn a_closed_stdout_costs_log_lines_not_tokens() {
    let (child, addr, _, stdout) = start_with_stdout_pipe();
    drop(stdout);
    mint_many(addr, 2_000).await;
    stop(child).await;
}

#[tokio::test]
async fn a_full_stdout_costs_log_lines_not_tokens() {
    let (child, addr, admin, stdout) = start_with_stdout_pipe();
    // Never read: the pipe's buffer (64 KiB) fills within the first few hundred requests, and
    // the writer's queue (16,384 lines) a few thousand later.
    mint_many(addr, 8_000).await;
    let metrics = reqwest::get(format!("http://{admin}/metrics")).await.unwrap().text().await.unwrap();
    assert!(metric_value(&metrics, "tokenmint_log_lines_dropped_total") > 0.0, "the dropped lines are counted");
    stop(child).await;
    let unread = std::io::read_to_string(stdout).unwrap();
    assert!(unread.lines().count() > 100, "some lines were written");
    assert!(unread.lines().all(|line| serde_json::from_str::<Value>(line).is_ok()), "no torn lines");
}
