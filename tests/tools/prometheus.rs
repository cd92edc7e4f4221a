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
    let checked = promtool(&["check", "rules", "tokenmint.rules.yaml"]);
    assert!(checked.contains("SUCCESS: 13 rules found"), "{checked}");
    let tested = promtool(&["test", "rules", "tokenmint.rules.test.yaml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
    // Every alert has its test.
    let rules = std::fs::read_to_string(repo_path("deploy/prometheus/tokenmint.rules.yaml")).unwrap();
    let tests = std::fs::read_to_string(repo_path("deploy/prometheus/tokenmint.rules.test.yaml")).unwrap();
    for alert in rules.lines().filter_map(|line| line.trim().strip_prefix("- alert: ")) {
        assert!(tests.contains(&format!("alertname: {alert}")), "{alert} has no promtool test");
    }
}
