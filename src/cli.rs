//! The command line: `serve` (the default), `mint`, `decode`, `check-config`, `healthcheck`,
//! and `completions` / `man` for packagers.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use clap::{CommandFactory, Parser, Subcommand};
use secrecy::ExposeSecret;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::accounts::{API_SECRET_VAR, TwilioCredentials};
use crate::auth::{Principal, PrincipalSource};
use crate::config::{ConfigSource, Settings};
use crate::env::EnvVars;
use crate::policy::{Platform, RequestedGrants, TokenRequest};
use crate::reload::Reloader;
use crate::startup::{Application, Runtime};
use crate::token::{rfc3339, unix_now};

/// The environment `tokenmint` reads, shown by `--help` and the man page.
const ENVIRONMENT: &str = "\
Environment:
  TWILIO_ACCOUNT_SID, TWILIO_API_KEY, TWILIO_API_SECRET
                        the default account's credentials (a Standard or Main API key), each
                        also as NAME_FILE (a path to a file holding it)
  TWILIO_<NAME>_ACCOUNT_SID, _API_KEY, _API_SECRET
                        an [accounts.<name>] account's credentials
  TOKENMINT_CONFIG      the configuration file (as --config)
  TOKENMINT__<SECTION>__<KEY>
                        any setting, e.g. TOKENMINT__SERVER__LISTEN=0.0.0.0:8080
  RUST_LOG              overrides log.filter
  <secret_env>          each session issuer's secret, by the name its secret_env gives
  TOKENMINT_DEV_SESSION_SECRET
                        --dev: the session secret (random at each start when unset)

Examples:
  tokenmint serve --dev
  tokenmint check-config --config tokenmint.toml
  tokenmint serve --config tokenmint.toml";

#[derive(Debug, Parser)]
#[command(
    name = "tokenmint",
    version,
    about = "Mints short-lived Twilio Access Tokens for verified app users",
    after_help = ENVIRONMENT
)]
pub struct Cli {
    /// A TOML file layered over the built-in defaults.
    #[arg(long, global = true, env = "TOKENMINT_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service (the default).
    #[command(after_help = "Example:\n  tokenmint serve --config tokenmint.toml\n  tokenmint serve --dev")]
    Serve {
        /// Loopback only, placeholder credentials when TWILIO_* are unset, an allow-all policy.
        #[arg(long)]
        dev: bool,
    },
    /// Mint a token locally, through the configured policy, and print it.
    #[command(
        after_help = "Example:\n  tokenmint mint --dev --identity alice --grants '{\"video\":{\"room\":\"standup\"}}'"
    )]
    Mint {
        /// Use the dev configuration (as `serve --dev`).
        #[arg(long)]
        dev: bool,
        /// The identity the token carries.
        #[arg(long)]
        identity: String,
        /// Roles to mint as (selects policy rules); repeat for several. Default with --dev: dev.
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Lifetime in seconds.
        #[arg(long)]
        ttl: Option<u32>,
        /// The grants as JSON, as in the API body, e.g. '{"video":{"room":"standup"}}'.
        #[arg(long)]
        grants: Option<String>,
        /// The client's platform (ios, ios_sandbox, android, web): picks the push credential
        /// where the rule maps one.
        #[arg(long)]
        platform: Option<String>,
    },
    /// Show a token's header and payload, and verify it when a secret is available
    /// (TWILIO_API_SECRET, TWILIO_API_SECRET_FILE or --secret-file).
    #[command(after_help = "Example:\n  tokenmint decode \"$TOKEN\" --secret-file ./api_secret")]
    Decode {
        token: String,
        /// A file holding the API key secret.
        #[arg(long)]
        secret_file: Option<PathBuf>,
    },
    /// Report every configuration problem at once; exit non-zero if there is any.
    #[command(after_help = "Example:\n  tokenmint check-config --config tokenmint.toml")]
    CheckConfig {
        #[arg(long)]
        dev: bool,
    },
    /// Exit 0 when the local service answers /livez (for container HEALTHCHECKs).
    #[command(after_help = "Example:\n  tokenmint healthcheck --addr 127.0.0.1:9090")]
    Healthcheck {
        /// Where to ask; default: the configured admin listener.
        #[arg(long)]
        addr: Option<SocketAddr>,
    },
    /// Print a shell completion script.
    #[command(after_help = "Example:\n  tokenmint completions bash > /etc/bash_completion.d/tokenmint")]
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    #[command(after_help = "Example:\n  tokenmint man > /usr/local/share/man/man1/tokenmint.1")]
    Man,
}

/// Runs a command; errors come back as one line for `main` to print.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = cli.config.as_deref();
    match cli.command.unwrap_or(Command::Serve { dev: false }) {
        Command::Serve { dev } => serve(config, dev).await,
        Command::Mint { dev, identity, roles, ttl, grants, platform } => {
            mint(config, dev, identity, roles, ttl, grants.as_deref(), platform.as_deref()).await
        }
        Command::Decode { token, secret_file } => decode(&token, secret_file.as_deref()),
        Command::CheckConfig { dev } => check_config(config, dev),
        Command::Healthcheck { addr } => healthcheck(config, addr).await,
        Command::Completions { shell } => {
            // Into memory first: clap_complete panics when its writer fails (a closed pipe).
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "tokenmint", &mut script);
            std::io::Write::write_all(&mut std::io::stdout(), &script).context("the script could not be written")
        }
        Command::Man => man(),
    }
}

/// The man page: the command, its options, environment and examples, then each subcommand's
/// synopsis and options.
fn man() -> anyhow::Result<()> {
    let command = Cli::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone()).render(&mut page)?;
    for sub in command.get_subcommands() {
        let name = format!("tokenmint {}", sub.get_name());
        let sub_page = clap_mangen::Man::new(sub.clone().display_name(name.clone()).bin_name(name));
        sub_page.render_synopsis_section(&mut page)?;
        sub_page.render_options_section(&mut page)?;
    }
    std::io::Write::write_all(&mut std::io::stdout(), &page).context("the man page could not be written")
}

/// Reads and assembles everything, reporting every problem at once: a setting that cannot be
/// read is reported with where it came from, and the rest is still checked (its defaults
/// standing in).
fn load(config: Option<&Path>, dev: bool) -> anyhow::Result<Runtime> {
    let (settings, env, mut problems, stand_ins) = source(config, dev).read_all();
    // What start-up says of a section whose defaults stood in is about the defaults: left out.
    let about_stand_in = |problem: &String| {
        stand_ins
            .iter()
            .any(|section| problem.starts_with(&format!("{section}:")) || problem.starts_with(&format!("{section}.")))
    };
    match settings {
        Some(settings) => match Runtime::assemble(settings, &env, dev) {
            Ok(runtime) if problems.is_empty() => return Ok(runtime),
            Ok(_) => {}
            Err(found) => problems.extend(found.into_iter().filter(|p| !about_stand_in(p))),
        },
        // Not even the file's syntax could be read; the Twilio variables still can be.
        None if !dev => problems.extend(TwilioCredentials::from_env(&env).err().map(|e| e.to_string())),
        None => {}
    }
    Err(anyhow!(problems.join("\n  ")))
}

fn source(config: Option<&Path>, dev: bool) -> ConfigSource {
    ConfigSource { file: config.map(Path::to_path_buf), dev }
}

async fn serve(config: Option<&Path>, dev: bool) -> anyhow::Result<()> {
    let runtime = load(config, dev)?;
    let _log = crate::telemetry::init(&runtime.settings.log, &runtime.settings.trace).map_err(|e| anyhow!(e))?;
    let placeholder = runtime.credentials.is_placeholder();
    let reloader = Reloader::new(source(config, dev), &runtime);
    let dev_session = dev.then(|| runtime.authenticator.dev_session_token("dev_user", &["dev"], 24 * 3600)).flatten();
    let app = Application::build(runtime).await?;
    if let Some(session) = dev_session {
        eprintln!("{}", crate::dev::banner(app.public_addr(), &session, placeholder));
    }
    if placeholder {
        tracing::warn!("signing with PLACEHOLDER Twilio credentials: Twilio will reject these tokens");
    }
    reloader.spawn(app.state().clone()).context("could not listen for SIGHUP")?;
    app.run_until_stopped(crate::startup::shutdown_signal()).await.context("the server failed")?;
    tracing::info!("stopped");
    Ok(())
}

/// Mints one token locally through the same issuer as the routes (policy, deny list, account,
/// count, audit); the token goes to stdout, the audit line and a summary to stderr.
async fn mint(
    config: Option<&Path>,
    dev: bool,
    identity: String,
    mut roles: Vec<String>,
    ttl: Option<u32>,
    grants: Option<&str>,
    platform: Option<&str>,
) -> anyhow::Result<()> {
    let runtime = load(config, dev)?;
    let platform =
        platform.map(|name| Platform::parse(name).map_err(|shape| anyhow!("--platform {shape}"))).transpose()?;
    if roles.is_empty() {
        if !dev {
            bail!("name the roles to mint as with --role (they select the policy rule)");
        }
        roles.push("dev".into());
    }
    let grants: Option<RequestedGrants> = grants
        .map(serde_json::from_str)
        .transpose()
        .context("--grants is not a valid grants object (e.g. '{\"video\":{\"room\":\"standup\"}}')")?;
    crate::telemetry::install(&runtime.settings.log, std::io::stderr).map_err(|e| anyhow!(e))?;
    let placeholder = runtime.credentials.is_placeholder();
    let principal = Principal {
        subject: identity.clone(),
        identity,
        roles,
        may_act_as: false,
        tenant: None,
        source: PrincipalSource::ApiKey { name: "cli".into() },
    };
    let request = TokenRequest { ttl, grants, platform, ..TokenRequest::default() };
    // The token is the only thing on stdout: the audit record goes to stderr, written before
    // the token is printed.
    let mut runtime = runtime;
    runtime.settings.audit.sink = crate::audit::SinkKind::Stderr;
    runtime.settings.audit.path = None;
    let (state, _) = runtime.into_state().context("the audit writer could not start")?;
    let issued = state
        .issue(&principal, &request, Ipv4Addr::LOCALHOST.into(), &crate::ids::unique_hex(), unix_now())
        .await
        .map_err(|e| anyhow!("refused: {e}"))?;
    if placeholder {
        eprintln!("warning: signed with PLACEHOLDER credentials; Twilio will reject this token");
    }
    eprintln!("identity {} · grants {:?} · expires {}", issued.identity, issued.grants, rfc3339(issued.expires_at));
    println!("{}", issued.token);
    Ok(())
}

fn decode(token: &str, secret_file: Option<&Path>) -> anyhow::Result<()> {
    let parts: Vec<&str> = token.trim().split('.').collect();
    let [header, payload, _signature] = parts[..] else {
        bail!("not a JWT: expected three dot-separated parts");
    };
    let part = |name: &str, text: &str| -> anyhow::Result<serde_json::Value> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .with_context(|| format!("the {name} is not base64url"))?;
        serde_json::from_slice(&bytes).with_context(|| format!("the {name} is not JSON"))
    };
    let header = part("header", header)?;
    let payload = part("payload", payload)?;
    println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "header": header, "payload": payload }))?);
    if let Some(exp) = payload.get("exp").and_then(serde_json::Value::as_u64) {
        let now = unix_now();
        let when = rfc3339(exp);
        if exp > now {
            println!("expires {when} (in {})", humantime::format_duration(Duration::from_secs(exp - now)));
        } else {
            println!("EXPIRED {when} ({} ago)", humantime::format_duration(Duration::from_secs(now - exp)));
        }
    }
    let placeholder = payload
        .get("iss")
        .and_then(serde_json::Value::as_str)
        .and_then(|iss| crate::sid::Sid::<crate::sid::ApiKey>::parse(iss).ok())
        .is_some_and(|key| key.is_placeholder());
    if placeholder && secret_file.is_none() {
        println!(
            "signature: not checked: signed by `serve --dev` with its PLACEHOLDER key, whose secret lives only in that process (Twilio rejects such tokens; set TWILIO_* to sign with a real key)"
        );
        return Ok(());
    }
    let secret = match secret_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("--secret-file {} cannot be read", path.display()))?
                .trim()
                .to_owned()
                .into(),
        ),
        None => EnvVars::from_process().secret(API_SECRET_VAR)?,
    };
    let Some(secret) = secret else {
        println!("signature: not checked (set {API_SECRET_VAR} or pass --secret-file to verify it)");
        return Ok(());
    };
    let secret: secrecy::SecretString = secret;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let key = jsonwebtoken::DecodingKey::from_secret(secret.expose_secret().as_bytes());
    match jsonwebtoken::decode::<serde_json::Value>(token.trim(), &key, &validation) {
        Ok(_) => {
            println!("signature: valid (HS256, with the given secret)");
            Ok(())
        }
        Err(e) => bail!("signature: INVALID ({e})"),
    }
}

fn check_config(config: Option<&Path>, dev: bool) -> anyhow::Result<()> {
    let runtime = load(config, dev).map_err(|e| anyhow!("configuration problems:\n  {e}"))?;
    let settings = &runtime.settings;
    println!("configuration OK");
    println!("  public listener  {}", settings.server.listen);
    println!("  admin listener   {}", settings.server.admin_listen);
    let accounts = std::iter::once((crate::accounts::DEFAULT_ACCOUNT, &runtime.credentials))
        .chain(runtime.accounts.iter().map(|(name, credentials)| (name.as_str(), credentials)));
    for (name, credentials) in accounts {
        let token = settings.token_settings_for(name);
        let products: Vec<&str> = token.products().unwrap_or_default().into_iter().map(|p| p.as_str()).collect();
        println!(
            "  account {name:<8} {}  api key {}{}  region {} ({})",
            credentials.account_sid,
            credentials.api_key_sid,
            if credentials.is_placeholder() { " (PLACEHOLDER)" } else { "" },
            token.region.as_deref().unwrap_or(crate::token::DEFAULT_REGION),
            products.join(", ")
        );
    }
    println!(
        "  api keys         must be Standard or Main keys: Twilio refuses tokens signed by a Restricted key (error 20160), which cannot be told apart offline"
    );
    println!("  session issuers  {:?}", settings.auth.sessions.iter().map(|s| &s.issuer).collect::<Vec<_>>());
    let issuers = runtime.authenticator.describe_identities();
    if issuers.len() > 1 {
        println!("  identities       each issuer's are kept apart by its prefix, or shared by a declared namespace:");
    }
    for (issuer, made) in issuers {
        println!("    from {issuer}: {made}");
    }
    println!("  api keys         {:?}", settings.auth.api_keys.iter().map(|k| &k.name).collect::<Vec<_>>());
    println!("  policy rules     {:?}", settings.policy.rules.iter().map(|r| &r.name).collect::<Vec<_>>());
    for key in &settings.auth.api_keys {
        if let Some(warning) = runtime.policy.tenant_warning(&key.name, &key.roles, key.tenant.as_deref()) {
            println!("  warning: {warning}");
        }
    }
    for warning in runtime.policy.voice_prefix_warnings(&runtime.authenticator.identity_prefixes()) {
        println!("  warning: {warning}");
    }
    println!("  cors origins     {:?}", settings.cors.allowed_origins);
    println!("  rate limits      {}", runtime.limiter.store_status().label());
    Ok(())
}

async fn healthcheck(config: Option<&Path>, addr: Option<SocketAddr>) -> anyhow::Result<()> {
    let mut addr = match addr {
        Some(addr) => addr,
        None => Settings::load(config, false, &EnvVars::from_process()).map_err(|e| anyhow!(e))?.server.admin_listen,
    };
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() { Ipv4Addr::LOCALHOST.into() } else { Ipv6Addr::LOCALHOST.into() });
    }
    let status_line = tokio::time::timeout(Duration::from_secs(3), async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(format!("GET /livez HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&response).lines().next().unwrap_or("").to_owned())
    })
    .await
    .map_err(|_| anyhow!("{addr} did not answer /livez within 3 s"))?
    .with_context(|| format!("cannot reach {addr}"))?;
    if status_line.split(' ').nth(1) == Some("200") { Ok(()) } else { bail!("{addr}/livez answered {status_line:?}") }
}
