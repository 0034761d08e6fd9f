//! `GET /`: the live dashboard, one page embedded in the binary (its script and styles inline,
//! no asset from anywhere else), which polls `/backends`, `/policy` and `/discovery` once a
//! second and draws them. The page itself holds no data, so it answers without the token;
//! its requests for data carry the token the operator types in, as every other call does.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

/// The page: HTML with its script and styles inline.
pub const PAGE: &str = include_str!("dashboard.html");

/// What the page may do: run its own inline script and styles, and ask this admin API.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The dashboard page, saying whether the admin API asks for a token (`token_required`), so
/// that it asks the operator for it before asking for data.
pub(super) fn page(token_required: bool) -> Response<Full<Bytes>> {
    let token = if token_required { "required" } else { "none" };
    let page = PAGE.replacen("TOKEN_REQUIRED", token, 1);
    let mut response = Response::new(Full::new(Bytes::from(page)));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}
