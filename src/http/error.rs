//! Every failure the HTTP API reports, and the one place each becomes a response: an RFC 9457
//! `application/problem+json` body with `type`, `title`, `status` and `detail`, or, on the
//! token-exchange endpoint, the RFC 6749 error its OAuth clients expect ([`OAuthError`]).
//! Domain modules have their own error types; this is where they meet HTTP. 5xx details are
//! logged and never sent.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::AuthError;
use crate::policy::PolicyError;
use crate::ratelimit::RateLimitFields;
use crate::token::TokenError;

/// Seconds a client should wait before retrying a 503.
pub(crate) const RETRY_AFTER_SECS: &str = "1";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body or a field is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no credential, or one that does not verify.
    #[error(transparent)]
    Unauthorized(#[from] AuthError),
    /// 403: well formed, but the policy does not allow it.
    #[error("{0}")]
    Forbidden(String),
    /// 403: the caller or the identity is on the deny list (the operator's kill switch).
    #[error("{0}")]
    Denied(&'static str),
    /// 404.
    #[error("no such resource; the API is POST /v1/tokens (see /openapi.json)")]
    NotFound,
    /// 405.
    #[error("this method is not allowed on this resource (see /openapi.json)")]
    MethodNotAllowed,
    /// 413.
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// 415.
    #[error("the request body must be JSON, sent with Content-Type: application/json")]
    UnsupportedMediaType,
    /// 429: a rate limit refused it.
    #[error(transparent)]
    RateLimited(crate::ratelimit::Limited),
    /// 503: not ready, shutting down, at capacity, or too slow.
    #[error("{0}")]
    Unavailable(&'static str),
    /// 500: a bug; the detail is logged, the client sees a generic message.
    #[error("internal error")]
    Internal(String),
}

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type, e.g. `urn:tokenmint:problem:forbidden`.
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    /// What went wrong and how to fix it.
    pub detail: String,
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) | Self::Denied(_) => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The last part of the problem type URI.
    fn slug(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "invalid-request",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) | Self::Denied(_) => "forbidden",
            Self::NotFound => "not-found",
            Self::MethodNotAllowed => "method-not-allowed",
            Self::PayloadTooLarge { .. } => "payload-too-large",
            Self::UnsupportedMediaType => "unsupported-media-type",
            Self::RateLimited(_) => "rate-limited",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    fn detail(&self) -> String {
        match self {
            Self::Unauthorized(e) => e.public_detail().to_owned(),
            other => other.to_string(),
        }
    }
}

impl From<crate::issue::IssueError> for ApiError {
    fn from(e: crate::issue::IssueError) -> Self {
        use crate::issue::IssueError;
        match e {
            IssueError::Unauthorized(e) => e.into(),
            IssueError::RateLimited(e) => e.into(),
            IssueError::Refused(e) => e.into(),
            IssueError::Token(e) => e.into(),
            IssueError::Internal(detail) => Self::Internal(detail),
            IssueError::Audit(crate::audit::AuditError::Stalled) => Self::Unavailable(
                "the audit trail is not accepting records (its sink is stalled), so no token was issued; retry shortly",
            ),
            IssueError::Audit(crate::audit::AuditError::Failed) => {
                Self::Unavailable("the audit trail could not be written, so no token was issued; retry shortly")
            }
        }
    }
}

impl From<PolicyError> for ApiError {
    fn from(e: PolicyError) -> Self {
        match e {
            PolicyError::Invalid(reason) => Self::BadRequest(reason),
            PolicyError::Forbidden(reason) => Self::Forbidden(reason),
            PolicyError::Denied(list) => Self::Denied(list.detail()),
        }
    }
}

impl From<crate::ratelimit::RateLimitError> for ApiError {
    fn from(e: crate::ratelimit::RateLimitError) -> Self {
        match e {
            crate::ratelimit::RateLimitError::Limited(limited) => Self::RateLimited(limited),
            crate::ratelimit::RateLimitError::StoreUnavailable => {
                Self::Unavailable("the shared rate-limit store is unreachable; retry shortly")
            }
        }
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Serialize(_) => Self::Internal(e.to_string()),
            invalid => Self::BadRequest(invalid.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let Self::Internal(detail) = &self {
            tracing::error!(%detail, "internal error");
        }
        let body = serde_json::to_vec(&self.problem()).expect("a problem document always serializes");
        let mut response =
            (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"))], body)
                .into_response();
        if let Self::Unauthorized(e) = &self {
            let challenge = match e.bearer_error() {
                None => "Bearer realm=\"tokenmint\"".to_owned(),
                Some(code) => {
                    format!("Bearer realm=\"tokenmint\", error=\"{code}\", error_description=\"{}\"", e.public_detail())
                }
            };
            let challenge = HeaderValue::from_str(&challenge).expect("ASCII challenge");
            response.headers_mut().insert(header::WWW_AUTHENTICATE, challenge);
        }
        self.with_retry_headers(response)
    }
}

impl ApiError {
    /// The problem document this error is answered with.
    pub(crate) fn problem(&self) -> Problem {
        let status = self.status();
        Problem {
            problem_type: format!("urn:tokenmint:problem:{}", self.slug()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: self.detail(),
        }
    }

    /// `Retry-After` on a 503, and with the rate-limit fields on a 429.
    fn with_retry_headers(&self, mut response: Response) -> Response {
        let headers = response.headers_mut();
        match self {
            Self::Unavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
            }
            Self::RateLimited(limited) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(limited.retry_after_secs));
                return with_rate_limit_fields(response, Some(&limited.fields));
            }
            _ => {}
        }
        response
    }
}

/// A failure of the token-exchange endpoint, as RFC 6749 §5.2 has OAuth clients expect:
/// `{"error": "<code>", "error_description": "<what to fix>"}`.
#[derive(Debug)]
pub enum OAuthError {
    /// Any failure `POST /v1/tokens` can also have, mapped to its OAuth code.
    Api(ApiError),
    /// `scope` cannot be read.
    InvalidScope(String),
    /// `grant_type` is not token exchange.
    UnsupportedGrantType,
}

/// RFC 6749's error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthErrorBody {
    /// `invalid_request`, `invalid_grant`, `invalid_scope`, `unsupported_grant_type`,
    /// `temporarily_unavailable` (429 and 503) or `server_error`.
    #[schema(example = "invalid_scope")]
    pub error: &'static str,
    pub error_description: String,
}

impl<E: Into<ApiError>> From<E> for OAuthError {
    fn from(e: E) -> Self {
        Self::Api(e.into())
    }
}

impl OAuthError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        let bad = StatusCode::BAD_REQUEST;
        match self {
            Self::InvalidScope(_) => (bad, "invalid_scope"),
            Self::UnsupportedGrantType => (bad, "unsupported_grant_type"),
            Self::Api(e) => match e {
                ApiError::Unauthorized(AuthError::Missing | AuthError::NotBearer) => (bad, "invalid_request"),
                // The subject token is the grant: one that does not verify is an invalid grant.
                ApiError::Unauthorized(_) | ApiError::Denied(_) => (bad, "invalid_grant"),
                ApiError::Forbidden(_) => (bad, "invalid_scope"),
                ApiError::RateLimited(_) | ApiError::Unavailable(_) => (e.status(), "temporarily_unavailable"),
                ApiError::Internal(_) => (e.status(), "server_error"),
                ApiError::PayloadTooLarge { .. } => (e.status(), "invalid_request"),
                _ => (bad, "invalid_request"),
            },
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let (status, error) = self.status_and_code();
        let error_description = match &self {
            Self::InvalidScope(reason) => reason.clone(),
            Self::UnsupportedGrantType => {
                "grant_type must be urn:ietf:params:oauth:grant-type:token-exchange (RFC 8693)".to_owned()
            }
            Self::Api(ApiError::Internal(detail)) => {
                tracing::error!(%detail, "internal error");
                "internal error".to_owned()
            }
            Self::Api(e) => e.detail(),
        };
        let body = serde_json::to_vec(&OAuthErrorBody { error, error_description }).expect("always serializes");
        let response = (
            status,
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
                (header::PRAGMA, HeaderValue::from_static("no-cache")),
            ],
            body,
        )
            .into_response();
        match &self {
            Self::Api(e) => e.with_retry_headers(response),
            _ => response,
        }
    }
}

/// The IETF rate-limit fields (draft-ietf-httpapi-ratelimit-headers).
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// Adds one quota's members to the `RateLimit-Policy` and `RateLimit` list fields.
pub fn with_rate_limit_fields(mut response: Response, fields: Option<&RateLimitFields>) -> Response {
    let Some(fields) = fields else {
        return response;
    };
    let headers = response.headers_mut();
    for (name, value) in [(RATELIMIT_POLICY, &*fields.policy), (RATELIMIT, &*fields.state)] {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.append(name, value);
        }
    }
    response
}
