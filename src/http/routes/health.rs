//! Probes and metrics. `/livez`: the process answers. `/readyz`: it can mint (credentials loaded),
//! it is not draining (it turns 503 the moment shutdown begins, so the load balancer stops
//! sending), and the shared rate-limit store answers when failing closed depends on it.

use axum::Json;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::http::error::{ApiError, Problem};
use crate::ratelimit::StoreStatus;

/// What a probe answers. The public listener says only `status`; the admin listener adds the
/// details an operator needs (and an attacker should not see).
#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    #[schema(example = "ok")]
    pub status: &'static str,
    /// Admin only: the key SID the default account's tokens are signed with now (never the
    /// secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_sid: Option<String>,
    /// Admin only, with several Twilio accounts: each account's key SID, by account name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accounts: Option<std::collections::BTreeMap<String, String>>,
    /// Admin only: where rate-limit counts are kept: `memory`, `redis`, or redis failing open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_store: Option<&'static str>,
    /// Admin only: `running` while configuration changes (SIGHUP, watched files) are applied,
    /// `not running` otherwise (`tokenmint check-config` and tests, or a reloader that died).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reloader: Option<&'static str>,
}

impl Status {
    fn only(status: &'static str) -> Self {
        Self { status, key_sid: None, accounts: None, rate_limit_store: None, reloader: None }
    }
}

#[utoipa::path(get, path = "/livez", responses((status = 200, body = Status)))]
pub async fn livez() -> Json<Status> {
    Json(Status::only("ok"))
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
    check_ready(&state)?;
    Ok(Json(Status::only("ready")))
}

/// The admin listener's `/readyz`: the same verdict, with the details.
pub async fn admin_readyz(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    let store = check_ready(&state)?;
    let minters = state.minters.load();
    let accounts: std::collections::BTreeMap<String, String> =
        minters.iter().map(|(name, minter)| (name.to_owned(), minter.key_sid().to_owned())).collect();
    Ok(Json(Status {
        status: "ready",
        key_sid: Some(minters.default_account().key_sid().to_owned()),
        accounts: (accounts.len() > 1).then_some(accounts),
        rate_limit_store: Some(store.label()),
        reloader: Some(if state.health.is_reloader_running() { "running" } else { "not running" }),
    }))
}

/// Whether the replica can mint; the rate-limit store's status when it can.
fn check_ready(state: &AppState) -> Result<StoreStatus, ApiError> {
    if state.health.is_draining() {
        return Err(ApiError::Unavailable("shutting down"));
    }
    if !state.authenticator.load().providers_ready() {
        return Err(ApiError::Unavailable("an identity provider's keys have not been fetched yet"));
    }
    let store = state.limiter.load().store_status();
    if store == StoreStatus::SharedDownFailingClosed {
        return Err(ApiError::Unavailable(
            "the shared rate-limit store is unreachable and rate_limit.redis.on_error is fail_closed",
        ));
    }
    Ok(store)
}

/// `GET /metrics` (admin listener only): Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render())
}
