//! `serve --dev` only: the browser example (`clients/js`) on the service's own origin, so the
//! first browser token needs no CORS setting and no second server. The banner links to it with
//! the dev session in the fragment, which the page reads and no server ever sees.

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

const EXAMPLE_PAGE: &str = include_str!("../../../clients/js/example.html");
const CLIENT_SCRIPT: &str = include_str!("../../../clients/js/tokenmint.js");

pub async fn example_page() -> impl IntoResponse {
    ([(CONTENT_TYPE, "text/html; charset=utf-8")], EXAMPLE_PAGE)
}

pub async fn client_script() -> impl IntoResponse {
    ([(CONTENT_TYPE, "text/javascript; charset=utf-8")], CLIENT_SCRIPT)
}
