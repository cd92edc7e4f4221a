//! The token path with no tower layers at all: authenticate, decide, mint and answer, exactly
//! as `POST /v1/tokens` does, but without request ids, tracing, metrics, CORS, client-IP
//! resolution, rate limits, load shedding or timeouts. `bench/load.sh` runs it beside the real
//! server to measure what the layers cost. Not for production.
//!
//! Usage: TOKENMINT_CONFIG=config/test.toml TWILIO_…=… cargo run --release --example bare_mint -- 127.0.0.1:18081

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header::AUTHORIZATION};
use axum::routing::post;
use secrecy::ExposeSecret;
use tokenmint::auth::bearer_credential;
use tokenmint::config::Settings;
use tokenmint::env::EnvVars;
use tokenmint::policy::TokenRequest;
use tokenmint::startup::Runtime;
use tokenmint::token::{TokenMinter, rfc3339, unix_now};

struct Bare {
    runtime: Runtime,
    minter: TokenMinter,
}

async fn mint(State(bare): State<Arc<Bare>>, headers: HeaderMap, body: Bytes) -> Result<String, StatusCode> {
    let header = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    let credential = bearer_credential(header).map_err(|_| StatusCode::UNAUTHORIZED)?;
    let principal = bare
        .runtime
        .authenticator
        .authenticate(credential, tokenmint::auth::Accepted::AnyCredential)
        .await
        .map_err(|_| StatusCode::UNAUTHORIZED)?;
    let request: TokenRequest = if body.is_empty() {
        TokenRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|_| StatusCode::BAD_REQUEST)?
    };
    let decision = bare.runtime.policy.decide(&principal, &request).map_err(|_| StatusCode::FORBIDDEN)?;
    let minted = bare.minter.mint(&decision.spec, unix_now()).map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    Ok(serde_json::json!({
        "token": minted.token.expose_secret(),
        "identity": decision.spec.identity,
        "ttl": decision.spec.ttl_secs,
        "expires_at": rfc3339(minted.expires_at),
        "grants": decision.spec.grants.names(),
    })
    .to_string())
}

/// The production binary's allocator, so the comparison measures the layers, not the allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:18081".into());
    let env = EnvVars::from_process();
    let config = std::env::var("TOKENMINT_CONFIG").ok();
    let settings = Settings::load(config.as_deref().map(std::path::Path::new), false, &env).expect("settings load");
    let runtime = Runtime::assemble(settings, &env, false).expect("configuration is valid");
    let minter = runtime.credentials.minter(&runtime.settings.token);
    let app = Router::new().route("/v1/tokens", post(mint)).with_state(Arc::new(Bare { runtime, minter }));
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("binds");
    axum::serve(listener, app).await.expect("serves");
}
