//! Tokens Twilio accepts when the client connects, not only when they are minted: Voice
//! identities in Twilio's alphabet (or encoded into it), ttl floors and per-grant defaults,
//! products per region, push credentials per platform, and the region in the answer.

use serde_json::{Value, json};

use crate::helpers::*;

const CR_IOS: &str = "CR1111111111111111111111111111aaaa";
const CR_IOS_SANDBOX: &str = "CR1111111111111111111111111111bbbb";
const CR_ANDROID: &str = "CR1111111111111111111111111111cccc";
const EU_ACCOUNT: &str = "AC99999999999999999999999999999999";
const EU_KEY: &str = "SK88888888888888888888888888888888";
const EU_SECRET: &str = "eu-secret-never-logged-conformance";

/// Rules beside `config/test.toml`'s: callers get voice-safe identities, apps choose push
/// credentials by platform, and the ttl defaults differ per grant.
const RULES: &str = r#"
[[policy.rules]]
name = "callers"
roles = ["caller"]
identity_encoding = "voice_safe"
max_ttl_secs = 86400
video = { rooms = ["*"], default_ttl_secs = 14400 }
voice = { incoming = true, application_sid = "AP11111111111111111111111111111111", default_ttl_secs = 60 }
chat = { service_sid = "IS33333333333333333333333333333333", default_ttl_secs = 600 }

[[policy.rules]]
name = "mobile"
roles = ["mobile"]
voice = { incoming = true, push_credentials = { ios = "CR1111111111111111111111111111aaaa", ios_sandbox = "CR1111111111111111111111111111bbbb", android = "CR1111111111111111111111111111cccc" } }
chat = { service_sid = "IS33333333333333333333333333333333", push_credentials = { android = "CR1111111111111111111111111111cccc" } }

[[policy.rules]]
name = "unchecked"
roles = ["unchecked"]
voice = { incoming = true, allow_unsafe_identity = true }
"#;

fn grants_of(minted: &Value) -> Value {
    decode_token(minted["token"].as_str().unwrap()).1["grants"].clone()
}

/// Twilio's Access Token docs: a Voice identity holds only letters, digits and `_`, at most
/// 121 characters; anything else fails with error 31105 when the call connects.
#[tokio::test]
async fn voice_identities_outside_twilios_alphabet_get_no_voice_grant_and_the_refusal_names_the_fix() {
    let app = spawn_app_configured(RULES, &[], true).await;
    for identity in ["alice@example.com", "auth0|5f7c1e", "Zoë", "a b", &"a".repeat(122)] {
        let user = session_token(identity, &["user"]);
        let refused = app.post_token(Some(&user), Some(json!({"grants": {"voice": {}}}))).await;
        let problem = assert_problem(refused, 403, "letters, digits and _").await;
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains("31105") && detail.contains("identity_encoding = \"voice_safe\""), "{detail}");
        assert!(detail.contains("policy rule \"users\"") && detail.contains("allow_unsafe_identity"), "{detail}");
        // The same identity is fine for the grants that take it.
        if identity.len() < 100 {
            app.mint_ok(&user, Some(json!({"grants": {"chat": {}}}))).await;
        }
    }
    let fine = app.mint_ok(&session_token("alice_01", &["user"]), Some(json!({"grants": {"voice": {}}}))).await;
    assert_eq!(grants_of(&fine)["identity"], "alice_01");
    // A backend naming such an identity made a mistake it can fix: 400.
    let named =
        app.post_token(Some(BACKEND_KEY), Some(json!({"identity": "bob@example.com", "grants": {"voice": {}}})));
    assert_problem(named.await, 400, "letters, digits and _").await;
    // The operator's explicit choice passes it on.
    let unchecked = app.mint_ok(&session_token("alice@example.com", &["unchecked"]), None).await;
    assert_eq!(grants_of(&unchecked)["identity"], "alice@example.com");
}

#[tokio::test]
async fn a_voice_safe_rule_gives_one_user_one_twilio_identity_across_tokens_and_grants() {
    let config = std::env::temp_dir().join(format!("tokenmint-voice-safe-{}.toml", std::process::id()));
    std::fs::write(&config, std::fs::read_to_string(repo_path("config/test.toml")).unwrap() + RULES).unwrap();
    let mut command = binary();
    command.args(["serve", "--config", config.to_str().unwrap()]);
    let running = start_command("voice-safe", command, &test_env());
    let client = reqwest::Client::new();
    let caller = session_token("alice@example.com", &["caller"]);
    let mut identities = Vec::new();
    for body in [json!({"grants": {"voice": {}}}), json!({"grants": {"chat": {}}}), json!({"grants": {"video": {}}})] {
        let response = post_token(&client, running.addr, Some(&caller), Some(body)).await;
        assert_eq!(response.status(), 200);
        let minted: Value = response.json().await.unwrap();
        assert_eq!(minted["identity"], grants_of(&minted)["identity"], "the answer names the identity minted");
        identities.push(minted["identity"].as_str().unwrap().to_owned());
    }
    // SHA-256("alice@example.com") begins ff8d9819fc0e12bf0d24: base32 76gzqgp4byjl6dje.
    assert_eq!(identities, vec!["alice_example_com__76gzqgp4byjl6dje"; 3]);
    // Another e-mail with the same readable part is another identity.
    let other = post_token(&client, running.addr, Some(&session_token("alice.example@com", &["caller"])), None).await;
    let other: Value = other.json().await.unwrap();
    assert!(other["identity"].as_str().unwrap().starts_with("alice_example_com__"), "{other}");
    assert_ne!(other["identity"], identities[0]);
    // A safe identity stays readable as it is.
    let plain = post_token(&client, running.addr, Some(&session_token("bob_7", &["caller"])), None).await;
    assert_eq!(plain.json::<Value>().await.unwrap()["identity"], "bob_7");

    let output = running.stop();
    let audits = audit_records(&output, "token minted");
    let encoded = audits.iter().find(|a| a["identity"] == identities[0]).expect("an audit line per token");
    assert_eq!(encoded["original_identity"], "alice@example.com", "{encoded}");
    let plain = audits.iter().find(|a| a["identity"] == "bob_7").unwrap();
    assert!(plain.get("original_identity").is_none(), "{plain}");
}

/// Conversations SDKs warn three minutes before a token expires, so a chat token shorter than
/// that leaves the client disconnected; video rooms outlast an hour, so video needs its own
/// default.
#[tokio::test]
async fn ttls_have_per_grant_defaults_and_chat_has_a_three_minute_floor() {
    let app = spawn_app_configured(RULES, &[], true).await;
    let caller = session_token("carol", &["caller"]);
    let ttl = |body: Value| {
        let app = &app;
        let caller = caller.clone();
        async move { app.mint_ok(&caller, Some(body)).await["ttl"].as_u64().unwrap() }
    };
    assert_eq!(ttl(json!({"grants": {"video": {}}})).await, 14400);
    assert_eq!(ttl(json!({"grants": {"chat": {}}})).await, 600);
    assert_eq!(ttl(json!({"grants": {"voice": {}}})).await, 60);
    // Several grants: the shortest default, never under the longest floor among them.
    assert_eq!(ttl(json!({"grants": {"video": {}, "chat": {}}})).await, 600);
    assert_eq!(ttl(json!({"grants": {"voice": {}, "chat": {}}})).await, 180);
    assert_eq!(ttl(json!({"grants": {"voice": {}, "video": {}}})).await, 60);
    // An asked ttl under a floor is the client's mistake, named.
    let short = app.post_token(Some(&caller), Some(json!({"ttl": 179, "grants": {"chat": {}, "video": {}}}))).await;
    assert_problem(short, 400, "ttl 179 is under 180 seconds, the floor for chat tokens").await;
    assert_eq!(ttl(json!({"ttl": 180, "grants": {"chat": {}}})).await, 180);
    assert_eq!(ttl(json!({"ttl": 30, "grants": {"voice": {}}})).await, 30);
    // The users rule's defaults (video and chat) with no ttl: token.default_ttl_secs.
    let user = session_token("dave", &["user"]);
    assert_eq!(app.mint_ok(&user, None).await["ttl"], 3600);
    let short = app.post_token(Some(&user), Some(json!({"ttl": 60}))).await;
    assert_problem(short, 400, "the floor for chat tokens").await;
}

#[test]
fn check_config_refuses_ttls_under_a_floor_with_one_sentence_each() {
    let extra = r#"
[[policy.rules]]
name = "short-chat"
roles = ["a"]
chat = { service_sid = "IS33333333333333333333333333333333", default_ttl_secs = 60 }

[[policy.rules]]
name = "capped"
roles = ["b"]
max_ttl_secs = 120
chat = { service_sid = "IS33333333333333333333333333333333" }

[[policy.rules]]
name = "too-long"
roles = ["c"]
max_ttl_secs = 600
video = { rooms = ["*"], default_ttl_secs = 3600 }
"#;
    let (ok, _, stderr) = check_config_with(extra, &[]);
    assert!(!ok);
    for expected in [
        "(short-chat): chat.default_ttl_secs (60) is under 180 seconds, the floor for chat tokens",
        "(capped): max_ttl_secs (120) is under 180 seconds, the floor for chat tokens",
        "(too-long): video.default_ttl_secs (3600) is over the rule's max_ttl_secs (600)",
    ] {
        assert_eq!(stderr.matches(expected).count(), 1, "{expected:?} once in {stderr}");
    }
    // token.default_ttl_secs under the floor, for a chat rule without its own default.
    let (ok, _, stderr) = check_config_with("", &[("TOKENMINT__TOKEN__DEFAULT_TTL_SECS", "120")]);
    assert!(!ok);
    assert!(stderr.contains("(users): chat tokens would default to token.default_ttl_secs (120)"), "{stderr}");
}

/// An API key works only in its own region, and Video and Sync exist in US1 only (error 51007:
/// a Video key outside US1).
#[test]
fn a_rule_that_could_sign_a_product_its_accounts_region_lacks_is_refused_until_the_operator_lists_it() {
    let rule = r#"
[[policy.rules]]
name = "eu-video"
roles = ["eu"]
accounts = ["eu"]
video = { rooms = ["*"] }
voice = { incoming = true }
"#;
    let eu =
        [("TWILIO_EU_ACCOUNT_SID", EU_ACCOUNT), ("TWILIO_EU_API_KEY", EU_KEY), ("TWILIO_EU_API_SECRET", EU_SECRET)];
    let check = |accounts: &str| check_config_with(&format!("{accounts}{rule}"), &eu);
    let (ok, _, stderr) = check("\n[accounts.eu]\nregion = \"ie1\"\n");
    assert!(!ok);
    let sentence = "policy.rules[3] (eu-video): its video grant would be signed by account \"eu\" in region ie1, where Twilio does not offer video (Twilio error 51007 when the client connects)";
    assert_eq!(stderr.matches(sentence).count(), 1, "{stderr}");
    assert!(stderr.contains("list it in accounts.eu.products"), "{stderr}");
    assert!(!stderr.contains("its voice grant"), "voice exists in ie1: {stderr}");
    // Video and voice in AU1: only voice exists there.
    let (ok, _, stderr) = check("\n[accounts.eu]\nregion = \"au1\"\n");
    assert!(!ok && stderr.contains("in region au1, where Twilio does not offer video"), "{stderr}");
    // A region the table lacks needs its products listed.
    let (ok, _, stderr) = check("\n[accounts.eu]\nregion = \"jp1\"\n");
    assert!(!ok && stderr.contains("accounts.eu.region \"jp1\" is not in tokenmint's table"), "{stderr}");
    // The operator says Twilio now offers Video in IE1: accepted, and check-config shows it.
    let (ok, stdout, stderr) =
        check("\n[accounts.eu]\nregion = \"ie1\"\nproducts = [\"voice\", \"video\", \"chat\", \"task_router\"]\n");
    assert!(ok, "{stderr}");
    assert!(stdout.contains("region ie1 (voice, video, chat, task_router)"), "{stdout}");
    // Restricted keys cannot sign Access Tokens and cannot be told apart offline: said once.
    assert_eq!(stdout.matches("Restricted key (error 20160)").count(), 1, "{stdout}");
    // The default account's region is checked the same way.
    let (ok, _, stderr) = check_config_with("", &[("TOKENMINT__TOKEN__REGION", "ie1")]);
    assert!(!ok && stderr.contains("(users): its video grant would be signed by account \"default\" in region ie1"));
    assert!(stderr.contains("list it in token.products"), "{stderr}");
}

#[tokio::test]
async fn push_credentials_are_chosen_by_platform_so_clients_never_name_a_sid() {
    let app = spawn_app_configured(RULES, &[], true).await;
    let phone = session_token("pat", &["mobile"]);
    let push = |minted: &Value, grant: &str| grants_of(minted)[grant]["push_credential_sid"].clone();
    for (platform, sid) in [("ios", CR_IOS), ("ios_sandbox", CR_IOS_SANDBOX), ("android", CR_ANDROID)] {
        let minted = app.mint_ok(&phone, Some(json!({"platform": platform, "grants": {"voice": {}}}))).await;
        assert_eq!(push(&minted, "voice"), sid, "{platform}");
    }
    let both = app.mint_ok(&phone, Some(json!({"platform": "android", "grants": {"voice": {}, "chat": {}}}))).await;
    assert_eq!((push(&both, "voice"), push(&both, "chat")), (json!(CR_ANDROID), json!(CR_ANDROID)));
    // A platform the rule lacks: 403 naming it; one nobody knows: 400.
    let web = app.post_token(Some(&phone), Some(json!({"platform": "web", "grants": {"voice": {}}}))).await;
    assert_problem(web, 403, "has no voice push credential for platform web").await;
    let ios_chat = app.post_token(Some(&phone), Some(json!({"platform": "ios", "grants": {"chat": {}}}))).await;
    assert_problem(ios_chat, 403, "has no chat push credential for platform ios").await;
    let unknown = app.post_token(Some(&phone), Some(json!({"platform": "windows"}))).await;
    assert_problem(unknown, 400, "platform: unknown variant `windows`").await;
    // The platform decides; a client naming a SID as well is told to choose.
    let body = json!({"platform": "ios", "grants": {"voice": {"push_credential_sid": CR_ANDROID}}});
    assert_problem(app.post_token(Some(&phone), Some(body)).await, 400, "name the platform or").await;
    // Without a platform: no push credential, and none may be named.
    let plain = app.mint_ok(&phone, Some(json!({"grants": {"voice": {}}}))).await;
    assert!(grants_of(&plain)["voice"].get("push_credential_sid").is_none());

    // The token exchange takes the platform too.
    let pairs = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
        ("subject_token", phone.as_str()),
        ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
        ("scope", "voice"),
        ("platform", "ios_sandbox"),
    ];
    let exchanged: Value = exchange(&app, form(&pairs)).await.json().await.unwrap();
    let token = exchanged["access_token"].as_str().expect("exchanged");
    assert_eq!(decode_token(token).1["grants"]["voice"]["push_credential_sid"], CR_IOS_SANDBOX);
    let mut bad = pairs;
    bad[4] = ("platform", "blackberry");
    let refused: Value = exchange(&app, form(&bad)).await.json().await.unwrap();
    assert_eq!(refused["error"], "invalid_request");
    assert!(refused["error_description"].as_str().unwrap().contains("ios, ios_sandbox, android, web"), "{refused}");
}

#[test]
fn a_rule_maps_platforms_or_pins_one_credential_never_both() {
    let extra = r#"
[[policy.rules]]
name = "both"
roles = ["x"]
voice = { incoming = true, push_credential_sid = "*", push_credentials = { ios = "CR1111111111111111111111111111aaaa", android = "CR123" } }
"#;
    let (ok, _, stderr) = check_config_with(extra, &[]);
    assert!(!ok);
    assert!(
        stderr.contains("(both): set voice.push_credential_sid (one for every platform) or voice.push_credentials")
    );
    assert!(stderr.contains("(both): voice.push_credentials.android must be CR followed by 32 hexadecimal digits"));
}

#[test]
fn tokenmint_mint_takes_the_platform_too() {
    let config = std::env::temp_dir().join(format!("tokenmint-mint-platform-{}.toml", std::process::id()));
    std::fs::write(&config, std::fs::read_to_string(repo_path("config/test.toml")).unwrap() + RULES).unwrap();
    let env = test_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let config = config.to_str().unwrap();
    let args = ["mint", "--config", config, "--identity", "pat", "--role", "mobile", "--grants", r#"{"voice":{}}"#];
    let (ok, stdout, stderr) = run_binary(&[&args[..], &["--platform", "android"]].concat(), &env);
    assert!(ok, "{stderr}");
    let grants = decode_token(stdout.trim()).1["grants"].clone();
    assert_eq!(grants["voice"]["push_credential_sid"], CR_ANDROID);
    let (ok, _, stderr) = run_binary(&[&args[..], &["--platform", "symbian"]].concat(), &env);
    assert!(!ok && stderr.contains("--platform must be one of ios, ios_sandbox, android, web"), "{stderr}");
}

/// An issuer prefix like `app:` keeps two issuers' users apart, and puts every one of them
/// outside the Voice alphabet: check-config says so before the first call fails.
#[test]
fn check_config_warns_when_an_issuer_prefix_bars_every_user_from_voice() {
    let config = |prefix: &str, encoding: &str| {
        let path =
            std::env::temp_dir().join(format!("tokenmint-voice-prefix-{}-{}.toml", std::process::id(), unique()));
        let text = format!(
            r#"
[[auth.sessions]]
issuer = "https://app.test"
audiences = ["tokenmint-test"]
secret_env = "TEST_SESSION_SECRET"
default_roles = ["user"]
identity_prefix = "{prefix}"

[[policy.rules]]
name = "callers"
roles = ["user"]
identity_encoding = "{encoding}"
voice = {{ incoming = true }}
"#
        );
        std::fs::write(&path, text).unwrap();
        path
    };
    let env = test_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let check = |path: std::path::PathBuf| run_binary(&["check-config", "--config", path.to_str().unwrap()], &env);
    let (ok, stdout, stderr) = check(config("app:", "as_is"));
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("warning: policy rule \"callers\" gives voice grants to identities as they are, and every identity from https://app.test begins \"app:\""),
        "{stdout}"
    );
    for (prefix, encoding) in [("app_", "as_is"), ("app:", "voice_safe")] {
        let (ok, stdout, stderr) = check(config(prefix, encoding));
        assert!(ok && !stdout.contains("gives voice grants"), "{prefix} {encoding}: {stdout}{stderr}");
    }
}
