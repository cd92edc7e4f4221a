//! Every failure the HTTP API reports, and the one place each becomes a response: an RFC 9457
//! `application/problem+json` body with `type`, `title`, `status` and `detail`. Domain modules
//! have their own error types; this enum is where they meet HTTP. 5xx details are logged and
//! never sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::AuthError;
use crate::policy::PolicyError;
use crate::token::TokenError;

/// Seconds a client should wait before retrying a 503.
const RETRY_AFTER_SECS: &str = "1";

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
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
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
            Self::Forbidden(_) => "forbidden",
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

impl From<PolicyError> for ApiError {
    fn from(e: PolicyError) -> Self {
        match e {
            PolicyError::Invalid(reason) => Self::BadRequest(reason),
            PolicyError::Forbidden(reason) => Self::Forbidden(reason),
            PolicyError::Denied(list) => Self::Forbidden(PolicyError::Denied(list).to_string()),
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
        let problem = Problem {
            problem_type: format!("urn:tokenmint:problem:{}", self.slug()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: self.detail(),
        };
        let body = serde_json::to_vec(&problem).expect("a problem document always serializes");
        let mut response =
            (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"))], body)
                .into_response();
        let headers = response.headers_mut();
        match &self {
            Self::Unauthorized(e) => {
                let challenge = match e.bearer_error() {
                    None => "Bearer realm=\"tokenmint\"".to_owned(),
                    Some(code) => format!(
                        "Bearer realm=\"tokenmint\", error=\"{code}\", error_description=\"{}\"",
                        e.public_detail()
                    ),
                };
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_str(&challenge).expect("ASCII challenge"));
            }
            Self::Unavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
            }
            Self::RateLimited(limited) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(limited.retry_after_secs));
                return crate::http::with_rate_limit_fields(response, &limited.fields);
            }
            _ => {}
        }
        response
    }
}
