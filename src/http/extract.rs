//! Extractors: the principal the gate admitted, and the JSON body, failing as an [`ApiError`]
//! (415, 413 or 400).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::app::AppState;
use crate::auth::Principal;
use crate::http::error::ApiError;

/// The principal the mint route's gate admitted, taken out of the request rather than cloned
/// (as axum's `Extension` would, with each of its strings). Missing only on a route built
/// without the gate: a 500, never an unauthenticated token.
pub struct Admitted(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Admitted {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .remove::<Principal>()
            .map(Self)
            .ok_or_else(|| ApiError::Internal("a mint route was reached without its gate".into()))
    }
}

/// A JSON object body; no body at all is `T::default()` ("the policy's defaults"), while
/// whitespace alone is not JSON (schemathesis found it accepted). Content
/// type, size and syntax failures become 415, 413 and 400 problems.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + Default> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let is_json = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .map(|essence| {
                let essence = essence.trim().to_ascii_lowercase();
                essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
            });
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge { limit: state.body_limit_bytes }
            } else {
                ApiError::BadRequest("the request body could not be read".into())
            }
        })?;
        if bytes.is_empty() {
            return Ok(Self(T::default()));
        }
        if is_json != Some(true) {
            return Err(ApiError::UnsupportedMediaType);
        }
        // A derived `Deserialize` would also read an array, field by field, into a struct.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::BadRequest(
                "the body must be a JSON object (or empty, for the policy's defaults)".into(),
            ));
        }
        let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
            // The field's path leads the reason: "grants.voice.outgoing.application_sid: must be AP…".
            let path = e.path().to_string();
            let reason = e.into_inner();
            ApiError::BadRequest(if path == "." {
                format!("invalid JSON body: {reason}")
            } else {
                format!("invalid JSON body: {path}: {reason}")
            })
        })?;
        // Trailing characters after the object.
        deserializer.end().map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
        Ok(Self(value))
    }
}
