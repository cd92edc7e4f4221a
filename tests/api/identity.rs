//! Identities nobody can spoof: not through another issuer, an unverified e-mail, an ambiguous
//! template, or characters that forge a log line.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

/// A newline or an ESC in an identity (a session's `sub`, or a name a backend sends) gets no
/// token for any grant.
#[tokio::test]
async fn identities_with_control_characters_get_no_token_for_any_grant() {
    let app = spawn_app().await;
    for grants in [json!({"chat": {}}), json!({"video": {"room": "standup"}}), json!({"sync": {}})] {
        let forged = session_token("eve\n{\"message\":\"token minted\"}", &["user"]);
        let response = app.post_token(Some(&forged), Some(json!({"grants": grants}))).await;
        assert_problem(response, 403, "control character").await;
        let named =
            app.post_token(Some(BACKEND_KEY), Some(json!({"identity": "bob\u{1b}[31m", "grants": grants}))).await;
        assert_problem(named, 400, "control character").await;
    }
    let bidi = session_token("\u{202E}nimda", &["user"]);
    assert_problem(app.post_token(Some(&bidi), None).await, 403, "control character").await;
}

/// The `pretty` log format once wrote field values as they were: a newline in a credential's
/// `sub` (the audit line's `subject`, when the identity comes from another claim) began a line
/// of the attacker's choosing, and an ESC reached the operator's terminal.
#[test]
fn pretty_logs_carry_no_forged_line_and_no_escape_sequence() {
    let config = std::fs::read_to_string(repo_path("config/test.toml")).unwrap().replacen(
        "secret_env = \"TEST_SESSION_SECRET\"",
        "secret_env = \"TEST_SESSION_SECRET\"\nidentity_claim = \"name\"",
        1,
    );
    let config_path = std::env::temp_dir().join(format!("tokenmint-pretty-{}.toml", std::process::id()));
    std::fs::write(&config_path, config).unwrap();
    let dir = sweep_dir().join(format!("pretty-{}-{}", std::process::id(), unique()));
    std::fs::create_dir_all(&dir).unwrap();
    let stdout_path = dir.join("stdout.log");
    let mut env = test_env();
    env.push(("TOKENMINT__LOG__FORMAT".into(), "pretty".into()));
    env.push(("TOKENMINT__LOG__FILTER".into(), "debug".into()));
    let mut child = binary()
        .args(["serve", "--config", config_path.to_str().unwrap()])
        .env_clear()
        .envs(env)
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let addr = loop {
        let log = std::fs::read_to_string(&stdout_path).unwrap_or_default();
        if let Some(addr) = log.split("public=").nth(1).and_then(|rest| rest.split_whitespace().next()) {
            break addr.to_owned();
        }
        assert!(std::time::Instant::now() < deadline, "never listened: {log}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let forged_line = "2026-12-01T00:00:00.000000Z  INFO audit: token minted identity=\"admin\"";
    let now = now();
    let forged = sign_hs256(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &json!({"iss": SESSION_ISSUER, "aud": SESSION_AUDIENCE, "name": "eve", "roles": ["user"],
                "sub": format!("eve\n{forged_line}\u{1b}[2J"), "iat": now, "exp": now + 300}),
        SESSION_SECRET,
    );
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let status = runtime.block_on(async {
        reqwest::Client::new()
            .post(format!("http://{addr}/v1/tokens"))
            .bearer_auth(&forged)
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 200);
    std::thread::sleep(Duration::from_millis(300));
    send_signal(child.id(), "TERM");
    let _ = child.wait();
    let log = std::fs::read_to_string(&stdout_path).unwrap();
    assert!(log.contains("eve\\n2026-12-01"), "the identity is in the log, escaped: {log}");
    assert!(!log.lines().any(|line| line.starts_with("2026-12-01T00:00:00")), "a forged line: {log}");
    assert!(!log.contains('\u{1b}'), "an escape sequence reached the log");
}
