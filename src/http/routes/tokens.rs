//! `POST /v1/tokens`: authenticate, decide, mint, audit. [`issue`] is the path every token
//! takes, shared with the token exchange.

use std::net::IpAddr;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::{Extension, Json};
use secrecy::ExposeSecret;
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::auth::{Principal, identity_quota_key};
use crate::error::{ApiError, Problem};
use crate::http::ClientIp;
use crate::http::extract::JsonBody;
use crate::http::layers::refuse;
use crate::policy::{PolicyError, TokenRequest};
use crate::token::{rfc3339, unix_now};

/// A minted token and what it carries.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// The Twilio Access Token, for the client SDK.
    pub token: String,
    /// The identity the token carries.
    #[schema(example = "alice")]
    pub identity: String,
    /// Lifetime in seconds.
    #[schema(example = 3600)]
    pub ttl: u32,
    /// When it expires (RFC 3339, UTC): refresh before then.
    #[schema(example = "2026-11-27T09:00:00Z")]
    pub expires_at: String,
    /// The grants it carries.
    #[schema(example = json!(["video"]))]
    pub grants: Vec<&'static str>,
}

#[utoipa::path(
    post,
    path = "/v1/tokens",
    request_body(content = TokenRequest, description = "What to mint; an empty body asks for the policy's defaults"),
    responses(
        (status = 200, description = "Minted (sent with Cache-Control: no-store)", body = TokenResponse),
        (status = 400, description = "Malformed JSON or field", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The policy does not allow this grant, room, identity or ttl", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body larger than the limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited (with Retry-After, RateLimit and RateLimit-Policy)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Not ready or overloaded", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn mint_token(
    State(state): State<AppState>,
    Extension(ClientIp(client_ip)): Extension<ClientIp>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<TokenRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let request_id = headers.get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
    let issued = issue(&state, &principal, &request, client_ip, request_id).await?;
    Ok(Json(TokenResponse {
        token: issued.token,
        identity: issued.identity,
        ttl: issued.ttl,
        expires_at: rfc3339(issued.expires_at),
        grants: issued.grants,
    }))
}

/// A token and what it carries, for either endpoint's answer.
pub(crate) struct Issued {
    pub token: String,
    pub identity: String,
    pub ttl: u32,
    pub expires_at: u64,
    pub grants: Vec<&'static str>,
}

/// Decides, mints, counts and audits: the one path every token takes, whichever endpoint was
/// asked. A deny-list refusal is counted and audited here too. A backend that mints for another
/// identity also spends that identity's quota, so one key cannot spend its whole budget on one
/// user.
pub(crate) async fn issue(
    state: &AppState,
    principal: &Principal,
    request: &TokenRequest,
    client_ip: IpAddr,
    request_id: &str,
) -> Result<Issued, ApiError> {
    let decision = state.policy.load().decide(principal, request).inspect_err(|e| {
        if let PolicyError::Denied(list) = e {
            state.metrics.denied.with_label_values(&[list.label()]).inc();
            tracing::info!(
                target: "audit",
                request_id,
                identity = request.identity.as_deref().unwrap_or(&principal.identity),
                subject = %principal.subject,
                principal = %principal.source,
                deny_list = list.label(),
                %client_ip,
                "token refused: deny list"
            );
        }
    })?;
    if decision.spec.identity != principal.identity {
        state
            .limiter
            .load_full()
            .check_identity(&identity_quota_key(&decision.spec.identity), &[])
            .await
            .map_err(|e| refuse(&state.metrics, e))?;
    }
    let minters = state.minters.load();
    let minter = minters.get(&decision.account).ok_or_else(|| {
        ApiError::Internal(format!("policy rule {:?} chose the unloaded account {:?}", decision.rule, decision.account))
    })?;
    let timer = state.metrics.mint_duration.start_timer();
    let minted = minter.mint(&decision.spec, unix_now())?;
    timer.observe_duration();
    let grants = decision.spec.grants.names();
    for grant in &grants {
        state.metrics.tokens_issued.with_label_values(&[grant]).inc();
    }
    tracing::info!(
        target: "audit",
        request_id,
        identity = %decision.spec.identity,
        subject = %principal.subject,
        principal = %principal.source,
        tenant = principal.tenant.as_deref(),
        rule = %decision.rule,
        account = %decision.account,
        grants = ?grants,
        ttl = decision.spec.ttl_secs,
        jti = %minted.jti,
        key_sid = %minted.key_sid,
        %client_ip,
        "token minted"
    );
    Ok(Issued {
        token: minted.token.expose_secret().to_owned(),
        identity: decision.spec.identity,
        ttl: decision.spec.ttl_secs,
        expires_at: minted.expires_at,
        grants,
    })
}
