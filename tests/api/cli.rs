//! The command line, run as the real binary with only the environment it is given.

use crate::helpers::*;

fn creds() -> Vec<(&'static str, &'static str)> {
    vec![
        ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
        ("TWILIO_API_KEY", KEY_SID),
        ("TWILIO_API_SECRET", API_SECRET),
        ("TEST_SESSION_SECRET", SESSION_SECRET),
    ]
}

fn test_config() -> String {
    repo_path("config/test.toml").to_str().unwrap().to_owned()
}

#[test]
fn start_up_refuses_an_account_sid_as_the_api_key_in_one_sentence() {
    let mut env = creds();
    env[1] = ("TWILIO_API_KEY", ACCOUNT_SID);
    let (ok, _, stderr) = run_binary(&["serve", "--config", &test_config()], &env);
    assert!(!ok);
    assert!(stderr.starts_with("tokenmint: TWILIO_API_KEY holds an Account SID"), "{stderr}");
    assert!(stderr.contains("revoked"), "says why production uses API keys: {stderr}");
    assert!(!stderr.contains(API_SECRET));
}

#[test]
fn start_up_refuses_an_auth_token_without_an_api_key() {
    let env = [
        ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
        ("TWILIO_AUTH_TOKEN", "0123456789abcdef0123456789abcdef"),
        ("TEST_SESSION_SECRET", SESSION_SECRET),
    ];
    let (ok, _, stderr) = run_binary(&["serve", "--config", &test_config()], &env);
    assert!(!ok);
    assert!(stderr.contains("TWILIO_AUTH_TOKEN is set but TWILIO_API_KEY is not"), "{stderr}");
    assert!(!stderr.contains("0123456789abcdef0123456789abcdef"));
}

#[test]
fn start_up_names_a_missing_variable() {
    let env: Vec<_> = creds().into_iter().filter(|(k, _)| *k != "TWILIO_API_SECRET").collect();
    let (ok, _, stderr) = run_binary(&["serve", "--config", &test_config()], &env);
    assert!(!ok);
    assert!(stderr.contains("TWILIO_API_SECRET is not set: set it (or TWILIO_API_SECRET_FILE)"), "{stderr}");
}

#[test]
fn credentials_may_come_from_files() {
    let dir = std::env::temp_dir().join(format!("tokenmint-cli-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("secret"), format!("{API_SECRET}\n")).unwrap();
    let secret_file = dir.join("secret").to_str().unwrap().to_owned();
    let env = [
        ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
        ("TWILIO_API_KEY", KEY_SID),
        ("TWILIO_API_SECRET_FILE", secret_file.as_str()),
        ("TEST_SESSION_SECRET", SESSION_SECRET),
    ];
    let (ok, token, stderr) =
        run_binary(&["mint", "--config", &test_config(), "--identity", "alice", "--role", "user"], &env);
    assert!(ok, "{stderr}");
    verify_token(token.trim(), API_SECRET);
}

#[test]
fn check_config_reports_every_problem_at_once_without_secrets() {
    let dir = std::env::temp_dir().join(format!("tokenmint-cli-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let broken = dir.join("broken.toml");
    std::fs::write(
        &broken,
        r#"
        [token]
        region = "Not A Region"
        [[auth.sessions]]
        issuer = "https://app.test"
        audiences = ["a"]
        secret_env = "SHORT_SECRET"
        [[auth.api_keys]]
        name = "k"
        sha256 = "abc"
        [[policy.rules]]
        name = "r"
        roles = ["user"]
        video = { rooms = ["team-*"] }
        chat = { service_sid = "IS1" }
        "#,
    )
    .unwrap();
    let env = [
        ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
        ("TWILIO_API_KEY", "SK123"),
        ("TWILIO_API_SECRET", API_SECRET),
        ("SHORT_SECRET", "short-secret-value"),
    ];
    let (ok, stdout, stderr) = run_binary(&["check-config", "--config", broken.to_str().unwrap()], &env);
    assert!(!ok, "exit non-zero");
    for expected in [
        "token.region",
        "TWILIO_API_KEY is not an API key SID",
        "SHORT_SECRET is shorter than 32 bytes",
        "sha256 must be 64 hex digits",
        "video.default_room",
        "chat.service_sid",
    ] {
        assert!(stderr.contains(expected), "{expected} in {stderr}");
    }
    let output = stdout + &stderr;
    assert!(!output.contains(API_SECRET) && !output.contains("short-secret-value"));
}

#[test]
fn check_config_accepts_a_good_configuration_and_names_an_unknown_key() {
    let (ok, stdout, stderr) = run_binary(&["check-config", "--config", &test_config()], &creds());
    assert!(ok, "{stderr}");
    assert!(stdout.contains(KEY_SID) && !stdout.contains(API_SECRET), "{stdout}");
    let mut env = creds();
    env.push(("TOKENMINT__POLICY__RULEZ", "x"));
    let (ok, _, stderr) = run_binary(&["check-config", "--config", &test_config()], &env);
    assert!(!ok);
    assert!(stderr.contains("rulez"), "{stderr}");
}

/// Configs written in other languages: once, a non-ASCII room pattern made check-config (and
/// serve) exit 101 with a panic.
#[test]
fn check_config_and_mint_accept_unicode_anywhere_in_the_config() {
    let config = std::fs::read_to_string(test_config()).unwrap().replacen(
        "rooms = [\"standup\", \"user-{identity}\", \"team-*\"], default_room = \"user-{identity}\"",
        "rooms = [\"équipe-*\", \"会議-{identity}\", \"über-{identity}\"], default_room = \"über-{identity}\"",
        1,
    );
    assert!(config.contains("équipe"));
    let file = std::env::temp_dir().join(format!("tokenmint-unicode-{}.toml", std::process::id()));
    std::fs::write(&file, config).unwrap();
    let (ok, stdout, stderr) = run_binary(&["check-config", "--config", file.to_str().unwrap()], &creds());
    assert!(ok, "{stdout}{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let (ok, token, stderr) =
        run_binary(&["mint", "--config", file.to_str().unwrap(), "--role", "user", "--identity", "zoë"], &creds());
    assert!(ok, "{stderr}");
    assert_eq!(verify_token(token.trim(), API_SECRET).1["grants"]["video"]["room"], "über-zoë");
}

/// A value that cannot be read once hid every other problem, and the message said it came from
/// the file when a variable had set it. Now every problem is listed, each with its source.
#[test]
fn check_config_lists_unreadable_values_with_their_source_and_everything_else() {
    let config = std::fs::read_to_string(test_config())
        .unwrap()
        .replacen("max_ttl_secs = 3600", "max_ttl_secs = 90000", 1)
        .replacen(
            "allowed_origins = [\"http://allowed.test\"]",
            "allowed_origins = [\"http://allowed.test\"]\nmax_age_secs = \"ten\"",
            1,
        );
    let config = config.replacen("drain_delay_ms = 0", "drain_delay_ms = 0\nmax_connections = -1", 1);
    let file = std::env::temp_dir().join(format!("tokenmint-unreadable-{}.toml", std::process::id()));
    std::fs::write(&file, config).unwrap();
    let env = [("TEST_SESSION_SECRET", SESSION_SECRET), ("TOKENMINT__SERVER__LISTEN", "not-an-address")];
    let (ok, _, stderr) = run_binary(&["check-config", "--config", file.to_str().unwrap()], &env);
    assert!(!ok);
    let file_name = file.display().to_string();
    for expected in [
        "server.listen: invalid socket address syntax (set by TOKENMINT__SERVER__LISTEN)".to_owned(),
        format!("(in {file_name})"),
        "server.max_connections".to_owned(),
        "cors.max_age_secs".to_owned(),
        "max_ttl_secs must be from 1 to 86400".to_owned(),
        "TWILIO_API_KEY is not set".to_owned(),
        "TWILIO_ACCOUNT_SID is not set".to_owned(),
        "TWILIO_API_SECRET is not set".to_owned(),
    ] {
        assert!(stderr.contains(&expected), "{expected}: {stderr}");
    }
    let listen = stderr.lines().find(|l| l.contains("server.listen")).unwrap();
    assert!(!listen.contains(&file_name), "the variable set it, not the file: {listen}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Time settings have sane ranges: 0 where 0 would spin or never expire, and values so large
/// they mean "forever", are refused in one run, each with its key, range and unit.
#[test]
fn time_settings_out_of_range_are_refused_together() {
    let config = std::fs::read_to_string(test_config()).unwrap()
        + "\n[[auth.providers]]\nissuer = \"https://idp.example\"\naudiences = [\"app\"]\njwks = '{\"keys\": []}'\nidentity_namespace = \"test-users\"\nunknown_kid_refetch_secs = 0\nleeway_secs = 31536000\n";
    let file = std::env::temp_dir().join(format!("tokenmint-bounds-{}.toml", std::process::id()));
    std::fs::write(&file, config).unwrap();
    let mut env = creds();
    env.push(("TOKENMINT__SERVER__REQUEST_TIMEOUT_MS", "86400000"));
    env.push(("TOKENMINT__RATE_LIMIT__EVICTION_INTERVAL_SECS", "0"));
    let (ok, _, stderr) = run_binary(&["check-config", "--config", file.to_str().unwrap()], &env);
    assert!(!ok);
    for expected in [
        "unknown_kid_refetch_secs = 0 is out of range: use 1 to 3600 seconds",
        "leeway_secs = 31536000 is out of range: use 0 to 300 seconds",
        "server.request_timeout_ms = 86400000 is out of range",
        "rate_limit.eviction_interval_secs = 0 is out of range",
    ] {
        assert!(stderr.contains(expected), "{expected}: {stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn dev_mode_refuses_a_non_loopback_address() {
    let (ok, _, stderr) = run_binary(&["serve", "--dev"], &[("TOKENMINT__SERVER__LISTEN", "0.0.0.0:0")]);
    assert!(!ok);
    assert!(stderr.contains("--dev refuses server.listen = 0.0.0.0:0"), "{stderr}");
}

#[test]
fn mint_then_decode_verifies_and_says_when_it_expires() {
    let (ok, token, stderr) = run_binary(
        &[
            "mint",
            "--config",
            &test_config(),
            "--identity",
            "alice",
            "--role",
            "user",
            "--ttl",
            "600",
            "--grants",
            r#"{"video":{"room":"standup"}}"#,
        ],
        &creds(),
    );
    assert!(ok, "{stderr}");
    let token = token.trim();
    let (_, payload) = verify_token(token, API_SECRET);
    assert_eq!(payload["grants"]["video"]["room"], "standup");
    // The same issuer as the routes: the token has its audit line (on stderr), never the token.
    let audit = stderr
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|line| line["target"] == "audit" && line["message"] == "token minted")
        .unwrap_or_else(|| panic!("no audit line: {stderr}"));
    assert_eq!(audit["jti"], payload["jti"]);
    assert_eq!(audit["identity"], "alice");
    assert!(!stderr.contains(token));

    let (ok, shown, _) = run_binary(&["decode", token], &[("TWILIO_API_SECRET", API_SECRET)]);
    assert!(ok);
    assert!(
        shown.contains("\"cty\": \"twilio-fpa;v=1\"")
            && shown.contains("expires ")
            && (shown.contains("(in 10m)") || shown.contains("(in 9m")),
        "{shown}"
    );
    assert!(shown.contains("signature: valid"));

    let (ok, shown, _) = run_binary(&["decode", token], &[]);
    assert!(ok && shown.contains("signature: not checked"), "{shown}");

    let (ok, _, stderr) = run_binary(&["decode", token], &[("TWILIO_API_SECRET", "wrong-secret")]);
    assert!(!ok && stderr.contains("signature: INVALID"), "{stderr}");
}

#[test]
fn mint_refuses_what_the_policy_refuses() {
    let (ok, token, stderr) = run_binary(
        &["mint", "--config", &test_config(), "--identity", "alice", "--role", "user", "--ttl", "7200"],
        &creds(),
    );
    assert!(!ok && token.is_empty());
    assert!(stderr.contains("refused: ttl 7200 exceeds the cap"), "{stderr}");
}

#[test]
fn decode_reports_an_expired_official_token_and_garbage() {
    let official = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImN0eSI6InR3aWxpby1mcGE7dj0xIn0.eyJqdGkiOiJTS2ZlZGNiYTk4NzY1NDMyMTBmZWRjYmE5ODc2NTQzMjEwLTE3MDAwMDAwMDAiLCJncmFudHMiOnsiaWRlbnRpdHkiOiJhbGljZSIsInZvaWNlIjp7Im91dGdvaW5nIjp7ImFwcGxpY2F0aW9uX3NpZCI6IkFQMTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTEifX19LCJpYXQiOjE3MDAwMDAwMDAsImV4cCI6MTcwMDAwMzYwMCwiaXNzIjoiU0tmZWRjYmE5ODc2NTQzMjEwZmVkY2JhOTg3NjU0MzIxMCIsInN1YiI6IkFDMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWYifQ.F5HGSgWe3YjpupugFuho7uxiwipIH8hDeFYXBeN96Sw";
    let (ok, shown, _) =
        run_binary(&["decode", official], &[("TWILIO_API_SECRET", "fake-secret-not-a-real-twilio-0k")]);
    assert!(ok, "{shown}");
    assert!(shown.contains("EXPIRED 2023-11-14T23:13:20Z") && shown.contains("signature: valid"), "{shown}");
    let (ok, _, stderr) = run_binary(&["decode", "garbage"], &[]);
    assert!(!ok && stderr.contains("not a JWT"), "{stderr}");
}

#[test]
fn healthcheck_passes_against_a_running_service_and_fails_without_one() {
    let env: Vec<(String, String)> = test_env();
    let running = start_binary("healthcheck", &env);
    let admin = running.admin_addr.to_string();
    let (ok, _, stderr) = run_binary(&["healthcheck", "--addr", &admin], &[]);
    assert!(ok, "{stderr}");
    running.stop();
    let (ok, _, stderr) = run_binary(&["healthcheck", "--addr", &admin], &[]);
    assert!(!ok && stderr.contains("cannot reach"), "{stderr}");
}

/// What the repository ships or tells users to copy starts as it is, once the variables are set.
#[test]
fn the_shipped_settings_and_the_example_pass_check_config() {
    let twilio = [("TWILIO_ACCOUNT_SID", ACCOUNT_SID), ("TWILIO_API_KEY", KEY_SID), ("TWILIO_API_SECRET", API_SECRET)];
    let kubernetes = [&twilio[..], &[("APP_SESSION_SECRET", SESSION_SECRET)]].concat();
    let compose = [&twilio[..], &[("TOKENMINT_REDIS_URL", "redis://redis:6379/0")]].concat();
    let example = kubernetes.clone();
    for (file, env) in [
        ("deploy/kubernetes/base/tokenmint.toml", kubernetes),
        ("deploy/compose/tokenmint.toml", compose),
        ("config/tokenmint.example.toml", example),
    ] {
        let (ok, stdout, stderr) = run_binary(&["check-config", "--config", repo_path(file).to_str().unwrap()], &env);
        assert!(ok, "{file}: {stdout}{stderr}");
    }
}

#[test]
fn help_lists_the_environment_and_an_example_per_command_and_completions_and_a_man_page_are_printed() {
    let (ok, stdout, _) = run_binary(&["--help"], &[]);
    assert!(ok && stdout.contains("Environment:") && stdout.contains("TWILIO_API_SECRET"), "{stdout}");
    assert!(stdout.contains("TOKENMINT__<SECTION>__<KEY>"), "{stdout}");
    for command in ["serve", "mint", "decode", "check-config", "healthcheck", "completions", "man"] {
        let (ok, stdout, stderr) = run_binary(&[command, "--help"], &[]);
        assert!(ok && stdout.contains("Example:"), "{command}: {stdout}{stderr}");
    }
    for shell in ["bash", "zsh", "fish"] {
        let (ok, stdout, stderr) = run_binary(&["completions", shell], &[]);
        assert!(ok && stdout.contains("check-config") && stdout.contains("config"), "{shell}: {stderr}");
    }
    let (ok, stdout, stderr) = run_binary(&["man"], &[]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains(".TH tokenmint") && stdout.contains("TWILIO_API_KEY") && stdout.contains("check\\-config"),
        "man page"
    );
}

/// `serve --dev` serves the browser example on its own origin (no CORS to set, no second
/// server), links to it with the dev session, and `decode` says what a placeholder signature is.
#[tokio::test]
async fn dev_mode_serves_the_browser_example_and_decode_explains_a_placeholder_signature() {
    let env: Vec<(String, String)> = [
        ("TOKENMINT__SERVER__LISTEN", "127.0.0.1:0"),
        ("TOKENMINT__SERVER__ADMIN_LISTEN", "127.0.0.1:0"),
        ("TOKENMINT__LOG__FORMAT", "json"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut command = binary();
    command.args(["serve", "--dev"]);
    let running = start_command("dev-example", command, &env);
    let client = reqwest::Client::new();
    let page = client.get(format!("http://{}/dev/", running.addr)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let page = page.text().await.unwrap();
    assert!(page.contains("import { TokenClient } from \"./tokenmint.js\"") && page.contains("location.origin"));
    let script = client.get(format!("http://{}/dev/tokenmint.js", running.addr)).send().await.unwrap();
    assert!(script.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
    assert!(script.text().await.unwrap().contains("export class TokenClient"));

    // The banner's link carries a working session.
    running.wait_for_output("/dev/#credential=").await;
    let banner = std::fs::read_to_string(&running.stderr_path).unwrap();
    let session = banner.split("/dev/#credential=").nth(1).unwrap().split_whitespace().next().unwrap().to_owned();
    let minted: serde_json::Value = post_token(&client, running.addr, Some(&session), None).await.json().await.unwrap();
    assert_eq!(minted["identity"], "dev_user");
    let (ok, stdout, _) = run_binary(&["decode", minted["token"].as_str().unwrap()], &[]);
    assert!(ok && stdout.contains("signed by `serve --dev` with its PLACEHOLDER key"), "{stdout}");
    let stderr_path = running.stderr_path.clone();
    running.stop();
    // The banner prints the dev session by design; the leak sweep reads everything else.
    let swept = std::fs::read_to_string(&stderr_path).unwrap().replace(&session, "[the dev session]");
    std::fs::write(&stderr_path, swept).unwrap();

    // Outside dev mode there is no such page.
    let app = spawn_app().await;
    assert_eq!(app.client.get(app.url("/dev/")).send().await.unwrap().status(), 404);
}
