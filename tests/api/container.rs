//! The binary run the way the container image runs it (this machine has no Docker engine): as an
//! unprivileged user (the image's 65532), from an empty directory it cannot write to, configured
//! only by environment variables and files mounted read-only (a ConfigMap and a Secret), probed by
//! `tokenmint healthcheck` as the image's HEALTHCHECK does.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::helpers::*;

/// The image's user and group (distroless "nonroot").
const IMAGE_UID: &str = "65532";

/// A command that runs `program` as the image's user when the tests run as root (CI), and as the
/// current, already unprivileged, user otherwise.
fn as_image_user(program: &Path) -> Command {
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|line| line.starts_with("Uid:") && line.split_whitespace().nth(1) == Some("0"));
    let mut command = if root {
        let mut command = Command::new("/usr/bin/setpriv");
        command.args(["--reuid", IMAGE_UID, "--regid", IMAGE_UID, "--clear-groups", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    };
    command.env_clear().stdin(std::process::Stdio::null());
    command
}

fn read_only(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Lays out the image: the binary, a ConfigMap and a Secret mounted read-only, an empty workdir.
fn image_root() -> (PathBuf, Vec<(String, String)>) {
    let root = std::env::temp_dir().join(format!("tokenmint-image-{}-{}", std::process::id(), unique()));
    let _ = std::fs::remove_dir_all(&root);
    for dir in ["usr/local/bin", "etc/tokenmint", "run/secrets/twilio", "workdir"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    let binary = root.join("usr/local/bin/tokenmint");
    std::fs::copy(env!("CARGO_BIN_EXE_tokenmint"), &binary).unwrap();
    read_only(&binary, 0o555);
    let config = root.join("etc/tokenmint/tokenmint.toml");
    std::fs::copy(repo_path("config/test.toml"), &config).unwrap();
    read_only(&config, 0o444);
    let secrets = root.join("run/secrets/twilio");
    for (file, value) in [("account_sid", ACCOUNT_SID), ("api_key", KEY_SID), ("api_secret", API_SECRET)] {
        std::fs::write(secrets.join(file), value).unwrap();
        read_only(&secrets.join(file), 0o444);
    }
    for dir in ["etc/tokenmint", "run/secrets/twilio", "workdir"] {
        read_only(&root.join(dir), 0o555);
    }
    // The admin port is fixed, as in the image, so the healthcheck finds it from the same settings.
    let admin_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let secret = |name: &str| secrets.join(name).to_str().unwrap().to_owned();
    let env = vec![
        ("TOKENMINT_CONFIG".to_owned(), config.to_str().unwrap().to_owned()),
        ("TOKENMINT__SERVER__ADMIN_LISTEN".to_owned(), format!("127.0.0.1:{admin_port}")),
        ("TWILIO_ACCOUNT_SID_FILE".to_owned(), secret("account_sid")),
        ("TWILIO_API_KEY_FILE".to_owned(), secret("api_key")),
        ("TWILIO_API_SECRET_FILE".to_owned(), secret("api_secret")),
        ("TEST_SESSION_SECRET".to_owned(), SESSION_SECRET.to_owned()),
    ];
    (root, env)
}

#[tokio::test]
async fn runs_unprivileged_from_a_read_only_empty_directory_configured_by_environment_and_files() {
    let (root, env) = image_root();
    let binary = root.join("usr/local/bin/tokenmint");
    let workdir = root.join("workdir");
    let mut serve = as_image_user(&binary);
    serve.current_dir(&workdir).arg("serve");
    let running = start_command("image", serve, &env);

    let status = std::fs::read_to_string(format!("/proc/{}/status", running.child.id())).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap().split_whitespace().nth(1).unwrap().to_owned();
    assert_ne!(uid, "0", "the server must not run as root");

    let client = reqwest::Client::new();
    let ready: serde_json::Value =
        client.get(format!("http://{}/readyz", running.admin_addr)).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["key_sid"], KEY_SID);
    let response = client
        .post(format!("http://{}/v1/tokens", running.addr))
        .bearer_auth(BACKEND_KEY)
        .json(&serde_json::json!({"identity": "alice", "grants": {"video": {}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    verify_token(body["token"].as_str().unwrap(), API_SECRET);

    let mut healthcheck = as_image_user(&binary);
    healthcheck.current_dir(&workdir).arg("healthcheck").envs(env.iter().map(|(k, v)| (k, v)));
    let probe = healthcheck.output().unwrap();
    assert!(probe.status.success(), "healthcheck failed: {}", String::from_utf8_lossy(&probe.stderr));

    let output = running.stop();
    assert!(!output.contains(API_SECRET));
    assert_eq!(std::fs::read_dir(&workdir).unwrap().count(), 0, "the service wrote to its working directory");
    remove(&root);
}

fn remove(root: &Path) {
    for dir in ["etc/tokenmint", "run/secrets/twilio", "workdir"] {
        read_only(&root.join(dir), 0o755);
    }
    let _ = std::fs::remove_dir_all(root);
}

#[tokio::test]
async fn the_healthcheck_fails_when_nothing_answers() {
    let (root, env) = image_root();
    let mut healthcheck = as_image_user(&root.join("usr/local/bin/tokenmint"));
    healthcheck.current_dir(root.join("workdir")).arg("healthcheck").envs(env.iter().map(|(k, v)| (k, v)));
    let probe = healthcheck.output().unwrap();
    assert!(!probe.status.success());
    assert!(String::from_utf8_lossy(&probe.stderr).contains("cannot reach"));
    remove(&root);
}
