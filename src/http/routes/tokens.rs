//! `POST /v1/tokens`: the JSON envelope around [`crate::issue`] (the tower layer has already
//! limited the client and admitted the principal).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::{Extension, Json};
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::http::ClientIp;
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{Admitted, JsonBody};
use crate::http::layers::request_id;
use crate::policy::TokenRequest;
use crate::token::{rfc3339, unix_now};

/// A minted token and what it carries.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// The Twilio Access Token, for the client SDK.
    pub token: String,
    /// The identity the token carries: the one Twilio will know the user by (a rule with
    /// `identity_encoding = "voice_safe"` writes the voice-safe form of the authenticated one).
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
    /// The Twilio region the token is for (configure the SDK's edge or region with it); left
    /// out for the default region (us1).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "ie1", nullable = false)]
    pub region: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/tokens",
    request_body(content = TokenRequest, description = "What to mint; an empty body asks for the policy's defaults"),
    responses(
        (status = 200, description = "Minted (sent with Cache-Control: no-store)", body = TokenResponse),
        (status = 400, description = "Malformed JSON or field (the detail names its path), an unknown platform, a ttl under a grant's floor (chat: 180 s), or a named identity Twilio would refuse (for voice: letters, digits and _ only)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The policy does not allow this grant, room, identity, ttl or platform, or the credential's identity is one Twilio would refuse for a grant (the detail names the rule and the fix)", body = Problem, content_type = "application/problem+json"),
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
    Admitted(principal): Admitted,
    headers: HeaderMap,
    JsonBody(request): JsonBody<TokenRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let issued = state.issue(&principal, &request, client_ip, request_id(&headers), unix_now()).await?;
    Ok(Json(TokenResponse {
        token: issued.token,
        identity: issued.identity,
        ttl: issued.ttl,
        expires_at: rfc3339(issued.expires_at),
        grants: issued.grants,
        region: issued.region,
    }))
}
