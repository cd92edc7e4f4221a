//! `GET /openapi.json`: the API described as OpenAPI 3, generated from the Rust types so it
//! cannot drift from what the handlers accept and return.

use std::sync::LazyLock;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{exchange, health, tokens};
use crate::http::error::{OAuthErrorBody, Problem};
use crate::policy::{
    ChatRequest, OutgoingRequest, Platform, RequestedGrants, SyncRequest, TaskRouterRequest, TokenRequest,
    VideoRequest, VoiceRequest,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "tokenmint", description = "Mints short-lived Twilio Access Tokens for verified app users."),
    paths(tokens::mint_token, exchange::exchange, health::livez, health::readyz),
    components(schemas(
        TokenRequest, RequestedGrants, VideoRequest, VoiceRequest, OutgoingRequest, ChatRequest, SyncRequest,
        TaskRouterRequest, Platform, tokens::TokenResponse, exchange::ExchangeForm, exchange::ExchangeResponse, health::Status,
        Problem, OAuthErrorBody
    )),
    modifiers(&BearerAuth, &TokenBodyShape)
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// What the derive cannot say about the `POST /v1/tokens` body: it may be left out (empty, for the
/// policy's defaults), though when present it is a `TokenRequest` object (utoipa's `Option<T>`
/// would allow `null`); and `grants` names at least one grant (utoipa 5.5 writes
/// `#[schema(min_properties)]` as `maxProperties`).
struct TokenBodyShape;

impl Modify for TokenBodyShape {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let grants = openapi.components.as_mut().and_then(|c| c.schemas.get_mut("RequestedGrants"));
        if let Some(utoipa::openapi::RefOr::T(utoipa::openapi::schema::Schema::Object(grants))) = grants {
            grants.min_properties = Some(1);
        }
        let body = openapi
            .paths
            .paths
            .get_mut("/v1/tokens")
            .and_then(|path| path.post.as_mut())
            .and_then(|operation| operation.request_body.as_mut());
        if let Some(body) = body {
            body.required = Some(utoipa::openapi::Required::False);
        }
    }
}

static DOCUMENT: LazyLock<String> =
    LazyLock::new(|| ApiDoc::openapi().to_json().expect("the OpenAPI document always serializes"));

#[utoipa::path(get, path = "/openapi.json", responses((status = 200, description = "This document")))]
pub async fn openapi_json() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], DOCUMENT.as_str())
}
