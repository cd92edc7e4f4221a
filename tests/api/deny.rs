//! The issuance kill switch: identities and subjects on `[policy.deny]` get 403 at once, counted
//! in the metrics and written to the audit trail; adding one to the config file takes effect
//! without a restart.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn denied_identities_and_subjects_get_403_counted_and_audited_and_the_list_reloads() {
    let config = std::env::temp_dir().join(format!("tokenmint-deny-{}.toml", std::process::id()));
    let base = std::fs::read_to_string(repo_path("config/test.toml")).unwrap();
    std::fs::write(&config, format!("{base}\n[policy.deny]\nidentities = [\"mallory\"]\n")).unwrap();
    let mut command = binary();
    command.args(["serve", "--config", config.to_str().unwrap()]);
    let running = start_command("deny", command, &test_env());
    let client = reqwest::Client::new();
    let mint = |credential: String, body: Value| {
        client.post(format!("http://{}/v1/tokens", running.addr)).bearer_auth(credential).json(&body).send()
    };

    assert_eq!(mint(session_token("alice", &["user"]), json!({})).await.unwrap().status(), 200);
    let refused = mint(session_token("mallory", &["user"]), json!({})).await.unwrap();
    assert_problem(refused, 403, "tokens for this identity are blocked").await;
    // A backend may not mint for a denied identity either.
    let refused = mint(BACKEND_KEY.into(), json!({"identity": "mallory", "grants": {"video": {}}})).await.unwrap();
    assert_problem(refused, 403, "tokens for this identity are blocked").await;

    // The operator blocks alice's session subject and the kiosk key: no restart, no signal.
    std::fs::write(
        &config,
        format!("{base}\n[policy.deny]\nidentities = [\"mallory\"]\nsubjects = [\"alice\", \"kiosk\"]\n"),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let response = mint(session_token("alice", &["user"]), json!({})).await.unwrap();
        if response.status() == 403 {
            assert_problem(response, 403, "this caller is blocked").await;
            break;
        }
        assert!(Instant::now() < deadline, "the new deny list was not in force within 1 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(mint(KIOSK_KEY.into(), json!({"grants": {"video": {}}})).await.unwrap().status(), 403);
    assert_eq!(mint(session_token("bob", &["user"]), json!({})).await.unwrap().status(), 200);

    let metrics = client.get(format!("http://{}/metrics", running.admin_addr)).send().await.unwrap().text().await;
    let metrics = metrics.unwrap();
    let count = |list: &str| -> f64 {
        let series = format!("tokenmint_denied_total{{list=\"{list}\"}}");
        metrics.lines().find_map(|l| l.strip_prefix(&series)?.trim().parse().ok()).unwrap()
    };
    assert_eq!(count("identity"), 2.0);
    assert!(count("subject") >= 2.0);

    let output = running.stop();
    let refusals = audit_records(&output, "token refused: deny list");
    assert!(refusals.iter().any(|l| l["identity"] == "mallory" && l["deny_list"] == "identity"));
    assert!(refusals.iter().any(|l| l["subject"] == "kiosk" && l["deny_list"] == "subject"));
    assert!(refusals.iter().all(|l| !l["request_id"].as_str().unwrap_or("").is_empty()));
}
