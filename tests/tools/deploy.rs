//! The deployment files: the Dockerfile passes hadolint; the kustomizations render (with the
//! kustomize inside kubectl) and every built-in object validates strictly against the Kubernetes
//! schemas; the compose file validates against the Compose Specification; and the Deployment
//! keeps the promises the README makes of it. (That the TOML each ships passes `check-config`
//! needs only Rust: tests/api/cli.rs.)
//! The tools come from PyPI into `.venv` (tests/python/requirements.txt, via `scripts/test`).

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use tokenmint::config::Settings;
use tokenmint::env::EnvVars;

use crate::helpers::*;

fn tool(name: &str) -> PathBuf {
    let path = repo_path(&format!(".venv/bin/{name}"));
    assert!(path.exists(), "{} is missing: run scripts/test", path.display());
    path
}

/// Runs a tool and returns its stdout, failing the test with its output when it fails.
fn run(command: &mut Command) -> String {
    let output = command.output().expect("the tool runs");
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// `kubectl kustomize DIR`, validated strictly, as JSON objects.
fn render(kustomization: &str) -> Vec<Value> {
    let yaml = run(Command::new(tool("kubectl")).args(["kustomize", repo_path(kustomization).to_str().unwrap()]));
    let file = std::env::temp_dir().join(format!("tokenmint-rendered-{}-{}.yaml", std::process::id(), unique()));
    std::fs::write(&file, &yaml).unwrap();
    run(Command::new(tool("kubernetes-validate")).args(["--strict", "--quiet", file.to_str().unwrap()]));
    let json = run(Command::new(tool("python"))
        .args(["-c", "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))"])
        .arg(&file));
    serde_json::from_str(&json).unwrap()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

#[test]
fn the_dockerfile_passes_hadolint() {
    run(Command::new(tool("hadolint")).arg(repo_path("Dockerfile")));
    let dockerfile = std::fs::read_to_string(repo_path("Dockerfile")).unwrap();
    assert!(dockerfile.contains("USER 65532:65532"), "a numeric non-root user");
    assert!(dockerfile.contains(r#"CMD ["/usr/local/bin/tokenmint", "healthcheck"]"#), "a shell-free HEALTHCHECK");
}

#[test]
fn the_kubernetes_base_renders_validates_and_runs_restricted() {
    let objects = render("deploy/kubernetes/base");
    for kind in ["Namespace", "ServiceAccount", "ConfigMap", "Service", "Deployment"] {
        assert!(objects.iter().any(|o| o["kind"] == kind), "no {kind}");
    }
    for kind in ["HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"] {
        assert!(objects.iter().any(|o| o["kind"] == kind), "no {kind}");
    }
    let deployment = find(&objects, "Deployment", "tokenmint");
    assert!(deployment["spec"]["replicas"].as_u64().unwrap() >= 2);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    assert!(pod["topologySpreadConstraints"].as_array().is_some_and(|c| !c.is_empty()));
    let container = &pod["containers"][0];
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(container["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(container["securityContext"]["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert!(container["resources"]["requests"].is_object() && container["resources"]["limits"].is_object());
    for (probe, path) in [("livenessProbe", "/livez"), ("readinessProbe", "/readyz"), ("startupProbe", "/readyz")] {
        assert_eq!(container[probe]["httpGet"]["path"], path, "{probe}");
        assert_eq!(container[probe]["httpGet"]["port"], "admin", "{probe} on the admin port");
    }
    // No secret as a plain variable: every Twilio credential comes from a mounted file.
    let env = container["env"].as_array().unwrap();
    assert!(
        env.iter()
            .all(|e| !e["name"].as_str().unwrap().starts_with("TWILIO_")
                || e["name"].as_str().unwrap().ends_with("_FILE"))
    );

    // The pod outlives the drain delay plus the longest request the shipped settings allow.
    let config = find(&objects, "ConfigMap", deployment_config_name(pod).as_str())["data"]["tokenmint.toml"]
        .as_str()
        .unwrap()
        .to_owned();
    let file = std::env::temp_dir().join(format!("tokenmint-k8s-{}.toml", std::process::id()));
    std::fs::write(&file, config).unwrap();
    let settings = Settings::load(Some(&file), false, &EnvVars::default()).unwrap();
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap() * 1000;
    assert!(grace > settings.server.drain_delay_ms + settings.server.request_timeout_ms, "grace period too short");
    assert_eq!(container["ports"][1]["containerPort"], settings.server.admin_listen.port());

    // Forwarding headers are believed from the pod network, so the NetworkPolicy must let only
    // the ingress controller reach the API port: a rule for it without `from` would let any pod
    // in the cluster name any client address.
    let api_port = settings.server.listen.port();
    assert!(!settings.server.trusted_proxies.is_empty());
    let policy = find(&objects, "NetworkPolicy", "tokenmint");
    let api_rules: Vec<&Value> = policy["spec"]["ingress"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|rule| rule["ports"].as_array().is_none_or(|ports| ports.iter().any(|p| p["port"] == api_port)))
        .collect();
    assert!(!api_rules.is_empty(), "no rule admits the API port");
    for rule in api_rules {
        let from = rule["from"].as_array().map_or(0, Vec::len);
        assert!(from > 0, "the API port is open to every peer, and trusted_proxies trusts them: {rule}");
    }
}

fn deployment_config_name(pod: &Value) -> String {
    let volumes = pod["volumes"].as_array().unwrap();
    let config = volumes.iter().find(|v| v["configMap"].is_object()).expect("a ConfigMap volume");
    config["configMap"]["name"].as_str().unwrap().to_owned()
}

#[test]
fn the_redis_overlay_renders_validates_and_turns_on_the_shared_store() {
    let objects = render("deploy/kubernetes/overlays/redis");
    let deployment = find(&objects, "Deployment", "tokenmint");
    let env = deployment["spec"]["template"]["spec"]["containers"][0]["env"].as_array().unwrap();
    let value = |name: &str| env.iter().find(|e| e["name"] == name).map(|e| e["value"].clone());
    assert_eq!(value("TOKENMINT__RATE_LIMIT__STORE"), Some("redis".into()));
    assert!(value("TOKENMINT_REDIS_URL_FILE").is_some());
    assert_eq!(value("TWILIO_API_SECRET_FILE"), Some("/run/secrets/twilio/api_secret".into()), "the base is kept");
    find(&objects, "Deployment", "tokenmint-redis");
    find(&objects, "Service", "tokenmint-redis");
    let policy = find(&objects, "NetworkPolicy", "tokenmint");
    assert!(policy["spec"]["egress"].as_array().unwrap().iter().any(|rule| rule["ports"][0]["port"] == 6379));
}

#[test]
fn the_secret_examples_validate() {
    for file in ["deploy/kubernetes/base/secret.example.yaml", "deploy/kubernetes/overlays/redis/secret.example.yaml"] {
        run(Command::new(tool("kubernetes-validate")).args(["--strict", "--quiet", repo_path(file).to_str().unwrap()]));
    }
}

#[test]
fn the_compose_file_validates_against_the_compose_specification() {
    run(Command::new(tool("check-jsonschema")).args([
        "--builtin-schema",
        "vendor.compose-spec",
        repo_path("deploy/compose.yaml").to_str().unwrap(),
    ]));
}

#[test]
fn the_monitoring_overlay_scrapes_every_pods_admin_port_and_carries_the_tested_alert_rules() {
    let objects = render("deploy/kubernetes/overlays/monitoring");
    let pod = &find(&objects, "Deployment", "tokenmint")["spec"]["template"];
    let admin = find(&objects, "Service", "tokenmint-admin");
    assert_eq!(admin["spec"]["clusterIP"], "None", "headless: every pod is scraped");
    for (label, value) in admin["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&pod["metadata"]["labels"][label], value, "the admin Service selects the pods by {label}");
    }
    let container = &pod["spec"]["containers"][0];
    let port = &admin["spec"]["ports"][0];
    assert!(
        container["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == port["targetPort"] && p["containerPort"] == 9090)
    );
    let monitor = find(&objects, "ServiceMonitor", "tokenmint");
    for (label, value) in monitor["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(
            &admin["metadata"]["labels"][label], value,
            "the ServiceMonitor selects the admin Service by {label}"
        );
    }
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], port["name"]);
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
    // The PrometheusRule holds exactly the rules promtool tests (tests/tools/prometheus.rs).
    let rules = run(Command::new(tool("python"))
        .args(["-c", "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))"])
        .arg(repo_path("deploy/prometheus/tokenmint.rules.yaml")));
    let rules: Value = serde_json::from_str(&rules).unwrap();
    assert_eq!(find(&objects, "PrometheusRule", "tokenmint")["spec"]["groups"], rules["groups"]);
}
