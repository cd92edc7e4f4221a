//! Probes and metrics. `/livez`: the process answers. `/readyz`: it can mint (credentials loaded),
//! it is not draining (it turns 503 the moment shutdown begins, so the load balancer stops
//! sending), and the shared rate-limit store answers when failing closed depends on it.

use std::sync::atomic::{AtomicBool, Ordering};

use axum::Json;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, Problem};
use crate::http::AppState;
use crate::ratelimit::StoreStatus;

/// Process-wide health flags.
#[derive(Debug, Default)]
pub struct Health {
    draining: AtomicBool,
}

impl Health {
    /// Marks the process as shutting down: readiness fails from now on.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    #[schema(example = "ok")]
    pub status: &'static str,
    /// The key SID the default account's tokens are signed with now (never the secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_sid: Option<String>,
    /// With several Twilio accounts: each account's key SID, by account name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accounts: Option<std::collections::BTreeMap<String, String>>,
    /// Where rate-limit counts are kept: `memory`, `redis`, or redis failing open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_store: Option<&'static str>,
}

#[utoipa::path(get, path = "/livez", responses((status = 200, body = Status)))]
pub async fn livez() -> Json<Status> {
    Json(Status { status: "ok", key_sid: None, accounts: None, rate_limit_store: None })
}

#[utoipa::path(
    get,
    path = "/readyz",
    responses(
        (status = 200, body = Status),
        (status = 503, description = "Draining or not ready", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    if state.health.is_draining() {
        return Err(ApiError::Unavailable("shutting down"));
    }
    if !state.authenticator.providers_ready() {
        return Err(ApiError::Unavailable("an identity provider's keys have not been fetched yet"));
    }
    let store = state.limiter.store_status();
    if store == StoreStatus::SharedDownFailingClosed {
        return Err(ApiError::Unavailable(
            "the shared rate-limit store is unreachable and rate_limit.redis.on_error is fail_closed",
        ));
    }
    let minters = state.minters.load();
    let accounts: std::collections::BTreeMap<String, String> =
        minters.iter().map(|(name, minter)| (name.to_owned(), minter.key_sid().to_owned())).collect();
    Ok(Json(Status {
        status: "ready",
        key_sid: Some(minters.default_account().key_sid().to_owned()),
        accounts: (accounts.len() > 1).then_some(accounts),
        rate_limit_store: Some(store.label()),
    }))
}

/// `GET /metrics` (admin listener only): Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render())
}
