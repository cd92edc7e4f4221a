//! OpenID Connect / JWKS providers through the real server, against a JWKS server of our own on
//! loopback that can rotate keys, fail, and count the fetches it sees. RFC 8725 is the
//! checklist for the attacks: each must end in 401 `invalid_token`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::helpers::jwks::*;
use crate::helpers::*;

async fn assert_refused(app: &TestApp, token: &str, why: &str) {
    let response = app.post_token(Some(token), None).await;
    assert_eq!(response.status(), 401, "{why}");
    let challenge = response.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.contains("error=\"invalid_token\""), "{why}: {challenge}");
    let problem: Value = response.json().await.unwrap();
    let detail = problem["detail"].as_str().unwrap().to_lowercase();
    for hint in ["kid", "key", "signature", "audience", "issuer", "algorithm"] {
        assert!(!detail.contains(hint), "{why}: the body gives no hint beyond RFC 6750: {detail}");
    }
}

#[tokio::test]
async fn tokens_signed_by_each_algorithm_are_accepted_with_nested_roles() {
    let (rsa, ec, ed) =
        (rsa_a(), key("ec-p256.pem", Algorithm::ES256, "ec"), key("ed25519.pem", Algorithm::EdDSA, "ed"));
    let idp = JwksServer::start(&[&rsa, &ec, &ed]).await;
    let app = spawn_app_configured(&provider_toml(&idp.base, ""), &[], true).await;
    for key in [&rsa, &ec, &ed] {
        let mut claims = claims(&idp.base, &format!("user-{}", key.kid));
        claims["realm_access"] = json!({"roles": ["user"]});
        let body = app.mint_ok(&sign(key, &claims), None).await;
        assert_eq!(body["identity"], format!("user-{}", key.kid));
    }
    assert_eq!(idp.served.fetches.load(Ordering::SeqCst), 1, "found by discovery, fetched once");
}

#[tokio::test]
async fn every_rfc_8725_attack_is_refused() {
    let (rsa, outsider) = (rsa_a(), key("rsa-outsider.pem", Algorithm::RS256, "rsa-a"));
    let idp = JwksServer::start(&[&rsa]).await;
    let app = spawn_app_configured(&provider_toml(&idp.base, ""), &[], true).await;
    let good = claims(&idp.base, "alice");

    // alg none: no signature at all.
    let none_header = URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "JWT"}).to_string());
    let payload = URL_SAFE_NO_PAD.encode(good.to_string());
    assert_refused(&app, &format!("{none_header}.{payload}."), "alg none").await;

    // Key confusion: HS256 "signed" with the provider's RSA public key as the secret.
    let public_pem = {
        let n = rsa.jwk["n"].as_str().unwrap();
        format!("-----BEGIN PUBLIC KEY-----\n{n}\n-----END PUBLIC KEY-----\n")
    };
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some(rsa.kid.clone());
    let confused = jsonwebtoken::encode(&hs, &good, &EncodingKey::from_secret(public_pem.as_bytes())).unwrap();
    assert_refused(&app, &confused, "HS256 with the public key as secret").await;
    let confused_jwk =
        jsonwebtoken::encode(&hs, &good, &EncodingKey::from_secret(rsa.jwk.to_string().as_bytes())).unwrap();
    assert_refused(&app, &confused_jwk, "HS256 with the JWK as secret").await;

    // A valid signature by a key outside the provider's set, under the provider's kid.
    assert_refused(&app, &sign(&outsider, &good), "key outside the set").await;

    let now = now();
    let with = |overrides: Value| {
        let mut c = good.clone();
        c.as_object_mut().unwrap().extend(overrides.as_object().unwrap().clone());
        sign(&rsa, &c)
    };
    assert_refused(&app, &with(json!({"exp": now - 120})), "expired beyond the leeway").await;
    assert_refused(&app, &with(json!({"nbf": now + 300})), "nbf beyond the leeway").await;
    assert_refused(&app, &with(json!({"aud": "someone-else"})), "wrong aud").await;
    assert_refused(&app, &with(json!({"iss": "https://evil.example"})), "wrong iss").await;
    let mut no_exp = good.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_refused(&app, &sign(&rsa, &no_exp), "missing exp").await;

    // Header fields pointing at an attacker's keys are ignored, and never fetched.
    for field in ["jku", "x5u"] {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("attacker".into());
        header.extras.insert(field, format!("{}/attacker-keys", idp.base));
        let token = jsonwebtoken::encode(&header, &good, &outsider.encoding).unwrap();
        assert_refused(&app, &token, field).await;
    }
    let mut embedded = Header::new(Algorithm::RS256);
    embedded.jwk = Some(serde_json::from_value(outsider.jwk.clone()).unwrap());
    assert_refused(&app, &jsonwebtoken::encode(&embedded, &good, &outsider.encoding).unwrap(), "embedded jwk").await;
    assert_eq!(idp.served.other_requests.load(Ordering::SeqCst), 0, "no jku/x5u was fetched");

    // A token over 8 KiB is refused unparsed.
    let mut huge = good.clone();
    huge["pad"] = "x".repeat(9 * 1024).into();
    assert_refused(&app, &sign(&rsa, &huge), "over 8 KiB").await;

    app.mint_ok(&sign(&rsa, &good), None).await;
}

#[tokio::test]
async fn a_kid_naming_another_providers_key_is_refused() {
    let (key_a, key_b) = (rsa_a(), key("rsa-b.pem", Algorithm::RS256, "rsa-b"));
    let (idp_a, idp_b) = (JwksServer::start(&[&key_a]).await, JwksServer::start(&[&key_b]).await);
    let config = provider_toml(&idp_a.base, "") + &provider_toml(&idp_b.base, "");
    let app = spawn_app_configured(&config, &[], true).await;
    app.mint_ok(&sign(&key_b, &claims(&idp_b.base, "bob")), None).await;
    assert_refused(&app, &sign(&key_b, &claims(&idp_a.base, "bob")), "B's key for A's issuer").await;
}

#[tokio::test]
async fn a_key_set_with_a_symmetric_key_never_verifies_with_it() {
    let rsa = rsa_a();
    let idp = JwksServer::start(&[&rsa]).await;
    let secret = "symmetric-secret-symmetric-secret-0123";
    idp.served
        .keys
        .write()
        .unwrap()
        .push(json!({"kty": "oct", "kid": "sym", "k": URL_SAFE_NO_PAD.encode(secret), "alg": "HS256"}));
    let app = spawn_app_configured(&provider_toml(&idp.base, ""), &[], true).await;
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("sym".into());
    let token =
        jsonwebtoken::encode(&header, &claims(&idp.base, "alice"), &EncodingKey::from_secret(secret.as_bytes()))
            .unwrap();
    assert_refused(&app, &token, "HS256 with the set's symmetric key").await;
}

#[tokio::test]
async fn a_burst_of_random_kids_causes_at_most_one_fetch_per_interval() {
    let rsa = rsa_a();
    let idp = JwksServer::start(&[&rsa]).await;
    let app = Arc::new(spawn_app_configured(&provider_toml(&idp.base, ""), &[], true).await);
    let after_start = idp.served.fetches.load(Ordering::SeqCst);
    let mut tasks = tokio::task::JoinSet::new();
    // The kid is looked up before any signature is checked, so the flood needs no real
    // signatures (signing 10,000 RSA tokens would dominate the test's time).
    let payload = URL_SAFE_NO_PAD.encode(claims(&idp.base, "alice").to_string());
    for worker in 0..50 {
        let (app, payload) = (app.clone(), payload.clone());
        tasks.spawn(async move {
            for i in 0..200 {
                let header = json!({"alg": "RS256", "typ": "JWT", "kid": format!("random-{worker}-{i}")});
                let token = format!(
                    "{}.{payload}.{}",
                    URL_SAFE_NO_PAD.encode(header.to_string()),
                    URL_SAFE_NO_PAD.encode([7u8; 256])
                );
                assert_eq!(app.post_token(Some(&token), None).await.status(), 401);
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let extra = idp.served.fetches.load(Ordering::SeqCst) - after_start;
    assert!(extra <= 1, "10,000 unknown kids caused {extra} fetches within one 30 s interval");
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_without_a_restart() {
    let (old, new) = (rsa_a(), key("rsa-b.pem", Algorithm::RS256, "rsa-b"));
    let idp = JwksServer::start(&[&old]).await;
    let app = spawn_app_configured(&provider_toml(&idp.base, "unknown_kid_refetch_secs = 1"), &[], true).await;
    app.mint_ok(&sign(&old, &claims(&idp.base, "alice")), None).await;
    idp.served.set(&[&old, &new]);
    // At most one fetch a second (unknown_kid_refetch_secs = 1), start-up's fetch included.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    app.mint_ok(&sign(&new, &claims(&idp.base, "alice")), None).await;
    idp.served.set(&[&new]);
    app.mint_ok(&sign(&new, &claims(&idp.base, "alice")), None).await;
}

#[tokio::test]
async fn minting_goes_on_from_cached_keys_while_the_provider_is_down() {
    let rsa = rsa_a();
    let idp = JwksServer::start(&[&rsa]).await;
    let extra = format!("jwks_uri = \"{}/jwks.json\"\nrefresh_min_secs = 1\nrefresh_max_secs = 1", idp.base);
    let app = spawn_app_configured(&provider_toml(&idp.base, &extra), &[], true).await;
    idp.served.failing.store(true, Ordering::SeqCst);
    let before = idp.served.fetches.load(Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(10);
    while idp.served.fetches.load(Ordering::SeqCst) < before + 2 {
        assert!(Instant::now() < deadline, "the refresh schedule did not run");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.mint_ok(&sign(&rsa, &claims(&idp.base, "alice")), None).await;
    assert_eq!(
        app.client.get(app.admin_url("/readyz")).send().await.unwrap().status(),
        200,
        "a held key set keeps readiness up"
    );
    let metrics = app.client.get(app.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(!metrics.contains("tokenmint_jwks_fetches_total{result=\"error\"} 0"), "failed fetches are counted");
}

/// One way for the provider to fail, applied to what it serves.
type Misbehaviour = dyn Fn(&Served);

/// Eight seconds of a provider that is down, slow or serving garbage in every way we know,
/// changing each second while its keys are refetched each second: every one of a steady stream
/// of fresh tokens (so none comes from the verified-token cache) is minted from the last good
/// keys, readiness stays up, and once the provider is back a rotated key is picked up.
#[tokio::test]
async fn a_long_provider_outage_of_every_kind_costs_no_token() {
    let (rsa, rotated) = (rsa_a(), key("rsa-b.pem", Algorithm::RS256, "rsa-b"));
    let idp = JwksServer::start(&[&rsa]).await;
    let extra = format!(
        "jwks_uri = \"{}/jwks.json\"\nrefresh_min_secs = 1\nrefresh_max_secs = 1\nfetch_timeout_ms = 300\nunknown_kid_refetch_secs = 1",
        idp.base
    );
    let app = spawn_app_configured(&provider_toml(&idp.base, &extra), &[], true).await;
    let outage: [(&str, &Misbehaviour); 8] = [
        ("500 with a non-JSON body", &|s| s.failing.store(true, Ordering::SeqCst)),
        ("200 with HTML", &|s| *s.garbage.write().unwrap() = Some("<html>Bad gateway</html>")),
        ("truncated JSON", &|s| *s.garbage.write().unwrap() = Some(r#"{"keys": [{"kty": "RSA", "n": "#)),
        ("keys not an array", &|s| *s.garbage.write().unwrap() = Some(r#"{"keys": "none"}"#)),
        ("an empty key set", &|s| *s.garbage.write().unwrap() = Some(r#"{"keys": []}"#)),
        ("only unusable keys", &|s| {
            *s.garbage.write().unwrap() = Some(r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#)
        }),
        ("slower than the fetch timeout", &|s| s.delay_ms.store(2_000, Ordering::SeqCst)),
        ("the JSON null", &|s| *s.garbage.write().unwrap() = Some("null")),
    ];
    let errors_before = metric_value(
        &app.client.get(app.admin_url("/metrics")).send().await.unwrap().text().await.unwrap(),
        "tokenmint_jwks_fetches_total{result=\"error\"}",
    );
    let mut minted = 0;
    for (what, misbehave) in outage {
        idp.served.failing.store(false, Ordering::SeqCst);
        idp.served.delay_ms.store(0, Ordering::SeqCst);
        *idp.served.garbage.write().unwrap() = None;
        misbehave(&idp.served);
        let stretch = Instant::now();
        while stretch.elapsed() < Duration::from_secs(1) {
            let token = sign(&rsa, &claims(&idp.base, &format!("user-{minted}")));
            let response = app.post_token(Some(&token), None).await;
            assert_eq!(response.status(), 200, "while the provider serves {what}");
            minted += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let ready = app.client.get(app.admin_url("/readyz")).send().await.unwrap().status();
        assert_eq!(ready, 200, "readiness while the provider serves {what}");
    }
    let metrics = app.client.get(app.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
    let errors = metric_value(&metrics, "tokenmint_jwks_fetches_total{result=\"error\"}") - errors_before;
    assert!(errors >= 4.0, "the failed fetches are counted: {errors}");
    // Back, with the key rotated: a token signed with the new key names an unknown kid, which
    // brings a refetch.
    idp.served.failing.store(false, Ordering::SeqCst);
    idp.served.delay_ms.store(0, Ordering::SeqCst);
    *idp.served.garbage.write().unwrap() = None;
    idp.served.set(&[&rotated]);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let response = app.post_token(Some(&sign(&rotated, &claims(&idp.base, "after"))), None).await;
        if response.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the rotated key was never picked up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("provider outage: {minted} tokens minted over 8 kinds of failure, {errors} failed fetches counted");
}

#[tokio::test]
async fn readiness_waits_for_a_first_key_set() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let extra = format!("jwks_uri = \"http://{closed}/jwks.json\"\nfetch_timeout_ms = 200");
    let app = spawn_app_configured(&provider_toml(&format!("http://{closed}"), &extra), &[], false).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let response = app.client.get(app.admin_url("/readyz")).send().await.unwrap();
    assert_problem(response, 503, "identity provider").await;
}

#[tokio::test]
async fn a_static_pem_key_with_a_tenant_claim_and_an_identity_template() {
    let (rsa, ec) = (rsa_a(), key("ec-p256.pem", Algorithm::ES256, "ec"));
    let issuer = "https://static.idp.example";
    let mut config = String::new();
    for (pem_file, iss) in [("rsa-a.pub.pem", issuer.to_owned()), ("ec-p256.pub.pem", format!("{issuer}/ec"))] {
        let pem = std::fs::read_to_string(repo_path(&format!("tests/fixtures/keys/{pem_file}"))).unwrap();
        config += &provider_toml(
            &iss,
            &format!(
                "public_key_pem = '''\n{pem}'''\ntenant_claim = \"tenant\"\nidentity_template = \"{{tenant}}:{{sub}}\""
            ),
        );
    }
    let app = spawn_app_configured(&config, &[], true).await;
    let mut claims = claims(issuer, "alice");
    claims["tenant"] = "acme".into();
    let unnamed = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &rsa.encoding).unwrap();
    assert_eq!(app.mint_ok(&unnamed, None).await["identity"], "acme:alice", "no kid needed with one static key");
    claims["iss"] = format!("{issuer}/ec").into();
    assert_eq!(app.mint_ok(&sign(&ec, &claims), None).await["identity"], "acme:alice", "an EC PEM key");
    claims.as_object_mut().unwrap().remove("tenant");
    assert_refused(&app, &sign(&ec, &claims), "the tenant claim is required when configured").await;
}

#[tokio::test]
async fn a_slow_provider_delays_only_unknown_kids_and_only_up_to_the_timeout() {
    let rsa = rsa_a();
    let idp = JwksServer::start(&[&rsa]).await;
    let extra = "fetch_timeout_ms = 300\nunknown_kid_refetch_secs = 1";
    let app = spawn_app_configured(&provider_toml(&idp.base, extra), &[], true).await;
    idp.served.delay_ms.store(5_000, Ordering::SeqCst);
    let started = Instant::now();
    app.mint_ok(&sign(&rsa, &claims(&idp.base, "alice")), None).await;
    assert!(started.elapsed() < Duration::from_millis(250), "a known kid never waits for the provider");
    let unknown = TestKey { kid: "not-yet-published".into(), ..key("rsa-b.pem", Algorithm::RS256, "x") };
    // Past unknown_kid_refetch_secs since start-up's fetch, so the unknown kid does refetch.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let started = Instant::now();
    assert_refused(&app, &sign(&unknown, &claims(&idp.base, "alice")), "unknown kid, provider too slow").await;
    assert!(started.elapsed() < Duration::from_secs(2), "bounded by fetch_timeout_ms: {:?}", started.elapsed());
    app.mint_ok(&sign(&rsa, &claims(&idp.base, "alice")), None).await;
}

#[tokio::test]
async fn refresh_follows_max_age_within_the_configured_bounds() {
    let rsa = rsa_a();
    let idp = JwksServer::start(&[&rsa]).await;
    idp.served.max_age_secs.store(1, Ordering::SeqCst);
    let extra = "refresh_min_secs = 1\nrefresh_max_secs = 3600";
    let _app = spawn_app_configured(&provider_toml(&idp.base, extra), &[], true).await;
    let started = Instant::now();
    while idp.served.fetches.load(Ordering::SeqCst) < 3 {
        assert!(started.elapsed() < Duration::from_secs(8), "max-age=1 should bring a refetch every second");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    idp.served.max_age_secs.store(3000, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let settled = idp.served.fetches.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    assert_eq!(idp.served.fetches.load(Ordering::SeqCst), settled, "max-age=3000 stops the refetching");
}

#[tokio::test]
async fn an_oversized_key_set_is_refused_and_the_last_good_one_kept() {
    let (old, new) = (rsa_a(), key("rsa-b.pem", Algorithm::RS256, "rsa-b"));
    let idp = JwksServer::start(&[&old]).await;
    let app = spawn_app_configured(&provider_toml(&idp.base, "unknown_kid_refetch_secs = 1"), &[], true).await;
    idp.served.set(&[&old, &new]);
    idp.served.padding.store(2 * 1024 * 1024, Ordering::SeqCst);
    assert_refused(&app, &sign(&new, &claims(&idp.base, "alice")), "the key set over 1 MiB is not read").await;
    app.mint_ok(&sign(&old, &claims(&idp.base, "alice")), None).await;
    idp.served.padding.store(0, Ordering::SeqCst);
    // An unknown kid refetches at most once a second (unknown_kid_refetch_secs = 1).
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    app.mint_ok(&sign(&new, &claims(&idp.base, "alice")), None).await;
}
