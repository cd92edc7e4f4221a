//! The alert rules as code, checked by Prometheus's own promtool (Debian's `prometheus`
//! package): the file loads, and each alert fires on the series that should fire it and stays
//! quiet otherwise (deploy/prometheus/tokenmint.rules.test.yaml).

use std::process::Command;

use crate::helpers::*;

fn promtool(args: &[&str]) -> String {
    let output = Command::new("promtool")
        .args(args)
        .current_dir(repo_path("deploy/prometheus"))
        .output()
        .expect("promtool runs: scripts/test installs Debian's prometheus package");
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn the_alert_rules_load_and_each_fires_when_it_should_and_only_then() {
    let rules = std::fs::read_to_string(repo_path("deploy/prometheus/tokenmint.rules.yaml")).unwrap();
    let alerts: Vec<&str> = rules.lines().filter_map(|line| line.trim().strip_prefix("- alert: ")).collect();
    let checked = promtool(&["check", "rules", "tokenmint.rules.yaml"]);
    assert!(checked.contains(&format!("SUCCESS: {} rules found", alerts.len())), "{checked}");
    let tested = promtool(&["test", "rules", "tokenmint.rules.test.yaml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
    // Every alert has its test.
    let tests = std::fs::read_to_string(repo_path("deploy/prometheus/tokenmint.rules.test.yaml")).unwrap();
    for alert in alerts {
        assert!(tests.contains(&format!("alertname: {alert}")), "{alert} has no promtool test");
    }
}

/// Prometheus started from Debian's package on a free loopback port, scraping `target` every
/// second; killed on drop.
struct Prometheus {
    child: std::process::Child,
    url: String,
    _dir: std::path::PathBuf,
}

impl Prometheus {
    fn start(target: std::net::SocketAddr) -> Self {
        let dir = std::env::temp_dir().join(format!("tokenmint-prometheus-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: tokenmint\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
            .spawn()
            .expect("prometheus runs: scripts/test installs Debian's prometheus package");
        Self { child, url: format!("http://127.0.0.1:{port}"), _dir: dir }
    }

    /// The result of an instant query, once Prometheus answers (within 20 s).
    async fn query(&self, client: &reqwest::Client, expr: &str) -> Vec<serde_json::Value> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let query = form_urlencoded::Serializer::new(String::new()).append_pair("query", expr).finish();
            let answer = client.get(format!("{}/api/v1/query?{query}", self.url)).send().await;
            if let Ok(answer) = answer
                && let Ok(body) = answer.json::<serde_json::Value>().await
            {
                assert_eq!(body["status"], "success", "{expr}: {body}");
                return body["data"]["result"].as_array().cloned().unwrap_or_default();
            }
            assert!(std::time::Instant::now() < deadline, "prometheus never answered");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Grafana dashboard (deploy/grafana/tokenmint-dashboard.json): a real Prometheus scrapes a
/// real tokenmint under a short load that touches every part (tokens, refused credentials, the
/// deny list, a rate limit, a reload, an identity provider and a Redis store that cannot be
/// reached), and every query of every panel returns data.
#[tokio::test]
async fn every_dashboard_panel_has_data_from_a_real_prometheus_scraping_a_real_tokenmint() {
    let extra = r#"
[rate_limit.roles.kiosk]
per_minute = 1
burst = 1

[[auth.providers]]
issuer = "https://idp.unreachable.test"
audiences = ["app"]
jwks_uri = "http://127.0.0.1:1/jwks"
default_roles = ["user"]
identity_namespace = "test-users"

[policy.deny]
identities = ["mallory"]
"#;
    let config = std::env::temp_dir().join(format!("tokenmint-dashboard-{}.toml", std::process::id()));
    std::fs::write(&config, std::fs::read_to_string(repo_path("config/test.toml")).unwrap() + extra).unwrap();
    let mut env = test_env();
    // A shared store nobody answers on: failing open, its series move.
    env.push(("TOKENMINT__RATE_LIMIT__STORE".into(), "redis".into()));
    env.push(("TOKENMINT_REDIS_URL".into(), "redis://127.0.0.1:1/0".into()));
    let mut command = binary();
    command.args(["serve", "--config", config.to_str().unwrap()]);
    let running = start_command("dashboard", command, &env);
    let prometheus = Prometheus::start(running.admin_addr);
    let client = reqwest::Client::new();

    // A short, bounded load on loopback that moves every series the panels read.
    let alice = session_token("alice", &["user"]);
    for round in 0..6 {
        for _ in 0..20 {
            post_token(&client, running.addr, Some(&alice), None).await;
        }
        post_token(&client, running.addr, Some("tmk_test_not_a_key_0123456789abcdef"), None).await;
        post_token(&client, running.addr, Some(&session_token("mallory", &["user"])), None).await;
        post_token(&client, running.addr, Some(KIOSK_KEY), None).await;
        if round == 2 {
            running.signal("HUP");
        }
        tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    }

    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo_path("deploy/grafana/tokenmint-dashboard.json")).unwrap())
            .expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 10, "{} panels", panels.len());
    for panel in panels {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap().replace("$__rate_interval", "15s").replace("$job", "tokenmint");
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            loop {
                if !prometheus.query(&client, &expr).await.is_empty() {
                    break;
                }
                assert!(std::time::Instant::now() < deadline, "panel {:?}: no data for {expr}", panel["title"]);
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        }
    }
    drop(prometheus);
    running.stop();
}
