//! Key rotation: SIGHUP re-reads the `_FILE` credentials; new tokens carry the new key at once,
//! and a bad new key is refused with a log line while the old one keeps signing.

use std::time::{Duration, Instant};

use crate::helpers::*;

const NEW_KEY_SID: &str = "SK22222222222222222222222222222222";
const NEW_SECRET: &str = "rotated-secret-never-logged-9c1e";

async fn mint_iss(client: &reqwest::Client, addr: std::net::SocketAddr) -> (String, String) {
    let response: serde_json::Value = client
        .post(format!("http://{addr}/v1/tokens"))
        .bearer_auth(session_token("alice", &["user"]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = response["token"].as_str().expect("minted").to_owned();
    (decode_token(&token).1["iss"].as_str().unwrap().to_owned(), token)
}

#[tokio::test]
async fn sighup_rotates_the_key_and_refuses_a_bad_one() {
    let dir = std::env::temp_dir().join(format!("tokenmint-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (key_file, secret_file) = (dir.join("api_key"), dir.join("api_secret"));
    std::fs::write(&key_file, KEY_SID).unwrap();
    std::fs::write(&secret_file, API_SECRET).unwrap();
    let env: Vec<(String, String)> = [
        ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
        ("TWILIO_API_KEY_FILE", key_file.to_str().unwrap()),
        ("TWILIO_API_SECRET_FILE", secret_file.to_str().unwrap()),
        ("TEST_SESSION_SECRET", SESSION_SECRET),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let running = start_binary("reload", &env);
    let client = reqwest::Client::new();
    let (iss, token) = mint_iss(&client, running.addr).await;
    assert_eq!(iss, KEY_SID);
    verify_token(&token, API_SECRET);

    std::fs::write(&key_file, NEW_KEY_SID).unwrap();
    std::fs::write(&secret_file, NEW_SECRET).unwrap();
    running.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    let token = loop {
        let (iss, token) = mint_iss(&client, running.addr).await;
        if iss == NEW_KEY_SID {
            break token;
        }
        assert!(Instant::now() < deadline, "the new key was not used within 5 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    verify_token(&token, NEW_SECRET);

    std::fs::write(&key_file, ACCOUNT_SID).unwrap();
    running.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !std::fs::read_to_string(&running.stdout_path).unwrap().contains("credential reload refused") {
        assert!(Instant::now() < deadline, "no log line for the refused reload");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (iss, token) = mint_iss(&client, running.addr).await;
    assert_eq!(iss, NEW_KEY_SID, "the previous good key keeps signing");
    verify_token(&token, NEW_SECRET);

    let output = running.stop();
    assert!(!output.contains(NEW_SECRET) && !output.contains(API_SECRET));
}
