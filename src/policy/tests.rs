use super::*;
use crate::auth::Principal;
use crate::auth::PrincipalSource;
use crate::token::VideoGrant;
use serde::Deserialize;

const AP: &str = "AP11111111111111111111111111111111";
const IS_CHAT: &str = "IS33333333333333333333333333333333";

fn policy(toml_rules: &str) -> Policy {
    #[derive(Deserialize)]
    struct Wrapper {
        policy: PolicySettings,
    }
    let wrapper: Wrapper = toml_from_str(toml_rules);
    Policy::from_settings(&wrapper.policy, 3600, &us1(&["default", "eu", "us"])).expect("valid policy")
}

/// Accounts in us1, which has every product.
fn us1(names: &[&str]) -> Vec<crate::accounts::AccountOffer> {
    names.iter().map(|name| crate::accounts::AccountOffer::us1(name)).collect()
}

fn toml_from_str<T: serde::de::DeserializeOwned>(text: &str) -> T {
    config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .build()
        .and_then(config::Config::try_deserialize)
        .expect("parses")
}

fn user(identity: &str, roles: &[&str]) -> Principal {
    Principal {
        identity: identity.into(),
        subject: format!("sub-{identity}"),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        may_act_as: false,
        tenant: None,
        source: PrincipalSource::Session { issuer: "app".into() },
    }
}

fn request(json: &str) -> TokenRequest {
    serde_json::from_str(json).unwrap()
}

fn app_policy() -> Policy {
    policy(&format!(
        r#"
        [[policy.rules]]
        name = "users"
        roles = ["user"]
        max_ttl_secs = 3600
        defaults = ["video", "chat"]
        video = {{ rooms = ["standup", "user-{{identity}}", "team-*"], default_room = "user-{{identity}}" }}
        voice = {{ incoming = true, application_sid = "{AP}" }}
        chat = {{ service_sid = "{IS_CHAT}" }}

        [[policy.rules]]
        name = "admins"
        roles = ["admin"]
        max_ttl_secs = 86400
        video = {{ rooms = ["*"] }}
        "#
    ))
}

#[test]
fn an_empty_request_gets_the_rule_defaults_with_sids_filled_in() {
    let decision = app_policy().decide(&user("alice", &["user"]), &TokenRequest::default()).unwrap();
    assert_eq!(decision.rule, "users");
    assert_eq!(decision.spec.ttl_secs, 3600);
    assert_eq!(decision.spec.grants.video, Some(VideoGrant { room: Some("user-alice".into()) }));
    assert_eq!(decision.spec.grants.chat.unwrap().service_sid.as_deref(), Some(IS_CHAT));
    assert!(decision.spec.grants.voice.is_none(), "voice is not a default grant");
}

#[test]
fn rooms_must_match_a_pattern() {
    let policy = app_policy();
    let alice = user("alice", &["user"]);
    for room in ["standup", "user-alice", "team-red"] {
        let asked = request(&format!(r#"{{"grants": {{"video": {{"room": "{room}"}}}}}}"#));
        assert!(policy.decide(&alice, &asked).is_ok(), "{room}");
    }
    let denied = policy.decide(&alice, &request(r#"{"grants": {"video": {"room": "user-bob"}}}"#)).unwrap_err();
    assert!(matches!(denied, PolicyError::Forbidden(ref m) if m.contains("user-bob")), "{denied}");
}

#[test]
fn a_ttl_above_the_cap_is_refused_not_shortened() {
    let err = app_policy().decide(&user("alice", &["user"]), &request(r#"{"ttl": 7200}"#)).unwrap_err();
    assert_eq!(
        err,
        PolicyError::Forbidden("ttl 7200 exceeds the cap of 3600 seconds set by policy rule \"users\"".into())
    );
}

#[test]
fn the_default_ttl_is_the_lower_of_3600_and_the_cap() {
    let capped = policy(
        r#"
        [[policy.rules]]
        name = "short"
        roles = ["user"]
        max_ttl_secs = 600
        video = { rooms = ["*"] }
        "#,
    );
    assert_eq!(capped.decide(&user("a", &["user"]), &TokenRequest::default()).unwrap().spec.ttl_secs, 600);
}

#[test]
fn a_grant_outside_the_rule_is_refused() {
    let err = app_policy().decide(&user("alice", &["user"]), &request(r#"{"grants": {"sync": {}}}"#)).unwrap_err();
    assert!(matches!(err, PolicyError::Forbidden(ref m) if m.contains("sync grant")), "{err}");
}

#[test]
fn a_pinned_sid_refuses_any_other() {
    let other = "AP99999999999999999999999999999999";
    let asked = request(&format!(r#"{{"grants": {{"voice": {{"outgoing": {{"application_sid": "{other}"}}}}}}}}"#));
    assert!(matches!(app_policy().decide(&user("alice", &["user"]), &asked), Err(PolicyError::Forbidden(_))));
}

#[test]
fn params_need_the_rule_to_allow_them() {
    let asked = request(r#"{"grants": {"voice": {"outgoing": {"params": {"to": "+1555"}}}}}"#);
    let err = app_policy().decide(&user("alice", &["user"]), &asked).unwrap_err();
    assert!(matches!(err, PolicyError::Forbidden(ref m) if m.contains("params")), "{err}");
}

#[test]
fn only_trusted_principals_name_another_identity() {
    let asked = request(r#"{"identity": "bob"}"#);
    assert!(matches!(app_policy().decide(&user("alice", &["user"]), &asked), Err(PolicyError::Forbidden(_))));
    let backend = Principal { may_act_as: true, ..user("billing", &["user"]) };
    assert_eq!(app_policy().decide(&backend, &asked).unwrap().spec.identity, "bob");
    let own = request(r#"{"identity": "alice"}"#);
    assert!(app_policy().decide(&user("alice", &["user"]), &own).is_ok(), "naming yourself is harmless");
}

#[test]
fn identity_rules_give_400_for_a_named_identity_and_403_for_a_credential_one() {
    let backend = Principal { may_act_as: true, ..user("billing", &["user"]) };
    let asked = request(r#"{"identity": "bad identity", "grants": {"voice": {}}}"#);
    assert!(matches!(app_policy().decide(&backend, &asked), Err(PolicyError::Invalid(_))));
    let spaced = user("alice smith", &["user"]);
    let asked = request(r#"{"grants": {"voice": {}}}"#);
    assert!(matches!(app_policy().decide(&spaced, &asked), Err(PolicyError::Forbidden(_))));
}

#[test]
fn roles_without_rules_are_refused_and_later_rules_are_tried() {
    assert!(matches!(
        app_policy().decide(&user("a", &["guest"]), &TokenRequest::default()),
        Err(PolicyError::Forbidden(_))
    ));
    let both = user("root", &["user", "admin"]);
    let decision = app_policy().decide(&both, &request(r#"{"ttl": 86400, "grants": {"video": {}}}"#)).unwrap();
    assert_eq!(decision.rule, "admins");
    assert_eq!(decision.spec.grants.video, Some(VideoGrant { room: None }));
}

#[test]
fn malformed_sids_cannot_be_requested_and_empty_grants_are_400() {
    let policy = app_policy();
    let alice = user("alice", &["user"]);
    // A SID of the wrong shape or kind never becomes a request: it fails as the body is read.
    for bad in [r#""IS123""#, r#""AP11111111111111111111111111111111""#] {
        let body = format!(r#"{{"grants": {{"chat": {{"service_sid": {bad}}}}}}}"#);
        let err = serde_json::from_str::<TokenRequest>(&body).unwrap_err().to_string();
        assert!(err.starts_with("must be IS followed by 32 hexadecimal digits"), "{err}");
    }
    assert!(matches!(policy.decide(&alice, &request(r#"{"grants": {}}"#)), Err(PolicyError::Invalid(_))));
}

#[test]
fn configuration_problems_are_all_reported() {
    let settings: PolicySettings = toml_from_str::<std::collections::HashMap<String, PolicySettings>>(
        r#"
        [policy]
        [[policy.rules]]
        name = "broken"
        roles = []
        max_ttl_secs = 0
        defaults = ["sync"]
        video = { rooms = ["team-*"] }
        chat = { service_sid = "IS1" }
        "#,
    )
    .remove("policy")
    .unwrap();
    let problems = Policy::from_settings(&settings, 3600, &us1(&["default"])).unwrap_err();
    for expected in ["roles is empty", "max_ttl_secs", "defaults names Sync", "chat.service_sid"] {
        assert!(problems.iter().any(|p| p.contains(expected)), "{expected} in {problems:?}");
    }
}

#[test]
fn the_deny_list_refuses_identities_and_subjects_before_any_rule() {
    let policy = policy(
        r#"
        [policy.deny]
        identities = ["mallory"]
        subjects = ["sub-eve", "kiosk"]
        [[policy.rules]]
        name = "users"
        roles = ["user"]
        video = { rooms = ["*"] }
        "#,
    );
    let empty = request("{}");
    assert!(policy.decide(&user("alice", &["user"]), &empty).is_ok());
    assert_eq!(policy.decide(&user("mallory", &["user"]), &empty), Err(PolicyError::Denied(DenyList::Identity)));
    assert_eq!(policy.decide(&user("eve", &["user"]), &empty), Err(PolicyError::Denied(DenyList::Subject)));
    // A backend acting for a denied identity is refused too; its own subject decides first.
    let backend = Principal { may_act_as: true, ..user("billing", &["user"]) };
    assert_eq!(
        policy.decide(&backend, &request(r#"{"identity": "mallory"}"#)),
        Err(PolicyError::Denied(DenyList::Identity))
    );
    let kiosk = Principal { subject: "kiosk".into(), ..user("kiosk", &["user"]) };
    assert_eq!(policy.decide(&kiosk, &empty), Err(PolicyError::Denied(DenyList::Subject)));
    // A role with no rule still gets the deny answer first: the operator's block is what matters.
    assert_eq!(policy.decide(&user("mallory", &["guest"]), &empty), Err(PolicyError::Denied(DenyList::Identity)));
}

#[test]
fn a_rule_mints_for_its_account_or_the_one_the_tenant_names() {
    let policy = policy(
        r#"
        [[policy.rules]]
        name = "eu-only"
        roles = ["eu"]
        accounts = ["eu"]
        video = { rooms = ["*"] }
        [[policy.rules]]
        name = "by-tenant"
        roles = ["tenant"]
        accounts = ["default", "us"]
        video = { rooms = ["*"] }
        [[policy.rules]]
        name = "plain"
        roles = ["user"]
        video = { rooms = ["*"] }
        "#,
    );
    let empty = request("{}");
    assert_eq!(policy.decide(&user("a", &["user"]), &empty).unwrap().account, "default");
    assert_eq!(policy.decide(&user("a", &["eu"]), &empty).unwrap().account, "eu");
    let tenant = |t: Option<&str>| Principal { tenant: t.map(str::to_owned), ..user("a", &["tenant"]) };
    assert_eq!(policy.decide(&tenant(Some("us")), &empty).unwrap().account, "us");
    assert_eq!(policy.decide(&tenant(Some("default")), &empty).unwrap().account, "default");
    // A tenant the rule does not name, or none: never another account.
    for t in [Some("elsewhere"), None] {
        let refused = policy.decide(&tenant(t), &empty).unwrap_err();
        assert!(matches!(&refused, PolicyError::Forbidden(m) if m.contains("names none of them")), "{refused:?}");
    }
    // A tenant naming a configured account that the rule does not mint for: refused, naming
    // both, never served from the rule's own account.
    let refused = policy.decide(&tenant(Some("eu")), &empty).unwrap_err();
    assert!(
        matches!(&refused, PolicyError::Forbidden(m) if m.contains("\"eu\"") && m.contains("by-tenant")),
        "{refused:?}"
    );
    let plain_eu = Principal { tenant: Some("eu".into()), ..user("a", &["user"]) };
    let refused = policy.decide(&plain_eu, &empty).unwrap_err();
    assert!(
        matches!(&refused, PolicyError::Forbidden(m) if m.contains("\"eu\"") && m.contains("plain")),
        "{refused:?}"
    );
    // A tenant that is no account name (an organisation id, say) leaves a one-account rule alone.
    let acme = Principal { tenant: Some("acme".into()), ..user("a", &["user"]) };
    assert_eq!(policy.decide(&acme, &empty).unwrap().account, "default");
    assert!(policy.tenant_warning("k", &["user".into()], Some("eu")).is_some());
    assert!(policy.tenant_warning("k", &["tenant".into()], Some("us")).is_none());
    assert!(policy.tenant_warning("k", &["tenant".into()], None).is_some());
}

#[test]
fn a_rule_may_only_name_configured_accounts() {
    let settings: PolicySettings = toml_from_str::<std::collections::HashMap<String, PolicySettings>>(
        r#"
        [policy]
        [[policy.rules]]
        name = "apac"
        roles = ["user"]
        accounts = ["apac"]
        video = { rooms = ["*"] }
        "#,
    )
    .remove("policy")
    .unwrap();
    let problems = Policy::from_settings(&settings, 3600, &us1(&["default", "eu"])).unwrap_err();
    assert!(problems[0].contains("\"apac\", which is not configured") && problems[0].contains("TWILIO_APAC_"));
}

mod properties {
    //! Any request the policy allows yields a token that verifies and carries exactly what was
    //! asked for (or the rule's defaults); no request outside the policy yields a token. The
    //! oracle below restates the "users" rule of `app_policy` independently of the code.

    use super::*;
    use crate::accounts::TwilioCredentials;
    use crate::token::TokenSettings;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use hmac::{Hmac, Mac};
    use proptest::prelude::*;
    use serde_json::Value;

    const SECRET: &str = "property-test-secret-0123456789abcdef";
    const ROOMS: [&str; 8] = ["standup", "user-alice", "user-bob", "team-x", "team-", "other", "*", "standup2"];

    /// What the "users" rule allows, restated: rooms standup, user-alice (alice's own) and
    /// team-*; ttl up to 3600, and at least 180 with chat (the defaults have chat); video, voice
    /// and chat but never sync; at least one grant.
    fn allowed(ttl: Option<u32>, grants: &Option<(Option<Option<&str>>, bool, bool, bool)>) -> bool {
        let has_chat = grants.as_ref().is_none_or(|(_, _, chat, _)| *chat);
        let ttl_ok = ttl.is_none_or(|t| t <= 3600 && (!has_chat || t >= 180));
        let grants_ok = match grants {
            None => true,
            Some((video, voice, chat, sync)) => {
                let room_ok = match video {
                    Some(Some(room)) => *room == "standup" || *room == "user-alice" || room.starts_with("team-"),
                    _ => true,
                };
                room_ok && !sync && (video.is_some() || *voice || *chat)
            }
        };
        ttl_ok && grants_ok
    }

    fn verify(token: &str) -> Value {
        let (message, signature) = token.rsplit_once('.').unwrap();
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(message.as_bytes());
        mac.verify_slice(&URL_SAFE_NO_PAD.decode(signature).unwrap()).expect("the signature verifies");
        let payload = message.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn a_token_exists_exactly_when_the_policy_allows_and_carries_what_was_asked(
            ttl in proptest::option::of(1u32..=7200),
            grants in proptest::option::of((
                proptest::option::of(proptest::option::of(proptest::sample::select(ROOMS.to_vec()))),
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
            )),
        ) {
            let mut body = serde_json::Map::new();
            if let Some(ttl) = ttl {
                body.insert("ttl".into(), ttl.into());
            }
            if let Some((video, voice, chat, sync)) = &grants {
                let mut g = serde_json::Map::new();
                if let Some(room) = video {
                    g.insert("video".into(), room.map_or(serde_json::json!({}), |r| serde_json::json!({"room": r})));
                }
                if *voice { g.insert("voice".into(), serde_json::json!({})); }
                if *chat { g.insert("chat".into(), serde_json::json!({})); }
                if *sync { g.insert("sync".into(), serde_json::json!({})); }
                body.insert("grants".into(), Value::Object(g));
            }
            let request: TokenRequest = serde_json::from_value(Value::Object(body)).unwrap();
            let decision = app_policy().decide(&user("alice", &["user"]), &request);
            prop_assert_eq!(decision.is_ok(), allowed(ttl, &grants), "{:?} -> {:?}", request, decision);
            let Ok(decision) = decision else { return Ok(()) };

            let credentials = TwilioCredentials {
                account_sid: crate::sid::Sid::parse("AC0123456789abcdef0123456789abcdef").unwrap(),
                api_key_sid: crate::sid::Sid::parse("SKfedcba9876543210fedcba9876543210").unwrap(),
                api_secret: SECRET.to_owned().into(),
            };
            let settings = TokenSettings { default_ttl_secs: 3600, region: None, nbf_backdate_secs: None, products: None };
            let minted = credentials.minter(&settings).mint(&decision.spec, 1_800_000_000).unwrap();
            let payload = verify(secrecy::ExposeSecret::expose_secret(&minted.token));
            let carried = payload["grants"].as_object().unwrap();
            let mut names: Vec<&str> = carried.keys().map(String::as_str).filter(|k| *k != "identity").collect();
            names.sort_unstable();
            let expected: Vec<&str> = match &grants {
                None => vec!["chat", "video"],
                Some((video, voice, chat, _)) => {
                    let mut e = Vec::new();
                    if *chat { e.push("chat"); }
                    if video.is_some() { e.push("video"); }
                    if *voice { e.push("voice"); }
                    e
                }
            };
            prop_assert_eq!(names, expected);
            prop_assert_eq!(&payload["grants"]["identity"], "alice");
            prop_assert_eq!(payload["exp"].as_u64().unwrap() - payload["iat"].as_u64().unwrap(), u64::from(ttl.unwrap_or(3600)));
            if let Some(room) = payload["grants"]["video"]["room"].as_str() {
                let asked = grants.as_ref().and_then(|g| g.0).flatten();
                prop_assert_eq!(room, asked.unwrap_or("user-alice"));
            }
            if carried.contains_key("chat") {
                prop_assert_eq!(&payload["grants"]["chat"]["service_sid"], IS_CHAT);
            }
        }
    }
}

#[test]
fn a_default_room_made_from_a_long_identity_is_refused_not_minted() {
    let policy = app_policy();
    // 123 letters make "user-" + identity 128 characters: the longest room Twilio accepts.
    let fits = "a".repeat(123);
    let decision = policy.decide(&user(&fits, &["user"]), &request(r#"{"grants": {"video": {}}}"#)).unwrap();
    assert_eq!(decision.spec.grants.video.unwrap().room.unwrap().chars().count(), 128);
    let long = "a".repeat(124);
    let refused = policy.decide(&user(&long, &["user"]), &request(r#"{"grants": {"video": {}}}"#)).unwrap_err();
    assert!(matches!(&refused, PolicyError::Forbidden(m) if m.contains("default room")), "{refused:?}");
}

#[test]
fn a_default_room_that_can_never_be_valid_is_a_configuration_error() {
    #[derive(Deserialize)]
    struct Wrapper {
        policy: PolicySettings,
    }
    let long = "r".repeat(130);
    let wrapper: Wrapper = toml_from_str(&format!(
        "[[policy.rules]]\nname = \"r\"\nroles = [\"user\"]\nvideo = {{ rooms = [\"*\"], default_room = \"{long}-{{identity}}\" }}\n"
    ));
    let problems = Policy::from_settings(&wrapper.policy, 3600, &us1(&["default"])).unwrap_err();
    assert!(problems[0].contains("video.default_room is not a valid room name"), "{problems:?}");
}

#[test]
fn an_identity_with_a_newline_gets_no_grant_at_all() {
    let policy = app_policy();
    for body in [r#"{"grants": {"chat": {}}}"#, r#"{"grants": {"video": {"room": "standup"}}}"#, "{}"] {
        let refused = policy.decide(&user("alice\nINFO forged", &["user"]), &request(body)).unwrap_err();
        assert!(matches!(&refused, PolicyError::Forbidden(m) if m.contains("control character")), "{refused:?}");
    }
}
