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
    // Killed when dropped, so a failing assertion never leaves the server running.
    struct Server(std::process::Child);
    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut server = Server(
        binary()
            .args(["serve", "--config", config_path.to_str().unwrap()])
            .env_clear()
            .envs(env)
            .stdout(std::fs::File::create(&stdout_path).unwrap())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
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
    send_signal(server.0.id(), "TERM");
    let _ = server.0.wait();
    let log = std::fs::read_to_string(&stdout_path).unwrap();
    assert!(log.contains("eve\\n2026-12-01"), "the identity is in the log, escaped: {log}");
    assert!(!log.lines().any(|line| line.starts_with("2026-12-01T00:00:00")), "a forged line: {log}");
    assert!(!log.contains('\u{1b}'), "an escape sequence reached the log");
}

const IDP: &str = "https://idp.identity.test";
const IDP_AUDIENCE: &str = "tokenmint-identity-test";

/// A provider whose key is the test fixture `rsa-a`, given inline; `extra` adds keys.
fn provider(extra: &str) -> String {
    let pem = std::fs::read_to_string(repo_path("tests/fixtures/keys/rsa-a.pub.pem")).unwrap();
    format!(
        "\n[[auth.providers]]\nissuer = \"{IDP}\"\naudiences = [\"{IDP_AUDIENCE}\"]\npublic_key_pem = '''\n{pem}'''\ndefault_roles = [\"user\"]\n{extra}\n"
    )
}

/// An ID token from that provider.
fn id_token(claims: serde_json::Value) -> String {
    let pem = std::fs::read(repo_path("tests/fixtures/keys/rsa-a.pem")).unwrap();
    let now = now();
    let mut all = json!({"iss": IDP, "aud": IDP_AUDIENCE, "iat": now, "exp": now + 300});
    all.as_object_mut().unwrap().extend(claims.as_object().unwrap().clone());
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &all,
        &jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap(),
    )
    .unwrap()
}

/// The test configuration with its session issuer taken out of the shared test namespace.
fn test_config_with_session(session_identity: &str) -> String {
    let config = std::fs::read_to_string(repo_path("config/test.toml")).unwrap();
    assert!(config.contains("identity_namespace = \"test-users\""));
    config.replacen("identity_namespace = \"test-users\"", session_identity, 1)
}

/// `alice` at the app's own sessions and `alice` at an identity provider (its
/// `preferred_username`, which anyone can choose when signing up) are two people: they get two
/// Twilio identities, never one, so neither reaches the other's calls, conversations or Sync
/// documents.
#[tokio::test]
async fn the_same_username_at_two_issuers_is_two_twilio_identities() {
    let config = test_config_with_session("identity_prefix = \"app:\"")
        + &provider("identity_claim = \"preferred_username\"\nidentity_prefix = \"idp:\"");
    let app = spawn_app_from_config(&config, &[], true).await;
    let at_app = app.mint_ok(&session_token("alice", &["user"]), None).await;
    let at_idp = app.mint_ok(&id_token(json!({"sub": "x1", "preferred_username": "alice"})), None).await;
    assert_eq!(at_app["identity"], "app:alice");
    assert_eq!(at_idp["identity"], "idp:alice");
    for body in [&at_app, &at_idp] {
        let (_, payload) = verify_token(body["token"].as_str().unwrap(), API_SECRET);
        assert_eq!(payload["grants"]["identity"], body["identity"]);
    }
    // Nor can a username be chosen to look like the other issuer's prefix.
    let sly = app.mint_ok(&id_token(json!({"sub": "x2", "preferred_username": "app:alice"})), None).await;
    assert_eq!(sly["identity"], "idp:app:alice");
}

/// With two issuers and nothing said about their users, the service does not start: it names
/// both issuers and the two ways to fix it. check-config explains each issuer's identities.
#[test]
fn two_issuers_without_prefixes_or_a_shared_namespace_are_refused_at_start_up() {
    let write = |name: &str, text: String| {
        let path = std::env::temp_dir().join(format!("tokenmint-{name}-{}.toml", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    };
    let env: Vec<(String, String)> = test_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let clashing = write("clash", test_config_with_session("") + &provider(""));
    let (ok, _, stderr) = run_binary(&["check-config", "--config", clashing.to_str().unwrap()], &env);
    assert!(!ok);
    assert!(
        stderr.contains("https://app.test and https://idp.identity.test could mint the same Twilio identity"),
        "{stderr}"
    );
    assert!(stderr.contains("identity_prefix") && stderr.contains("identity_namespace"), "{stderr}");
    let (ok, _, stderr) = run_binary(&["serve", "--config", clashing.to_str().unwrap()], &env);
    assert!(!ok && stderr.contains("could mint the same Twilio identity"), "{stderr}");

    let apart = write(
        "apart",
        test_config_with_session("identity_prefix = \"app:\"") + &provider("identity_prefix = \"idp:\""),
    );
    let (ok, stdout, stderr) = run_binary(&["check-config", "--config", apart.to_str().unwrap()], &env);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("from https://app.test: \"app:\" + {sub}"), "{stdout}");
    assert!(stdout.contains("from https://idp.identity.test: \"idp:\" + {sub}"), "{stdout}");
}

/// An identity read from the e-mail claim: an unverified sign-up with the owner's address gets
/// nothing, however the provider writes "not verified"; stated values are checked as values.
#[tokio::test]
async fn an_email_identity_needs_a_verified_email_and_required_claims_check_values() {
    let app = spawn_app_configured(
        &provider(
            "identity_claim = \"email\"\nidentity_namespace = \"test-users\"\nrequired_claims = { hd = \"example.com\" }",
        ),
        &[],
        true,
    )
    .await;
    let claims = |verified: serde_json::Value, hd: &str| json!({"sub": "s1", "email": "alice@example.com", "email_verified": verified, "hd": hd});
    for unverified in [json!(false), json!("false"), json!(null), json!(1)] {
        let response = app.post_token(Some(&id_token(claims(unverified.clone(), "example.com"))), None).await;
        assert_eq!(response.status(), 401, "email_verified = {unverified}");
        let problem: serde_json::Value = response.json().await.unwrap();
        assert!(problem["detail"].as_str().unwrap().contains("verified e-mail") || unverified.is_null(), "{problem}");
    }
    assert_eq!(app.post_token(Some(&id_token(claims(json!(true), "evil.example"))), None).await.status(), 401);
    let body = app.mint_ok(&id_token(claims(json!(true), "example.com")), None).await;
    assert_eq!(body["identity"], "alice@example.com");
    let text = app.client.get(app.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metric_value(&text, "tokenmint_auth_failures_total{reason=\"required_claim_value\"}") >= 4.0);
}

/// `{org}:{sub}` cannot be read two ways: a claim holding the separator is refused with a
/// reason, whichever claim holds it.
#[tokio::test]
async fn an_identity_template_is_never_ambiguous() {
    let app = spawn_app_configured(
        &provider("identity_template = \"{org}:{sub}\"\nidentity_namespace = \"test-users\""),
        &[],
        true,
    )
    .await;
    let body = app.mint_ok(&id_token(json!({"org": "acme", "sub": "bob"})), None).await;
    assert_eq!(body["identity"], "acme:bob");
    for (org, sub) in [("acme", "x:bob"), ("acme:x", "bob")] {
        let response = app.post_token(Some(&id_token(json!({"org": org, "sub": sub}))), None).await;
        assert_eq!(response.status(), 401, "({org}, {sub})");
        let problem: serde_json::Value = response.json().await.unwrap();
        assert!(problem["detail"].as_str().unwrap().contains("separator"), "{problem}");
    }
}

/// A backend that mints for users spends each target identity's quota as well as its own: its
/// whole budget cannot go to one user, and that user's own requests share the count.
#[tokio::test]
async fn a_backend_acting_for_users_is_limited_per_target_identity() {
    let app = spawn_app_with(&[
        ("TOKENMINT__RATE_LIMIT__PER_IDENTITY__PER_MINUTE", "1"),
        ("TOKENMINT__RATE_LIMIT__PER_IDENTITY__BURST", "3"),
        ("TOKENMINT__RATE_LIMIT__ROLES__BACKEND__PER_MINUTE", "100000"),
        ("TOKENMINT__RATE_LIMIT__ROLES__BACKEND__BURST", "10000"),
    ])
    .await;
    let for_identity = |identity: &str| json!({"identity": identity, "grants": {"chat": {}}});
    for _ in 0..3 {
        app.mint_ok(BACKEND_KEY, Some(for_identity("bob"))).await;
    }
    let limited = app.post_token(Some(BACKEND_KEY), Some(for_identity("bob"))).await;
    assert!(limited.headers().contains_key("retry-after"));
    assert_problem(limited, 429, "identity").await;
    app.mint_ok(BACKEND_KEY, Some(for_identity("carol"))).await;
    assert_eq!(
        app.post_token(Some(&session_token("bob", &["user"])), None).await.status(),
        429,
        "bob's count is shared"
    );
    app.mint_ok(&session_token("dave", &["user"]), None).await;
}

/// RFC 7515 §4.1.11: a JWT whose `crit` names extensions tokenmint does not understand is
/// refused, though its signature verifies (from an app session or an identity provider).
#[tokio::test]
async fn a_jwt_with_critical_extensions_is_refused() {
    let app = spawn_app_configured(&provider("identity_namespace = \"test-users\""), &[], true).await;
    let now = now();
    let claims = json!({"iss": SESSION_ISSUER, "aud": SESSION_AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300});
    let plain = sign_hs256(&json!({"alg": "HS256", "typ": "JWT"}), &claims, SESSION_SECRET);
    app.mint_ok(&plain, None).await;
    let critical =
        sign_hs256(&json!({"alg": "HS256", "typ": "JWT", "crit": ["b64"], "b64": false}), &claims, SESSION_SECRET);
    assert_eq!(app.post_token(Some(&critical), None).await.status(), 401);

    let pem = std::fs::read(repo_path("tests/fixtures/keys/rsa-a.pem")).unwrap();
    let header = json!({"alg": "RS256", "typ": "JWT", "crit": ["exp-policy"], "exp-policy": 1});
    let payload = json!({"iss": IDP, "aud": IDP_AUDIENCE, "sub": "bob", "iat": now, "exp": now + 300});
    let message = format!(
        "{}.{}",
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header.to_string()),
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload.to_string())
    );
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap(),
        jsonwebtoken::Algorithm::RS256,
    )
    .unwrap();
    let critical = format!("{message}.{signature}");
    assert_eq!(app.post_token(Some(&critical), None).await.status(), 401);
    let text = app.client.get(app.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert_eq!(metric_value(&text, "tokenmint_auth_failures_total{reason=\"critical_extension\"}"), 2.0);
}
