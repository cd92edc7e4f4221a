//! Faults around the process: its standard output closed or full. Logging must never stop the
//! service: a log collector that stalls or goes away costs log lines, not tokens. (The audit
//! trail goes to a file here; when it is the stalled stream, tests/api/audit.rs.)

use std::net::SocketAddr;

use serde_json::Value;

use crate::helpers::*;

/// The audit trail in a file of its own, so only log lines meet the stalled stdout.
fn audit_to_a_file(name: &str) -> Vec<(String, String)> {
    let path = sweep_dir().join(format!("faults-audit-{name}-{}.jsonl", std::process::id()));
    vec![
        ("TOKENMINT__AUDIT__SINK".into(), "file".into()),
        ("TOKENMINT__AUDIT__PATH".into(), path.display().to_string()),
    ]
}

/// `count` tokens (each writes its access line at debug level), all within 60 s.
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
#[tokio::test]
async fn a_closed_stdout_costs_log_lines_not_tokens() {
    let (child, addr, _, stdout) = start_with_stdout_pipe(&audit_to_a_file("closed"));
    drop(stdout);
    mint_many(addr, 2_000).await;
    child.stop().await;
}

#[tokio::test]
async fn a_full_stdout_costs_log_lines_not_tokens() {
    let (child, addr, admin, stdout) = start_with_stdout_pipe(&audit_to_a_file("full"));
    // Never read: the pipe's buffer (64 KiB) fills within the first few hundred requests, and
    // the writer's queue (16,384 lines, one a token at debug) some 16,000 requests later.
    mint_many(addr, 20_000).await;
    let metrics = reqwest::get(format!("http://{admin}/metrics")).await.unwrap().text().await.unwrap();
    assert!(metric_value(&metrics, "tokenmint_log_lines_dropped_total") > 0.0, "the dropped lines are counted");
    child.stop().await;
    let unread = std::io::read_to_string(stdout).unwrap();
    assert!(unread.lines().count() > 100, "some lines were written");
    assert!(unread.lines().all(|line| serde_json::from_str::<Value>(line).is_ok()), "no torn lines");
}
