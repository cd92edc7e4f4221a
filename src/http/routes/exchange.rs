//! `POST /oauth2/token`: RFC 8693 token exchange. A client that speaks OAuth exchanges the
//! app-user JWT it holds (the subject token) for a Twilio Access Token, through the same per-IP
//! limit (the gate of every mint route), authentication, per-identity limit, policy, metrics and
//! audit line as `POST /v1/tokens`. The grants are the `scope` (see [`crate::policy::request_from_scope`]); failures are RFC 6749
//! errors.

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::header::{CONTENT_TYPE, PRAGMA};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::auth::Accepted;
use crate::http::ClientIp;
use crate::http::error::{ApiError, OAuthError, OAuthErrorBody, with_rate_limit_fields};
use crate::http::layers::request_id;
use crate::policy::{Platform, TokenRequest, request_from_scope};
use crate::ratelimit::RateLimitFields;
use crate::token::unix_now;

pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
const ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";

/// The form a client posts (`application/x-www-form-urlencoded`). Parameters not listed are
/// ignored, as RFC 6749 requires; none may appear twice; one without a value counts as left out.
#[derive(Debug, ToSchema)]
pub struct ExchangeForm {
    /// Always `urn:ietf:params:oauth:grant-type:token-exchange`.
    #[schema(
        example = "urn:ietf:params:oauth:grant-type:token-exchange",
        pattern = "^urn:ietf:params:oauth:grant-type:token-exchange$"
    )]
    pub grant_type: String,
    /// The app user's JWT: an ID token from your identity provider, or your app's session token
    /// (never a backend API key).
    #[schema(min_length = 1)]
    pub subject_token: String,
    /// `urn:ietf:params:oauth:token-type:jwt` or `urn:ietf:params:oauth:token-type:id_token`.
    #[schema(
        example = "urn:ietf:params:oauth:token-type:id_token",
        pattern = "^urn:ietf:params:oauth:token-type:(jwt|id_token)$"
    )]
    pub subject_token_type: String,
    /// Grants, space-separated: `voice`, `video`, `video:room:<name>`, `chat`, `sync`,
    /// `task_router`. Left out: the policy's defaults.
    #[schema(example = "video:room:standup chat", nullable = false)]
    pub scope: Option<String>,
    /// If given, `urn:ietf:params:oauth:token-type:jwt` (a Twilio Access Token is a JWT); empty
    /// counts as left out (RFC 6749 §3.1).
    #[schema(pattern = "^(urn:ietf:params:oauth:token-type:jwt)?$", nullable = false)]
    pub requested_token_type: Option<String>,
    /// The platform the client runs on (`ios`, `ios_sandbox`, `android`, `web`): a rule with
    /// `push_credentials` gives the voice and chat grants that platform's push credential. Empty
    /// counts as left out (RFC 6749 §3.1).
    #[schema(value_type = Option<String>, pattern = "^(ios|ios_sandbox|android|web)?$", nullable = false)]
    pub platform: Option<Platform>,
}

/// RFC 8693's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExchangeResponse {
    /// The Twilio Access Token, for the client SDK.
    pub access_token: String,
    #[schema(example = "urn:ietf:params:oauth:token-type:jwt")]
    pub issued_token_type: &'static str,
    /// `N_A`: the token is for Twilio's SDKs, not an OAuth bearer token for this server.
    #[schema(example = "N_A")]
    pub token_type: &'static str,
    /// Lifetime in seconds.
    #[schema(example = 3600)]
    pub expires_in: u32,
    /// The grants the token carries, in the `scope` syntax.
    #[schema(example = "video chat")]
    pub scope: String,
    /// The Twilio region the token is for; left out for the default region (us1).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "ie1", nullable = false)]
    pub region: Option<String>,
}

#[utoipa::path(
    post,
    path = "/oauth2/token",
    request_body(content = ExchangeForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Exchanged (sent with Cache-Control: no-store)", body = ExchangeResponse),
        (status = 400, description = "invalid_request, invalid_grant (the subject token does not verify, or is blocked), invalid_scope (unknown, or not allowed by the policy), unsupported_grant_type", body = OAuthErrorBody),
        (status = 413, description = "invalid_request: body larger than the limit", body = OAuthErrorBody),
        (status = 429, description = "temporarily_unavailable: rate limited (with Retry-After, RateLimit and RateLimit-Policy)", body = OAuthErrorBody),
        (status = 503, description = "temporarily_unavailable: not ready or overloaded", body = OAuthErrorBody),
    )
)]
pub async fn exchange(
    State(state): State<AppState>,
    Extension(client_ip): Extension<ClientIp>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (response, identity_fields) = answer(&state, client_ip, &headers, body).await;
    with_rate_limit_fields(response, identity_fields.as_ref())
}

/// The answer, and the per-identity quota when the subject token got that far.
async fn answer(
    state: &AppState,
    client_ip: ClientIp,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> (Response, Option<RateLimitFields>) {
    let form = match read_form(state, headers, body) {
        Ok(form) => form,
        Err(e) => return (e.into_response(), None),
    };
    let request = match request_from_scope(form.scope.as_deref()) {
        Ok(request) => TokenRequest { platform: form.platform, ..request },
        Err(reason) => return (OAuthError::InvalidScope(reason).into_response(), None),
    };
    let request_id = request_id(headers);
    let admitted = match state.admit(Ok(&form.subject_token), Accepted::AppUserJwt, request_id).await {
        Ok(admitted) => admitted,
        Err(e) => return (OAuthError::from(e).into_response(), None),
    };
    let response = match state.issue(&admitted.principal, &request, client_ip.0, request_id, unix_now()).await {
        Ok(issued) => {
            let body = ExchangeResponse {
                access_token: issued.token,
                issued_token_type: JWT,
                token_type: "N_A",
                expires_in: issued.ttl,
                scope: issued.grants.join(" "),
                region: issued.region,
            };
            ([(PRAGMA, HeaderValue::from_static("no-cache"))], Json(body)).into_response()
        }
        Err(e) => OAuthError::from(e).into_response(),
    };
    (response, Some(admitted.quota))
}

/// Reads and checks the form: its content type, each parameter at most once, the grant type
/// and the token types.
fn read_form(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<ExchangeForm, OAuthError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge { limit: state.body_limit_bytes }
        } else {
            ApiError::BadRequest("the request body could not be read".into())
        }
    })?;
    let form_encoded = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
    if !form_encoded {
        return Err(bad_request(
            "the body must be form-encoded, sent with Content-Type: application/x-www-form-urlencoded",
        ));
    }
    let mut values: [Option<String>; 6] = Default::default();
    const NAMES: [&str; 6] =
        ["grant_type", "subject_token", "subject_token_type", "scope", "requested_token_type", "platform"];
    for (name, value) in form_urlencoded::parse(&body) {
        // RFC 6749 §3.1: a parameter sent without a value is treated as if it were left out.
        if value.is_empty() {
            continue;
        }
        if let Some(index) = NAMES.iter().position(|known| *known == name) {
            if values[index].replace(value.into_owned()).is_some() {
                return Err(bad_request(&format!("{name} is given more than once")));
            }
        } else if matches!(name.as_ref(), "actor_token" | "actor_token_type") {
            return Err(bad_request("delegation (actor_token) is not supported"));
        }
    }
    let [grant_type, subject_token, subject_token_type, scope, requested_token_type, platform] = values;
    let required = |value: Option<String>, name: &str| value.ok_or_else(|| bad_request(&format!("{name} is missing")));
    let grant_type = required(grant_type, "grant_type")?;
    if grant_type != TOKEN_EXCHANGE {
        return Err(OAuthError::UnsupportedGrantType);
    }
    let subject_token = required(subject_token, "subject_token")?;
    let subject_token_type = required(subject_token_type, "subject_token_type")?;
    if subject_token_type != JWT && subject_token_type != ID_TOKEN {
        return Err(bad_request(&format!("subject_token_type must be {JWT} or {ID_TOKEN}")));
    }
    if requested_token_type.as_deref().is_some_and(|t| t != JWT) {
        return Err(bad_request(&format!("requested_token_type can only be {JWT}")));
    }
    let platform = platform
        .map(|name| Platform::parse(&name).map_err(|shape| bad_request(&format!("platform {shape}"))))
        .transpose()?;
    Ok(ExchangeForm { grant_type, subject_token, subject_token_type, scope, requested_token_type, platform })
}

fn bad_request(reason: &str) -> OAuthError {
    OAuthError::Api(ApiError::BadRequest(reason.to_owned()))
}
