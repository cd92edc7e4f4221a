//! The wall clock jumping under a running server, as a bad NTP step or a VM migration does:
//! libfaketime (Debian's `libfaketime`, preloaded) offsets the wall clock by what a file says,
//! read on every call, and leaves the monotonic clock alone. Tokens follow the wall clock (it is
//! the only one Twilio shares), rate limits follow elapsed time (a jump neither refills nor
//! drains a quota), and nothing panics or stops.

use serde_json::json;

use crate::helpers::*;

fn libfaketime() -> String {
    let found = std::fs::read_dir("/usr/lib")
        .unwrap()
        .filter_map(|entry| Some(entry.ok()?.path().join("faketime/libfaketime.so.1")))
        .find(|path| path.exists());
    found.expect("libfaketime is not installed: run scripts/test, which installs it").display().to_string()
}

/// A session for `identity` valid from a minute before `now` to three hours after.
fn long_session(identity: &str) -> String {
    let now = now();
    let claims = json!({"iss": SESSION_ISSUER, "aud": SESSION_AUDIENCE, "sub": identity, "roles": ["user"],
        "iat": now - 60, "exp": now + 3 * 3600});
    sign_hs256(&json!({"alg": "HS256", "typ": "JWT"}), &claims, SESSION_SECRET)
}

#[tokio::test]
async fn a_wall_clock_jump_moves_token_times_but_not_rate_limits_and_stops_nothing() {
    let offset_file = std::env::temp_dir().join(format!("tokenmint-clock-offset-{}", std::process::id()));
    std::fs::write(&offset_file, "+0\n").unwrap();
    let mut env = test_env();
    env.extend(
        [
            ("LD_PRELOAD", libfaketime().as_str()),
            ("FAKETIME_TIMESTAMP_FILE", offset_file.to_str().unwrap()),
            ("FAKETIME_NO_CACHE", "1"),
            ("DONT_FAKE_MONOTONIC", "1"),
            ("TOKENMINT__RATE_LIMIT__PER_IDENTITY__PER_MINUTE", "1"),
            ("TOKENMINT__RATE_LIMIT__PER_IDENTITY__BURST", "3"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let server = start_binary("clock", &env);
    let client = reqwest::Client::new();
    let mint = |session: String| {
        let request = client.post(format!("http://{}/v1/tokens", server.addr)).bearer_auth(session);
        async move { request.send().await.unwrap() }
    };
    let issued_at = |body: serde_json::Value| {
        let (_, payload) = verify_token(body["token"].as_str().unwrap(), API_SECRET);
        payload["iat"].as_i64().unwrap()
    };

    // Before: bob spends his whole quota.
    let bob = long_session("bob");
    for _ in 0..3 {
        let response = mint(bob.clone()).await;
        assert_eq!(response.status(), 200);
        assert!((issued_at(response.json().await.unwrap()) - now() as i64).abs() <= 5, "iat is now");
    }
    assert_eq!(mint(bob.clone()).await.status(), 429);

    for (offset, seconds) in [("+2h", 7200), ("-1h", -3600)] {
        std::fs::write(&offset_file, format!("{offset}\n")).unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let response = mint(long_session(&format!("carol{seconds}"))).await;
        assert_eq!(response.status(), 200, "after a {offset} jump");
        let iat = issued_at(response.json().await.unwrap());
        assert!((iat - (now() as i64 + seconds)).abs() <= 5, "after {offset}, iat follows the wall clock");
        assert_eq!(mint(bob.clone()).await.status(), 429, "a {offset} jump does not refill a quota");
    }
    // A session that expired by the jumped clock is refused as expired.
    std::fs::write(&offset_file, "+4h\n").unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_problem(mint(long_session("dave")).await, 401, "expired").await;
    std::fs::write(&offset_file, "+0\n").unwrap();
    let output = server.stop();
    assert!(!output.contains("panicked"), "{output}");
    let _ = std::fs::remove_file(offset_file);
}
