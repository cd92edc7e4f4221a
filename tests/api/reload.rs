//! Key rotation without downtime. The credentials are mounted the way Kubernetes mounts a
//! Secret (files behind a `..data` symlink that an update swaps atomically); a change is picked
//! up by itself and on SIGHUP, under load, with no failed request; a bad new key or policy is
//! refused with a log line and a metric while the old one keeps signing.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::helpers::*;

const KEY_B: (&str, &str) = ("SK22222222222222222222222222222222", "rotated-secret-b-never-logged-9c1e");
const KEY_C: (&str, &str) = ("SK33333333333333333333333333333333", "rotated-secret-c-never-logged-4d2f");

/// A directory laid out like a mounted Kubernetes Secret.
struct SecretMount {
    dir: PathBuf,
    version: usize,
}

impl SecretMount {
    fn new(name: &str, key_sid: &str, secret: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tokenmint-secret-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for file in ["api_key", "api_secret"] {
            std::os::unix::fs::symlink(Path::new("..data").join(file), dir.join(file)).unwrap();
        }
        let mut mount = Self { dir, version: 0 };
        mount.update(key_sid, secret);
        mount
    }

    /// Writes a new version and swaps it in at once, as the kubelet does.
    fn update(&mut self, key_sid: &str, secret: &str) {
        self.version += 1;
        let version = format!("..v{}", self.version);
        std::fs::create_dir(self.dir.join(&version)).unwrap();
        std::fs::write(self.dir.join(&version).join("api_key"), key_sid).unwrap();
        std::fs::write(self.dir.join(&version).join("api_secret"), secret).unwrap();
        std::os::unix::fs::symlink(&version, self.dir.join("..data_tmp")).unwrap();
        std::fs::rename(self.dir.join("..data_tmp"), self.dir.join("..data")).unwrap();
    }

    fn env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> =
            test_env().into_iter().filter(|(k, _)| k != "TWILIO_API_KEY" && k != "TWILIO_API_SECRET").collect();
        env.push(("TWILIO_API_KEY_FILE".into(), self.dir.join("api_key").to_str().unwrap().into()));
        env.push(("TWILIO_API_SECRET_FILE".into(), self.dir.join("api_secret").to_str().unwrap().into()));
        env
    }
}

async fn mint_iss(client: &reqwest::Client, addr: std::net::SocketAddr) -> (String, String) {
    let alice = session_token("alice", &["user"]);
    let response: serde_json::Value = post_token(client, addr, Some(&alice), None).await.json().await.unwrap();
    let token = response["token"].as_str().expect("minted").to_owned();
    (decode_token(&token).1["iss"].as_str().unwrap().to_owned(), token)
}

async fn metric(client: &reqwest::Client, running: &RunningBinary, series: &str) -> f64 {
    let text = client.get(format!("http://{}/metrics", running.admin_addr)).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in the metrics"))
}

/// `tokenmint serve` with a copy of `config/test.toml` (and `extra` after it) that the test
/// edits while it runs; returns the copy's path, its original text, and the running binary.
fn serve_editable_config(name: &str, extra: &str) -> (PathBuf, String, RunningBinary) {
    let config = std::env::temp_dir().join(format!("tokenmint-reload-{name}-{}.toml", std::process::id()));
    let original = std::fs::read_to_string(repo_path("config/test.toml")).unwrap() + extra;
    std::fs::write(&config, &original).unwrap();
    let mut command = binary();
    command.args(["serve", "--config", config.to_str().unwrap()]);
    let running = start_command(&format!("reload-{name}"), command, &test_env());
    (config, original, running)
}

#[tokio::test]
async fn keys_rotate_under_load_by_file_change_and_by_sighup_with_no_failed_request() {
    let mut mount = SecretMount::new("rotate", KEY_SID, API_SECRET);
    let running = start_binary("rotate", &mount.env());
    let load = Load::start(running.addr, 4);
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The Secret changes; nobody signals: the watched files are enough.
    mount.update(KEY_B.0, KEY_B.1);
    let changed_to_b = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Another rotation, and SIGHUP straight after, as `kubectl rollout` tooling might do.
    mount.update(KEY_C.0, KEY_C.1);
    running.signal("HUP");
    let changed_to_c = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let results = load.finish().await;

    let failures: Vec<&String> = results.iter().filter_map(|r| r.outcome.as_ref().err()).collect();
    assert!(failures.is_empty(), "{} of {} requests failed, e.g. {:?}", failures.len(), results.len(), failures[0]);
    assert!(results.len() > 100, "only {} requests ran", results.len());
    let secret_of = |iss: &str| match iss {
        iss if iss == KEY_SID => API_SECRET,
        iss if iss == KEY_B.0 => KEY_B.1,
        iss if iss == KEY_C.0 => KEY_C.1,
        other => panic!("unexpected iss {other}"),
    };
    let mut first_seen = std::collections::HashMap::new();
    for result in &results {
        let token = result.outcome.as_ref().unwrap();
        let iss = decode_token(token).1["iss"].as_str().unwrap().to_owned();
        verify_token(token, secret_of(&iss));
        if result.sent > changed_to_b + Duration::from_secs(1) {
            assert_ne!(iss, KEY_SID, "the old key still signed a request sent over 1 s after the change");
        }
        if result.sent > changed_to_c + Duration::from_secs(1) {
            assert_eq!(iss, KEY_C.0, "key C was not in use 1 s after the change and SIGHUP");
        }
        first_seen.entry(iss).or_insert(result.sent);
    }
    let b_after = first_seen[KEY_B.0].duration_since(changed_to_b);
    let c_after = first_seen[KEY_C.0].duration_since(changed_to_c);
    assert!(b_after < Duration::from_secs(1) && c_after < Duration::from_secs(1), "{b_after:?}, {c_after:?}");
    eprintln!("{} requests, no failure; key B in use after {b_after:?}, key C after {c_after:?}", results.len());

    let client = reqwest::Client::new();
    assert!(
        metric(&client, &running, "tokenmint_reloads_total{result=\"success\",trigger=\"file_change\"}").await >= 1.0
    );
    assert!(metric(&client, &running, "tokenmint_reloads_total{result=\"success\",trigger=\"sighup\"}").await >= 1.0);
    let output = running.stop();
    for secret in [API_SECRET, KEY_B.1, KEY_C.1] {
        assert!(!output.contains(secret), "a secret reached the log");
    }
}

#[tokio::test]
async fn a_bad_new_key_is_refused_and_the_old_one_keeps_signing() {
    let mut mount = SecretMount::new("refuse", KEY_SID, API_SECRET);
    let running = start_binary("refuse", &mount.env());
    let client = reqwest::Client::new();
    let (iss, token) = mint_iss(&client, running.addr).await;
    assert_eq!(iss, KEY_SID);
    verify_token(&token, API_SECRET);

    // Files cut short in place, as by a writer that crashed: a half key SID, then an empty
    // secret. Each change is noticed and refused; the good key keeps signing.
    let failures = || metric(&client, &running, "tokenmint_reloads_total{result=\"failure\",trigger=\"file_change\"}");
    for (file, content) in [("api_key", &KEY_SID[..12]), ("api_secret", "")] {
        let before = failures().await;
        std::fs::write(mount.dir.join(file), content).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while failures().await <= before {
            assert!(Instant::now() < deadline, "the truncated {file} was not refused");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (iss, token) = mint_iss(&client, running.addr).await;
        assert_eq!(iss, KEY_SID, "the good key keeps signing after a truncated {file}");
        verify_token(&token, API_SECRET);
    }

    // An Account SID where the API key belongs: refused, by the watcher and again on SIGHUP.
    mount.update(ACCOUNT_SID, KEY_B.1);
    running.wait_for_output("reload refused").await;
    running.signal("HUP");
    let (iss, token) = mint_iss(&client, running.addr).await;
    assert_eq!(iss, KEY_SID, "the previous good key keeps signing");
    verify_token(&token, API_SECRET);
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(&client, &running, "tokenmint_reloads_total{result=\"failure\",trigger=\"sighup\"}").await < 1.0 {
        assert!(Instant::now() < deadline, "the refused SIGHUP reload was not counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        metric(&client, &running, "tokenmint_reloads_total{result=\"failure\",trigger=\"file_change\"}").await >= 1.0
    );

    // A file that cannot be read (the mount half gone): also refused.
    std::fs::remove_file(mount.dir.join("api_secret")).unwrap();
    running.signal("HUP");
    let (iss, _) = mint_iss(&client, running.addr).await;
    assert_eq!(iss, KEY_SID);

    let output = running.stop();
    assert!(output.contains("TWILIO_API_KEY holds an Account SID"), "the log says why");
    assert!(!output.contains(API_SECRET) && !output.contains(KEY_B.1));
}

#[tokio::test]
async fn a_changed_policy_applies_at_once_and_a_broken_one_is_refused() {
    let (config, original, running) = serve_editable_config("policy", "");
    let client = reqwest::Client::new();
    let standup = || {
        client
            .post(format!("http://{}/v1/tokens", running.addr))
            .bearer_auth(session_token("alice", &["user"]))
            .json(&serde_json::json!({"grants": {"video": {"room": "standup"}}}))
            .send()
    };
    assert_eq!(standup().await.unwrap().status(), 200);

    // The operator takes "standup" out of the users' rooms, and shortens the default ttl (a
    // section start-up and reload build through the same function): no signal needed.
    let narrowed = original.replacen("rooms = [\"standup\", ", "rooms = [", 1) + "\n[token]\ndefault_ttl_secs = 600\n";
    assert!(!narrowed.contains("rooms = [\"standup\", "));
    std::fs::write(&config, &narrowed).unwrap();
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let response = standup().await.unwrap();
        if response.status() == 403 {
            break;
        }
        assert!(Instant::now() < deadline, "the narrowed policy was not in force within 1 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let defaults: serde_json::Value =
        post_token(&client, running.addr, Some(&session_token("alice", &["user"])), None).await.json().await.unwrap();
    assert_eq!(defaults["ttl"], 600, "the new default ttl came with the same reload: {defaults}");

    // A typo in the file: refused as a whole; the narrowed policy stays.
    std::fs::write(&config, narrowed.replacen("max_ttl_secs", "max_tll_secs", 1)).unwrap();
    running.wait_for_output("reload refused").await;
    assert_eq!(standup().await.unwrap().status(), 403);
    let output = running.stop();
    assert!(output.contains("max_tll_secs"), "the log names the bad key");
}

/// Unicode in a room pattern once panicked the rule compiler: at start-up (exit 101) and, in a
/// reload, inside the reload task, which died while readiness stayed 200, so no later edit (a
/// deny-list entry, a rotated key) was ever applied. Now such a config loads, reloads, and the
/// reloader keeps applying changes; its liveness is a metric and an admin readiness detail.
#[tokio::test]
async fn unicode_rooms_reload_and_the_reloader_keeps_applying_changes() {
    let (config, original, running) = serve_editable_config("unicode", "");
    let client = reqwest::Client::new();
    let ready: serde_json::Value =
        client.get(format!("http://{}/readyz", running.admin_addr)).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["reloader"], "running");
    assert_eq!(metric(&client, &running, "tokenmint_reloader_running").await, 1.0);
    let default_room = || async {
        let zoe = session_token("zoë", &["user"]);
        let body = serde_json::json!({"grants": {"video": {}}});
        let response = post_token(&client, running.addr, Some(&zoe), Some(body)).await;
        let response: serde_json::Value = response.json().await.unwrap();
        decode_token(response["token"].as_str().unwrap()).1["grants"]["video"]["room"].clone()
    };
    assert_eq!(default_room().await, "user-zoë");

    let unicode = original.replacen(
        "rooms = [\"standup\", \"user-{identity}\", \"team-*\"], default_room = \"user-{identity}\"",
        "rooms = [\"équipe-*\", \"über-{identity}\"], default_room = \"über-{identity}\"",
        1,
    );
    assert_ne!(unicode, original);
    std::fs::write(&config, &unicode).unwrap();
    running.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    while default_room().await != "über-zoë" {
        assert!(Instant::now() < deadline, "the Unicode rooms were not applied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The reloader is still there: the next edit (a deny-list entry) applies too.
    std::fs::write(&config, format!("{unicode}\n[policy.deny]\nidentities = [\"zoë\"]\n")).unwrap();
    running.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let status = client
            .post(format!("http://{}/v1/tokens", running.addr))
            .bearer_auth(session_token("zoë", &["user"]))
            .send()
            .await
            .unwrap()
            .status();
        if status == 403 {
            break;
        }
        assert!(Instant::now() < deadline, "the deny-list edit after the Unicode reload was not applied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(metric(&client, &running, "tokenmint_reloader_running").await, 1.0);
    assert_eq!(metric(&client, &running, "tokenmint_reloader_restarts_total").await, 0.0);
    assert!(metric(&client, &running, "tokenmint_reloads_total{result=\"failure\",trigger=\"sighup\"}").await == 0.0);
    running.stop();
}

/// Removing a leaked backend API key, tightening a rate limit and adding an identity provider
/// take effect on SIGHUP, in one atomic reload, without a restart. Once, `[auth]` and
/// `[rate_limit]` edits were ignored while the log said "configuration reloaded". A change
/// that truly needs a restart (a listener setting) is named, and counted as `partial`.
#[tokio::test]
async fn authentication_and_rate_limits_reload_live_and_restart_only_changes_are_named() {
    let (config, original, running) = serve_editable_config("auth", "");
    let client = reqwest::Client::new();
    let post =
        |credential: String| client.post(format!("http://{}/v1/tokens", running.addr)).bearer_auth(credential).send();
    assert_eq!(post(KIOSK_KEY.into()).await.unwrap().status(), 200, "the kiosk key works before the reload");

    // The kiosk key leaked: take it out; allow 2 tokens per user in a burst; add a provider;
    // and change a listener setting, which only a restart applies.
    let kiosk_entry = original.find("# key: tmk_test_kiosk").unwrap();
    let kiosk_end = original[kiosk_entry..].find("\n\n").unwrap() + kiosk_entry;
    let pem = std::fs::read_to_string(repo_path("tests/fixtures/keys/rsa-a.pub.pem")).unwrap();
    let edited = format!(
        "{}{}\n[[auth.providers]]\nissuer = \"https://idp.reload.test\"\naudiences = [\"app\"]\npublic_key_pem = '''\n{pem}'''\ndefault_roles = [\"user\"]\nidentity_namespace = \"test-users\"\n",
        &original[..kiosk_entry],
        &original[kiosk_end..],
    )
    .replacen(
        "per_identity = { per_minute = 100000, burst = 10000 }",
        "per_identity = { per_minute = 1, burst = 2 }",
        1,
    )
    .replacen("drain_delay_ms = 0", "drain_delay_ms = 0\nmax_connections = 999", 1);
    assert!(!edited.contains("tmk_test_kiosk") && edited.contains("burst = 2 }"));
    std::fs::write(&config, edited).unwrap();
    running.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    while post(KIOSK_KEY.into()).await.unwrap().status() != 401 {
        assert!(Instant::now() < deadline, "the removed API key still works");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The provider is in force, and the new per-user limit with it.
    let now = now();
    let id_token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &serde_json::json!({"iss": "https://idp.reload.test", "aud": "app", "sub": "rhea", "iat": now, "exp": now + 300}),
        &jsonwebtoken::EncodingKey::from_rsa_pem(&std::fs::read(repo_path("tests/fixtures/keys/rsa-a.pem")).unwrap())
            .unwrap(),
    )
    .unwrap();
    let statuses = [
        post(id_token.clone()).await.unwrap().status(),
        post(id_token.clone()).await.unwrap().status(),
        post(id_token).await.unwrap().status(),
    ];
    assert_eq!(statuses.map(|s| s.as_u16()), [200, 200, 429], "the added provider, under the new limit");

    running.wait_for_output("take effect only after a restart").await;
    assert_eq!(metric(&client, &running, "tokenmint_reloads_total{result=\"partial\",trigger=\"sighup\"}").await, 1.0);
    let output = running.stop();
    let warning = output.lines().find(|l| l.contains("take effect only after a restart")).unwrap();
    assert!(warning.contains("server.max_connections"), "{warning}");
    assert!(!warning.contains("server.listen"), "only what changed is named: {warning}");
}

/// An identity provider that is down (its keys never fetched) must not hold up other changes:
/// a deny-list edit still applies on SIGHUP. Only a provider the reload itself adds must have its
/// keys before it takes over.
#[tokio::test]
async fn a_provider_that_is_down_does_not_block_a_reload() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let provider = format!(
        "\n[[auth.providers]]\nissuer = \"https://idp.down.test\"\naudiences = [\"app\"]\njwks_uri = \"http://{closed}/jwks.json\"\nfetch_timeout_ms = 200\nidentity_namespace = \"test-users\"\n"
    );
    let (config, original, running) = serve_editable_config("provider-down", &provider);
    let client = reqwest::Client::new();
    let alice = || {
        client.post(format!("http://{}/v1/tokens", running.addr)).bearer_auth(session_token("alice", &["user"])).send()
    };
    assert_eq!(alice().await.unwrap().status(), 200);
    std::fs::write(&config, format!("{original}\n[policy.deny]\nidentities = [\"alice\"]\n")).unwrap();
    running.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    while alice().await.unwrap().status() != 403 {
        assert!(Instant::now() < deadline, "the deny-list edit was held up by the provider that is down");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.stop();
}
