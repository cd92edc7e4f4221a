//! `GET /openapi.json`: the API described as OpenAPI 3, generated from the Rust types so it
//! cannot drift from what the handlers accept and return.

use std::sync::LazyLock;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{exchange, health, tokens};
use crate::error::{OAuthErrorBody, Problem};
use crate::policy::{
    ChatRequest, OutgoingRequest, RequestedGrants, SyncRequest, TaskRouterRequest, TokenRequest, VideoRequest,
    VoiceRequest,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "tokenmint", description = "Mints short-lived Twilio Access Tokens for verified app users."),
    paths(tokens::mint_token, exchange::exchange, health::livez, health::readyz),
    components(schemas(
        TokenRequest, RequestedGrants, VideoRequest, VoiceRequest, OutgoingRequest, ChatRequest, SyncRequest,
        TaskRouterRequest, tokens::TokenResponse, exchange::ExchangeForm, exchange::ExchangeResponse, health::Status,
        Problem, OAuthErrorBody
    )),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

static DOCUMENT: LazyLock<String> =
    LazyLock::new(|| ApiDoc::openapi().to_json().expect("the OpenAPI document always serializes"));

#[utoipa::path(get, path = "/openapi.json", responses((status = 200, description = "This document")))]
pub async fn openapi_json() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], DOCUMENT.as_str())
}
