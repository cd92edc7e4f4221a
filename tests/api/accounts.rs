//! Several Twilio accounts: each with its own key, secret and region from `TWILIO_<NAME>_…`,
//! chosen by the policy rule (pinned, or by the principal's tenant), never one the rule does not
//! name, listed by `check-config` with SIDs only, and rotated on its own.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::*;

const EU_ACCOUNT: &str = "AC99999999999999999999999999999999";
const EU_KEY: &str = "SK88888888888888888888888888888888";
const EU_SECRET: &str = "eu-secret-never-logged-5b1d";
const EU_KEY_2: &str = "SK77777777777777777777777777777777";
const EU_SECRET_2: &str = "eu-secret-two-never-logged-8e0a";
const EU_BACKEND: &str = "tmk_test_eu_backend_0123456789";
const NO_TENANT: &str = "tmk_test_no_tenant_0123456789";
const EU_KIOSK: &str = "tmk_test_eu_kiosk_0123456789";

fn sha256_hex(key: &str) -> String {
    Sha256::digest(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn each_account_signs_its_own_tokens_is_chosen_by_policy_and_rotates_alone() {
    let dir = std::env::temp_dir().join(format!("tokenmint-accounts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (key_file, secret_file) = (dir.join("eu_api_key"), dir.join("eu_api_secret"));
    std::fs::write(&key_file, EU_KEY).unwrap();
    std::fs::write(&secret_file, EU_SECRET).unwrap();
    let config = dir.join("tokenmint.toml");
    let extra = format!(
        r#"
[accounts.eu]
region = "ie1"

[[policy.rules]]
name = "eu-users"
roles = ["eu-user"]
accounts = ["eu"]
chat = {{ service_sid = "IS33333333333333333333333333333333" }}

[[policy.rules]]
name = "by-tenant"
roles = ["tenant-backend"]
accounts = ["default", "eu"]
chat = {{ service_sid = "IS33333333333333333333333333333333" }}

[[auth.api_keys]]
name = "eu-backend"
sha256 = "{}"
roles = ["tenant-backend"]
tenant = "eu"

[[auth.api_keys]]
name = "no-tenant"
sha256 = "{}"
roles = ["tenant-backend"]

[[auth.api_keys]]
name = "eu-kiosk"
sha256 = "{}"
roles = ["kiosk"]
tenant = "eu"
"#,
        sha256_hex(EU_BACKEND),
        sha256_hex(NO_TENANT),
        sha256_hex(EU_KIOSK)
    );
    std::fs::write(&config, std::fs::read_to_string(repo_path("config/test.toml")).unwrap() + &extra).unwrap();
    let mut env = test_env();
    env.extend(
        [
            ("TWILIO_EU_ACCOUNT_SID", EU_ACCOUNT),
            ("TWILIO_EU_API_KEY_FILE", key_file.to_str().unwrap()),
            ("TWILIO_EU_API_SECRET_FILE", secret_file.to_str().unwrap()),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );

    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (ok, stdout, stderr) = run_binary(&["check-config", "--config", config.to_str().unwrap()], &env_refs);
    assert!(ok, "{stderr}");
    assert!(stdout.contains(EU_ACCOUNT) && stdout.contains(EU_KEY) && stdout.contains("ie1"), "{stdout}");
    assert!(stdout.contains(ACCOUNT_SID) && stdout.contains(KEY_SID), "{stdout}");
    assert!(!stdout.contains(EU_SECRET) && !stdout.contains(API_SECRET));
    // A key whose tenant no rule its roles select can serve is pointed out before it is used.
    assert!(stdout.contains("warning: auth.api_keys \"eu-kiosk\": its tenant \"eu\""), "{stdout}");
    assert!(stdout.contains("warning: auth.api_keys \"no-tenant\""), "{stdout}");
    assert!(!stdout.contains("warning: auth.api_keys \"eu-backend\""), "{stdout}");

    let mut command = binary();
    command.args(["serve", "--config", config.to_str().unwrap()]);
    let running = start_command("accounts", command, &env);
    let client = reqwest::Client::new();
    let mint = |credential: String| {
        let client = client.clone();
        let url = format!("http://{}/v1/tokens", running.addr);
        async move {
            let response =
                client.post(url).bearer_auth(credential).json(&json!({"grants": {"chat": {}}})).send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };

    // The default account for the plain rule; the EU account, its key and region for the EU rule.
    let (status, body) = mint(session_token("alice", &["user"])).await;
    assert_eq!(status, 200, "{body}");
    let (header, payload) = verify_token(body["token"].as_str().unwrap(), API_SECRET);
    assert_eq!((payload["iss"].as_str(), payload["sub"].as_str()), (Some(KEY_SID), Some(ACCOUNT_SID)));
    assert!(header.get("twr").is_none());
    assert!(body.get("region").is_none(), "no region for the default one: {body}");
    let (status, body) = mint(session_token("amelie", &["eu-user"])).await;
    assert_eq!(status, 200, "{body}");
    let (header, payload) = verify_token(body["token"].as_str().unwrap(), EU_SECRET);
    assert_eq!((payload["iss"].as_str(), payload["sub"].as_str()), (Some(EU_KEY), Some(EU_ACCOUNT)));
    assert_eq!(header["twr"], "ie1");
    assert_eq!(body["region"], "ie1", "the client is told where to connect");

    // A rule over several accounts: the backend key's tenant picks; no tenant, no token.
    let (status, body) = mint(EU_BACKEND.into()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(verify_token(body["token"].as_str().unwrap(), EU_SECRET).1["sub"], EU_ACCOUNT);
    let (status, body) = mint(NO_TENANT.into()).await;
    assert_eq!(status, 403);
    assert!(body["detail"].as_str().unwrap().contains("names none of them"), "{body}");
    // A tenant naming the EU account, on a rule that mints for the default one: refused, naming
    // both, never quietly signed by the default account.
    let (status, body) = mint(EU_KIOSK.into()).await;
    assert_eq!(status, 403, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("\"eu\"") && detail.contains("\"kiosk\""), "{body}");

    let ready: Value =
        client.get(format!("http://{}/readyz", running.admin_addr)).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["accounts"], json!({"default": KEY_SID, "eu": EU_KEY}));

    // The EU key rotates alone, by its files.
    std::fs::write(&key_file, EU_KEY_2).unwrap();
    std::fs::write(&secret_file, EU_SECRET_2).unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let (_, body) = mint(session_token("amelie", &["eu-user"])).await;
        let token = body["token"].as_str().unwrap();
        if decode_token(token).1["iss"] == EU_KEY_2 {
            verify_token(token, EU_SECRET_2);
            break;
        }
        assert!(Instant::now() < deadline, "the EU account did not rotate within 2 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, body) = mint(session_token("alice", &["user"])).await;
    verify_token(body["token"].as_str().unwrap(), API_SECRET);

    // A bad EU key is refused for that account alone; it keeps its last good key.
    std::fs::write(&key_file, EU_ACCOUNT).unwrap();
    running.wait_for_output("reload refused for an account").await;
    let (_, body) = mint(session_token("amelie", &["eu-user"])).await;
    verify_token(body["token"].as_str().unwrap(), EU_SECRET_2);

    let output = running.stop();
    assert!(output.contains("TWILIO_EU_API_KEY holds an Account SID"), "the log names the variable");
    let audits = audit_records(&output, "token minted");
    assert!(audits.iter().any(|a| a["account"] == "eu" && a["key_sid"] == EU_KEY));
    assert!(audits.iter().any(|a| a["account"] == "default"));
    for secret in [API_SECRET, EU_SECRET, EU_SECRET_2] {
        assert!(!output.contains(secret), "a secret reached the log");
    }
}

#[test]
fn a_named_account_without_its_variables_stops_start_up_with_their_names() {
    let config = std::env::temp_dir().join(format!("tokenmint-accounts-missing-{}.toml", std::process::id()));
    std::fs::write(&config, std::fs::read_to_string(repo_path("config/test.toml")).unwrap() + "\n[accounts.apac]\n")
        .unwrap();
    let env: Vec<(&str, &str)> = [
        ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
        ("TWILIO_API_KEY", KEY_SID),
        ("TWILIO_API_SECRET", API_SECRET),
        ("TEST_SESSION_SECRET", SESSION_SECRET),
    ]
    .to_vec();
    let (ok, _, stderr) = run_binary(&["check-config", "--config", config.to_str().unwrap()], &env);
    assert!(!ok);
    assert!(stderr.contains("accounts.apac: TWILIO_APAC_API_KEY is not set"), "{stderr}");
}
