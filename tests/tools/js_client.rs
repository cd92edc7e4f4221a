//! The client package (clients/js) as app developers get it: Node's test runner drives it
//! against the real server (fetch, one request for concurrent callers, refresh before expiry,
//! the platform's push credential, the token exchange, a 429's Retry-After, stop on a refused
//! credential, and the
//! Voice, Conversations, Sync and Video helpers on objects with those SDKs' interfaces); `npm pack`
//! yields a tarball that a fresh project installs and imports; and the TypeScript compiler
//! accepts a consumer written as the README shows and rejects a misuse.

use std::process::Command;
use std::time::Duration;

use crate::helpers::*;

const RULES: &str = r#"
[rate_limit.roles.limited]
per_minute = 1
burst = 1

[[policy.rules]]
name = "limited"
roles = ["limited"]
chat = { service_sid = "IS33333333333333333333333333333333" }

[[policy.rules]]
name = "mobile"
roles = ["mobile"]
voice = { incoming = true, push_credentials = { ios = "CR1111111111111111111111111111aaaa", android = "CR1111111111111111111111111111cccc" } }
"#;

/// Runs `command` (bounded in time) and returns its output, failing with it unless it succeeds.
async fn run(mut command: tokio::process::Command, limit: Duration) -> String {
    let output = tokio::time::timeout(limit, command.kill_on_drop(true).output())
        .await
        .expect("finished in time")
        .expect("runs (scripts/test installs Node.js 20 or newer)");
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{command:?} failed:\n{text}");
    text
}

#[tokio::test]
async fn nodes_test_runner_drives_the_package_against_the_real_server() {
    let app = spawn_app_configured(RULES, &[], true).await;
    let mut node = tokio::process::Command::new("node");
    node.args(["--test", "--test-reporter=tap"])
        .arg(repo_path("clients/js/test/client.test.mjs"))
        .env("TOKENMINT_URL", format!("http://{}", app.addr))
        .env("TOKENMINT_SESSION", session_token("alice", &["user"]))
        .env("TOKENMINT_LIMITED_SESSION", session_token("lim", &["limited"]))
        .env("TOKENMINT_MOBILE_SESSION", session_token("pat", &["mobile"]));
    let report = run(node, Duration::from_secs(60)).await;
    assert!(report.contains("# pass 12") && report.contains("# fail 0"), "{report}");
}

#[tokio::test]
async fn npm_pack_yields_a_package_a_fresh_project_installs_and_imports() {
    let dir = std::env::temp_dir().join(format!("tokenmint-npm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let project = dir.join("app");
    std::fs::create_dir_all(&project).unwrap();
    let mut pack = tokio::process::Command::new("npm");
    pack.args(["pack", "--pack-destination"]).arg(&dir).current_dir(repo_path("clients/js"));
    run(pack, Duration::from_secs(60)).await;
    let tarball = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| path.extension().is_some_and(|e| e == "tgz"))
        .expect("npm pack wrote a tarball");
    let listing = Command::new("tar").arg("tzf").arg(&tarball).output().unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    for file in ["package/package.json", "package/tokenmint.js", "package/tokenmint.d.ts"] {
        assert!(listing.lines().any(|l| l == file), "{file} in {listing}");
    }
    assert!(!listing.contains("test/"), "the tests stay out of the package: {listing}");
    std::fs::write(project.join("package.json"), r#"{"name": "app", "private": true, "type": "module"}"#).unwrap();
    let mut install = tokio::process::Command::new("npm");
    install.args(["install", "--no-audit", "--no-fund", "--offline"]).arg(&tarball).current_dir(&project);
    run(install, Duration::from_secs(60)).await;
    let mut import = tokio::process::Command::new("node");
    import
        .args(["--input-type=module", "-e"])
        .arg(r#"import { TokenClient, TokenError } from "tokenmint-client"; console.log(typeof TokenClient, typeof TokenError);"#)
        .current_dir(&project);
    assert_eq!(run(import, Duration::from_secs(30)).await.trim(), "function function");
}

#[tokio::test]
async fn the_types_accept_the_documented_use_and_reject_a_misuse() {
    let tsc = repo_path("tests/browser/node_modules/typescript/bin/tsc");
    assert!(tsc.exists(), "{} is missing: run scripts/test", tsc.display());
    let check = |file: &str| {
        let mut command = tokio::process::Command::new("node");
        command
            .arg(&tsc)
            .args(["--noEmit", "--strict", "--module", "nodenext", "--moduleResolution", "nodenext"])
            .args(["--target", "es2022", "--lib", "es2022,dom"])
            .arg(repo_path(&format!("clients/js/test/types/{file}")))
            .current_dir(repo_path("clients/js"))
            .kill_on_drop(true);
        command
    };
    run(check("consumer.ts"), Duration::from_secs(60)).await;
    let misuse = tokio::time::timeout(Duration::from_secs(60), check("misuse.ts").output()).await.unwrap().unwrap();
    let errors = String::from_utf8_lossy(&misuse.stdout);
    assert!(!misuse.status.success(), "the misuse type-checked");
    assert!(errors.contains("\"windows\"") && errors.contains("vidoe"), "{errors}");
}
