//! The explorer page: one self-contained HTML file (no CDN; nodes may have no internet),
//! reading the same `/api/v1` routes as every client.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

const PAGE: &str = include_str!("../assets/explorer.html");

/// `GET /`.
pub async fn page() -> Response {
    let mut response = PAGE.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    response
}
