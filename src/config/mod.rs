//! Settings, layered: the built-in `config/default.toml`, `config/dev.toml` under `--dev`, the
//! file given by `--config` / `TOKENMINT_CONFIG`, then `TOKENMINT__SECTION__KEY` variables.
//! Unknown keys are errors: a typo must never silently disable a rule.

mod parse;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::accounts::AccountOffer;
use crate::audit::AuditSettings;
use crate::traces::TraceSettings;

use crate::auth::AuthSettings;
use crate::env::EnvVars;
use crate::policy::PolicySettings;
use crate::ratelimit::RateLimitSettings;
use crate::telemetry::LogSettings;
use crate::token::TokenSettings;

/// The defaults every deployment starts from; also the reference for every key.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");
/// What `serve --dev` adds: loopback addresses, a dev session issuer and an allow-all policy.
pub const DEV_TOML: &str = include_str!("../../config/dev.toml");

/// All of tokenmint's settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub token: TokenSettings,
    pub log: LogSettings,
    pub trace: TraceSettings,
    pub cors: CorsSettings,
    pub rate_limit: RateLimitSettings,
    pub reload: ReloadSettings,
    /// Twilio accounts besides the default one (`TWILIO_*`), by name: each reads its own
    /// `TWILIO_<NAME>_ACCOUNT_SID`, `_API_KEY` and `_API_SECRET`. Policy rules choose among them.
    #[serde(default)]
    pub accounts: std::collections::BTreeMap<String, AccountSettings>,
    #[serde(default)]
    pub auth: AuthSettings,
    #[serde(default)]
    pub policy: PolicySettings,
    pub audit: AuditSettings,
}

/// The `[server]` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// The public listener: `POST /v1/tokens`, probes, `/openapi.json`.
    pub listen: SocketAddr,
    /// The admin listener (probes, and later metrics); keep it off the public ingress.
    pub admin_listen: SocketAddr,
    /// Largest request body accepted, in bytes (SPEC: 16 KiB).
    pub body_limit_bytes: usize,
    /// A request still running after this many milliseconds gets a 503.
    pub request_timeout_ms: u64,
    /// A connection that has not sent a whole request head within this many milliseconds is
    /// closed (slow-header clients must not hold connections open).
    pub header_read_timeout_ms: u64,
    /// Requests handled at once; beyond it requests are refused at once with 503 (shed), not
    /// queued.
    pub max_concurrent_requests: usize,
    /// Open connections per listener; a connection beyond it gets a 503 and is closed at once.
    /// With HTTP/1 each connection has at most one request waiting, so this bounds the queue
    /// (and so the latency) when the CPU, not the concurrency limit, is what runs out.
    pub max_connections: usize,
    /// Open connections from one client address per listener; a connection beyond it gets a 503
    /// and is closed at once. Trusted proxies are exempt.
    pub max_connections_per_ip: usize,
    /// Peers (addresses or CIDR blocks) whose forwarding header is believed when finding the
    /// client IP; from anyone else the socket address is the client.
    #[serde(default)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The one header the trusted proxies write the client address into.
    pub client_ip_header: ClientIpHeader,
    /// After SIGTERM, how long readiness fails while both listeners keep serving, so the load
    /// balancer notices before the listeners close.
    pub drain_delay_ms: u64,
}

/// Which forwarding header names the client: only the one the operator's proxy writes is read,
/// so a client's own copy of another one (which the proxy passes through) never counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum ClientIpHeader {
    /// `X-Forwarded-For: client, proxy1, …` (nginx, most cloud load balancers).
    #[serde(rename = "x-forwarded-for")]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client;proto=https, for=…` (Envoy, some service meshes).
    #[serde(rename = "forwarded")]
    Forwarded,
    /// `X-Real-IP: client`, one address set by the proxy (nginx's realip convention).
    #[serde(rename = "x-real-ip")]
    XRealIp,
}

/// Who may name the client, and in which header (from `[server]`).
#[derive(Debug, Clone)]
pub struct ForwardingTrust {
    pub proxies: Vec<ipnet::IpNet>,
    pub header: ClientIpHeader,
}

impl ForwardingTrust {
    pub fn trusts(&self, peer: std::net::IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.proxies.iter().any(|net| net.contains(&peer))
    }
}

/// One `[accounts.<name>]` entry.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AccountSettings {
    /// The account's Twilio region (`ie1`, `au1`, …), written as the `twr` header; unset: the
    /// default (us1).
    pub region: Option<String>,
    /// The products Twilio offers in the region, when they differ from tokenmint's table (a
    /// product Twilio has added there since); the default account's is `token.products`.
    pub products: Option<Vec<crate::token::GrantName>>,
}

impl Settings {
    /// Every problem with `[accounts]`, as sentences naming the key.
    pub fn account_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, account) in &self.accounts {
            let plausible = name.starts_with(|c: char| c.is_ascii_lowercase())
                && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !plausible || name == crate::accounts::DEFAULT_ACCOUNT {
                problems.push(format!(
                    "accounts.{name}: an account name is lower-case letters, digits and _ (not \"default\", which is TWILIO_*), e.g. accounts.eu"
                ));
            }
            if let Some(problem) = account
                .region
                .as_deref()
                .and_then(|r| crate::token::region_problem(&format!("accounts.{name}.region"), r))
            {
                problems.push(problem);
            }
        }
        problems
    }

    /// Every account name policy rules may use: `"default"` and each `[accounts.<name>]`.
    pub fn account_names(&self) -> Vec<&str> {
        std::iter::once(crate::accounts::DEFAULT_ACCOUNT).chain(self.accounts.keys().map(String::as_str)).collect()
    }

    /// The `[token]` settings as one account uses them (its own region).
    pub fn token_settings_for(&self, account: &str) -> TokenSettings {
        let mut settings = self.token.clone();
        if let Some(named) = self.accounts.get(account) {
            settings.region = named.region.clone();
            settings.products = named.products.clone();
        }
        settings
    }

    /// What each account's tokens can carry: the products Twilio offers in its region, and a
    /// problem for each region the table lacks whose products are not listed. (Such an account
    /// is taken to offer every product, so the policy's own problems are still all reported.)
    pub fn account_offers(&self) -> (Vec<AccountOffer>, Vec<String>) {
        let mut problems = Vec::new();
        let mut offers = Vec::new();
        for name in self.account_names() {
            let settings = self.token_settings_for(name);
            let region = settings.region.clone().unwrap_or_else(|| crate::token::DEFAULT_REGION.to_owned());
            let key = AccountOffer::settings_key(name);
            let products = settings.products().unwrap_or_else(|| {
                // An implausible region has its own problem already.
                if crate::token::region_problem("", &region).is_none() {
                    problems.push(format!(
                        "{key}.region {region:?} is not in tokenmint's table of Twilio regions ({}): list the products Twilio offers there, e.g. {key}.products = [\"voice\"]",
                        crate::token::known_regions().collect::<Vec<_>>().join(", ")
                    ));
                }
                crate::token::GrantName::ALL.to_vec()
            });
            offers.push(AccountOffer { name: name.to_owned(), region, key, products });
        }
        (offers, problems)
    }
}

/// The `[reload]` section: what triggers a live reload besides SIGHUP.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReloadSettings {
    /// How often watched files (`*_FILE` credentials, the `--config` file) are checked for a
    /// change; 0: never (SIGHUP only).
    pub watch_interval_ms: u64,
}

impl ReloadSettings {
    /// Every problem with this section, as sentences naming the key.
    pub fn problems(&self) -> Vec<String> {
        crate::bounds::out_of_range("reload.watch_interval_ms", self.watch_interval_ms, 0..=3_600_000, "milliseconds")
            .into_iter()
            .collect()
    }

    pub fn watch_interval(&self) -> Option<Duration> {
        (self.watch_interval_ms > 0).then(|| Duration::from_millis(self.watch_interval_ms))
    }
}

impl ServerSettings {
    pub fn forwarding(&self) -> ForwardingTrust {
        ForwardingTrust { proxies: self.trusted_proxies.clone(), header: self.client_ip_header }
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }

    pub fn drain_delay(&self) -> Duration {
        Duration::from_millis(self.drain_delay_ms)
    }

    /// Every problem with this section, as sentences naming the key.
    pub fn problems(&self) -> Vec<String> {
        let mut problems: Vec<String> = [
            ("server.request_timeout_ms", self.request_timeout_ms, 1..=300_000),
            ("server.header_read_timeout_ms", self.header_read_timeout_ms, 1..=60_000),
            ("server.drain_delay_ms", self.drain_delay_ms, 0..=300_000),
        ]
        .into_iter()
        .filter_map(|(key, value, range)| crate::bounds::out_of_range(key, value, range, "milliseconds"))
        .collect();
        for (key, value) in [
            ("server.body_limit_bytes", self.body_limit_bytes as u64),
            ("server.max_concurrent_requests", self.max_concurrent_requests as u64),
            ("server.max_connections", self.max_connections as u64),
            ("server.max_connections_per_ip", self.max_connections_per_ip as u64),
        ] {
            if value == 0 {
                problems.push(format!("{key} must be above 0"));
            }
        }
        problems
    }
}

/// The `[cors]` section: which browser origins may call the API.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CorsSettings {
    /// Exact origins (`https://app.example.com`, no path, no `*`); empty: no cross-origin access.
    pub allowed_origins: Vec<String>,
    /// How long a browser may cache a preflight answer, in seconds.
    pub max_age_secs: u64,
}

impl CorsSettings {
    /// Every problem with this section, as sentences naming the key.
    pub fn problems(&self) -> Vec<String> {
        let max_age = crate::bounds::out_of_range("cors.max_age_secs", self.max_age_secs, 0..=86_400, "seconds");
        self.allowed_origins
            .iter()
            .filter(|origin| !is_exact_origin(origin))
            .map(|origin| {
                format!(
                    "cors.allowed_origins: {origin:?} is not an exact origin: write scheme://host[:port] with no path, such as \"https://app.example.com\" (a wildcard would let any site mint tokens with a user's credential)"
                )
            })
            .chain(max_age)
            .collect()
    }
}

fn is_exact_origin(origin: &str) -> bool {
    let Some(rest) = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://")) else {
        return false;
    };
    !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

/// Where the settings come from (`--config` and `--dev`), so a reload reads them exactly the
/// way start-up did.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    pub file: Option<PathBuf>,
    pub dev: bool,
}

impl ConfigSource {
    /// Snapshots the process environment (with `--dev`'s additions) and loads the settings.
    pub fn read(&self) -> Result<(Settings, EnvVars), String> {
        let (settings, env, problems, _) = self.read_all();
        match settings {
            Some(settings) if problems.is_empty() => Ok((settings, env)),
            _ => Err(problems.join("\n  ")),
        }
    }

    /// Like [`Self::read`], but with every problem found and the settings as far as they could
    /// be read (defaults standing in for the rest, whose sections are listed last), so start-up
    /// can go on to find the problems the other settings and the environment have:
    /// `check-config` reports all of them at once.
    pub fn read_all(&self) -> (Option<Settings>, EnvVars, Vec<String>, Vec<&'static str>) {
        let mut env = EnvVars::from_process();
        if self.dev {
            crate::dev::prepare_env(&mut env);
        }
        let text = match &self.file {
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => Some(text),
                Err(e) => {
                    let problem = format!(
                        "the configuration file {} cannot be read ({e}): fix --config or TOKENMINT_CONFIG",
                        path.display()
                    );
                    return (None, env, vec![problem], Vec::new());
                }
            },
            None => None,
        };
        let name = self.file.as_ref().map(|path| path.display().to_string());
        let file = text.as_deref().zip(name.as_deref());
        let parse::Parsed { settings, problems, stand_ins } = parse::parse(file, self.dev, &env);
        (settings, env, problems, stand_ins)
    }
}

impl Settings {
    /// Loads the layers. `env` supplies the `TOKENMINT__…` overrides.
    pub fn load(file: Option<&Path>, dev: bool, env: &EnvVars) -> Result<Self, String> {
        let text = match file {
            Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
                format!(
                    "the configuration file {} cannot be read ({e}): fix --config or TOKENMINT_CONFIG",
                    path.display()
                )
            })?),
            None => None,
        };
        let name = file.map(|path| path.display().to_string());
        Self::parse(text.as_deref().zip(name.as_deref()), dev, env)
    }

    /// The layers with the operator's file given as text (`load` reads it; the fuzzer hands in
    /// arbitrary text).
    pub fn from_toml(file: Option<&str>, dev: bool, env: &EnvVars) -> Result<Self, String> {
        Self::parse(file.map(|text| (text, "the configuration file")), dev, env)
    }

    fn parse(file: Option<(&str, &str)>, dev: bool, env: &EnvVars) -> Result<Self, String> {
        match parse::parse(file, dev, env) {
            parse::Parsed { settings: Some(settings), problems, .. } if problems.is_empty() => Ok(settings),
            parse::Parsed { problems, .. } => Err(problems.join("\n  ")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// config/default.toml is where operators look up a setting: every key of every section
    /// (tables of their own, such as accounts and policy rules, aside) is there, set or shown
    /// commented out.
    #[test]
    fn default_toml_names_every_key() {
        let settings = Settings::from_toml(None, false, &EnvVars::default()).unwrap();
        let json = serde_json::json!(settings);
        let mut missing = Vec::new();
        for (section, keys) in json.as_object().unwrap() {
            let Some(keys) = keys.as_object() else { continue };
            for key in keys.keys() {
                let (set, shown) = (format!("\n{key} = "), format!("\n# {key} = "));
                let in_section = DEFAULT_TOML.split(&format!("[{section}]")).nth(1).unwrap_or_default();
                let in_section = in_section.split("\n[").next().unwrap_or_default();
                if ["accounts", "policy"].contains(&section.as_str())
                    || matches!(key.as_str(), "sessions" | "api_keys" | "providers")
                {
                    continue;
                }
                let table = format!("[{section}.{key}");
                if !in_section.contains(&set) && !in_section.contains(&shown) && !DEFAULT_TOML.contains(&table) {
                    missing.push(format!("{section}.{key}"));
                }
            }
        }
        assert!(missing.is_empty(), "config/default.toml lacks {missing:?}");
    }

    #[test]
    fn defaults_load_and_environment_overrides_them() {
        let env: EnvVars =
            [("TOKENMINT__SERVER__LISTEN", "0.0.0.0:9999"), ("TOKENMINT_CONFIG", "ignored")].into_iter().collect();
        let settings = Settings::load(None, false, &env).unwrap();
        assert_eq!(settings.server.listen.port(), 9999);
        assert_eq!(settings.server.body_limit_bytes, 16 * 1024);
        assert_eq!(settings.token.default_ttl_secs, 3600);
    }

    #[test]
    fn lists_come_from_comma_separated_variables() {
        let env: EnvVars = [
            ("TOKENMINT__SERVER__TRUSTED_PROXIES", "10.0.0.0/8,192.0.2.1/32"),
            ("TOKENMINT__CORS__ALLOWED_ORIGINS", "https://a.example,https://b.example"),
        ]
        .into_iter()
        .collect();
        let settings = Settings::load(None, false, &env).unwrap();
        assert_eq!(settings.server.trusted_proxies.len(), 2);
        assert_eq!(settings.cors.allowed_origins, ["https://a.example", "https://b.example"]);
    }

    #[test]
    fn unknown_keys_are_errors() {
        let env: EnvVars = [("TOKENMINT__SERVER__LISTN", "0.0.0.0:9999")].into_iter().collect();
        let err = Settings::load(None, false, &env).unwrap_err();
        assert!(err.contains("listn"), "{err}");
    }

    #[test]
    fn origins_must_be_exact() {
        let cors = |origins: &[&str]| CorsSettings {
            allowed_origins: origins.iter().map(|o| o.to_string()).collect(),
            max_age_secs: 1,
        };
        assert!(cors(&["https://app.example.com", "http://127.0.0.1:3000", "http://[::1]:8080"]).problems().is_empty());
        for bad in
            ["*", "https://*.example.com", "https://app.example.com/", "app.example.com", "https://a.com/path", "null"]
        {
            assert_eq!(cors(&[bad]).problems().len(), 1, "{bad}");
        }
    }

    #[test]
    fn required_claims_are_names_or_names_with_values_kept_as_written() {
        use crate::auth::identity::RequiredClaims;
        let file = r#"
            [[auth.providers]]
            issuer = "https://a.example"
            audiences = ["app"]
            required_claims = ["tenant"]
            [[auth.providers]]
            issuer = "https://b.example"
            audiences = ["app"]
            required_claims = { email_verified = true, Tier = 3, "https://example.com/Org.Id" = "acme" }
        "#;
        let settings = Settings::from_toml(Some(file), false, &EnvVars::default()).unwrap();
        assert_eq!(settings.auth.providers[0].required_claims, RequiredClaims::Present(vec!["tenant".into()]));
        let RequiredClaims::Values(values) = &settings.auth.providers[1].required_claims else {
            panic!("{:?}", settings.auth.providers[1].required_claims);
        };
        assert_eq!(values["email_verified"], serde_json::Value::Bool(true));
        assert_eq!(values["Tier"], serde_json::json!(3));
        assert_eq!(values["https://example.com/Org.Id"], "acme");
    }

    #[test]
    fn a_missing_file_is_named() {
        let err = Settings::load(Some(Path::new("/nonexistent.toml")), false, &EnvVars::default()).unwrap_err();
        assert!(err.contains("/nonexistent.toml"));
    }
}
