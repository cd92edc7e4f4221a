//! Schema-driven API fuzzing: schemathesis (PyPI, in `.venv`) reads the running server's
//! `/openapi.json` and sends what it generates from it, positive and negative, with the backend
//! API key. Every check is on (settings in `tests/schemathesis.toml`): no 5xx, every status,
//! content type (problem+json for refusals), header and body as documented, schema-valid data
//! accepted and schema-violating data refused, and no answer without authentication.

use crate::helpers::*;

/// Test cases per operation and phase; the whole run is about 900 cases, in about 20 s.
const MAX_EXAMPLES: &str = "300";

#[tokio::test]
async fn schemathesis_finds_no_failure_against_the_openapi_document() {
    let schemathesis = repo_path(".venv/bin/schemathesis");
    assert!(schemathesis.exists(), "{} does not exist: run scripts/test, which installs it", schemathesis.display());
    let app = spawn_app().await;
    let run = tokio::process::Command::new(schemathesis)
        .current_dir(repo_path(""))
        .env("PYTHONPATH", repo_path("tests/python"))
        .env("TOKENMINT_SUBJECT_TOKEN", session_token("alice", &["user"]))
        .env("NO_COLOR", "1")
        .args(["--config-file", "tests/schemathesis.toml", "run", &app.url("/openapi.json")])
        .args(["--header", &format!("Authorization: Bearer {BACKEND_KEY}")])
        .args(["--checks", "all", "--max-examples", MAX_EXAMPLES, "--workers", "2"])
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(300), run)
        .await
        .expect("schemathesis finishes within 300 s")
        .expect("schemathesis starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary = stdout.lines().skip_while(|line| !line.contains("Test cases:")).nth(1).unwrap_or("").trim();
    println!("schemathesis: {summary}");
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let (generated, passed) = summary.split_once(" generated, ").expect("a summary line");
    assert!(passed.starts_with(&format!("{generated} passed")), "{summary}");
    assert!(generated.parse::<u32>().unwrap() >= 300, "schemathesis generated too few cases: {summary}");
}
