//! A real OpenID Connect provider on loopback (the PyPI package `oidc-provider-mock`, installed
//! into `.venv` by `scripts/test`): tokenmint finds its keys by discovery and accepts the ID
//! token it issues through a real authorization-code flow.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::*;

const CLIENT_ID: &str = "tokenmint-app";
const REDIRECT_URI: &str = "http://127.0.0.1/callback";

struct MockProvider {
    base: String,
    child: Child,
    client: reqwest::Client,
}

impl Drop for MockProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn form(pairs: &[(&str, &str)]) -> String {
    let encode = |s: &str| {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    pairs.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&")
}

impl MockProvider {
    async fn start() -> Self {
        let python = test_python();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(python)
            .args(["-m", "oidc_provider_mock", "--host", "127.0.0.1", "--port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("oidc-provider-mock starts");
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let provider = Self { base: format!("http://127.0.0.1:{port}"), child, client };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let url = format!("{}/.well-known/openid-configuration", provider.base);
            if let Ok(response) = provider.client.get(&url).send().await
                && response.status() == 200
            {
                return provider;
            }
            assert!(Instant::now() < deadline, "oidc-provider-mock did not start within 20 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Signs `sub` in with `claims` through the authorization-code flow; returns the ID token.
    async fn id_token(&self, sub: &str, claims: Value) -> String {
        let put = self.client.put(format!("{}/users/{sub}", self.base)).json(&claims).send().await.unwrap();
        assert!(put.status().is_success(), "setting claims: {}", put.status());
        let query = form(&[
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT_URI),
            ("response_type", "code"),
            ("scope", "openid email"),
            ("nonce", &format!("n{}", unique())),
        ]);
        let authorized = self
            .client
            .post(format!("{}/oauth2/authorize?{query}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[("sub", sub)]))
            .send()
            .await
            .unwrap();
        let location = authorized.headers()["location"].to_str().unwrap().to_owned();
        let code = location.split_once("code=").expect("an authorization code").1.split('&').next().unwrap().to_owned();
        let token: Value = self
            .client
            .post(format!("{}/oauth2/token", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("client_id", CLIENT_ID),
                ("client_secret", "any"),
            ]))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        token["id_token"].as_str().expect("an id_token").to_owned()
    }
}

#[tokio::test]
async fn an_id_token_from_a_real_openid_provider_gets_a_twilio_token() {
    let provider = MockProvider::start().await;
    let config = format!(
        "\n[[auth.providers]]\nissuer = \"{}\"\naudiences = [\"{CLIENT_ID}\"]\nidentity_claim = \"email\"\nroles_claim = \"groups\"\nidentity_namespace = \"test-users\"\n",
        provider.base
    );
    let app = spawn_app_configured(&config, &[], true).await;
    let id_token = provider
        .id_token("alice", json!({"email": "alice@example.com", "email_verified": true, "groups": ["user"]}))
        .await;

    let body = app.mint_ok(&id_token, Some(json!({"grants": {"video": {"room": "standup"}}}))).await;
    assert_eq!(body["identity"], "alice@example.com");
    let (_, payload) = verify_token(body["token"].as_str().unwrap(), API_SECRET);
    assert_eq!(payload["grants"]["identity"], "alice@example.com");

    let (message, signature) = id_token.rsplit_once('.').unwrap();
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    let tampered = format!("{message}.{flipped}{}", &signature[1..]);
    assert_eq!(app.post_token(Some(&tampered), None).await.status(), 401);
    let guest = provider
        .id_token("mallory", json!({"email": "mallory@example.com", "email_verified": true, "groups": ["guest"]}))
        .await;
    assert_eq!(app.post_token(Some(&guest), None).await.status(), 403, "verified, but no rule for the guest role");
}
