//! The leak sweep: the real binary at debug level walks every error path and several successes;
//! then everything it printed is searched for every secret and every token. One audit line
//! per minted token, carrying the jti and never the token.

use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn no_secret_or_token_reaches_the_output_and_each_token_is_audited() {
    let mut env = test_env();
    env.push(("RUST_LOG".into(), "debug".into()));
    let running = start_binary("leaks", &env);
    let client = reqwest::Client::new();
    let url = format!("http://{}/v1/tokens", running.addr);
    let post = |credential: Option<String>, body: Option<&'static str>| {
        let mut request = client.post(&url).header("content-type", "application/json");
        if let Some(credential) = credential {
            request = request.bearer_auth(credential);
        }
        request.body(body.unwrap_or("")).send()
    };

    let mut must_not_appear: Vec<String> =
        [API_SECRET, SESSION_SECRET, BACKEND_KEY, KIOSK_KEY].map(String::from).to_vec();
    let mut minted = Vec::new();
    let session = session_token("alice", &["user"]);
    must_not_appear.push(session.clone());
    for (credential, body) in [
        (session.clone(), None),
        (session.clone(), Some(r#"{"grants": {"voice": {}, "video": {"room": "standup"}}}"#)),
        (BACKEND_KEY.to_owned(), Some(r#"{"identity": "bob", "grants": {"chat": {}}}"#)),
        (KIOSK_KEY.to_owned(), None),
    ] {
        let response: Value = post(Some(credential), body).await.unwrap().json().await.unwrap();
        let token = response["token"].as_str().expect("minted").to_owned();
        must_not_appear.push(token.rsplit_once('.').unwrap().1.to_owned());
        must_not_appear.push(token.clone());
        minted.push(token);
    }

    let expired = sign_hs256(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &json!({"iss": SESSION_ISSUER, "aud": SESSION_AUDIENCE, "sub": "alice", "exp": 1}),
        SESSION_SECRET,
    );
    let forged = sign_hs256(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &json!({"iss": SESSION_ISSUER, "aud": SESSION_AUDIENCE, "sub": "alice", "exp": now() + 60}),
        "attacker-guess-secret-attacker-guess-secret",
    );
    let near_miss_key = format!("{}X", &BACKEND_KEY[..BACKEND_KEY.len() - 1]);
    must_not_appear.extend([expired.clone(), forged.clone(), near_miss_key.clone()]);
    let failures: Vec<(Option<String>, Option<&'static str>, u16)> = vec![
        (None, None, 401),
        (Some(expired), None, 401),
        (Some(forged), None, 401),
        (Some(near_miss_key), None, 401),
        (Some(session.clone()), Some("{"), 400),
        (Some(session.clone()), Some(r#"{"ttl": 0}"#), 400),
        (Some(session.clone()), Some(r#"{"ttl": 7200}"#), 403),
        (Some(session.clone()), Some(r#"{"identity": "bob"}"#), 403),
        (Some(session.clone()), Some(r#"{"grants": {"video": {"room": "user-bob"}}}"#), 403),
        (Some(BACKEND_KEY.to_owned()), Some(r#"{"identity": "a b", "grants": {"voice": {}}}"#), 400),
        (Some(BACKEND_KEY.to_owned()), Some(r#"{"grants": {"chat": {"service_sid": "IS1"}}}"#), 400),
    ];
    for (credential, body, status) in failures {
        assert_eq!(post(credential, body).await.unwrap().status(), status, "{body:?}");
    }
    let too_large = client
        .post(&url)
        .bearer_auth(&session)
        .header("content-type", "application/json")
        .body(vec![b' '; 20_000])
        .send();
    assert_eq!(too_large.await.unwrap().status(), 413);
    let not_json = client.post(&url).bearer_auth(&session).header("content-type", "text/plain").body("{}").send();
    assert_eq!(not_json.await.unwrap().status(), 415);

    let output = running.stop();
    assert!(output.contains("authentication failed"), "debug logging was on and the failures were logged");
    for secret in &must_not_appear {
        assert!(!output.contains(secret.as_str()), "a secret or token appears in the output: {}…", &secret[..8]);
    }

    let lines: Vec<Value> = output.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let audits: Vec<&Value> = lines.iter().filter(|l| l["target"] == "audit").collect();
    assert_eq!(audits.len(), minted.len(), "one audit line per minted token");
    for (audit, token) in audits.iter().zip(&minted) {
        let (_, payload) = decode_token(token);
        assert_eq!(audit["jti"], payload["jti"]);
        assert_eq!(audit["identity"], payload["grants"]["identity"]);
        assert_eq!(audit["key_sid"], KEY_SID);
        assert_eq!(audit["client_ip"], "127.0.0.1");
        assert!(audit["ttl"].is_u64() && audit["grants"].is_string() && audit["rule"].is_string());
        assert!(!audit["request_id"].as_str().unwrap().is_empty());
    }
    let answered: Vec<&Value> = lines.iter().filter(|l| l["message"] == "answered").collect();
    assert!(answered.len() >= 17, "every request was logged");
    for line in answered {
        assert!(!line["request_id"].as_str().unwrap_or("").is_empty(), "request id in {line}");
        assert!(line["status"].is_u64() && line["route"].is_string() && line["latency_us"].is_u64(), "{line}");
    }
}
