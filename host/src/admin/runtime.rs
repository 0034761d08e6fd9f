//! The runtime calls on the backend set: `POST /backends` (add), `DELETE /backends/NAME`
//! (remove), `PATCH /backends/NAME` (weight), `POST /backends/NAME/drain` and
//! `POST /backends/NAME/undrain`. Each answers JSON: what changed, or why it was refused.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::json;

use super::{json, refusal_status};
use crate::reload::{NewBackend, ReloadError, Reloaded, Reloader};

/// The largest request body a runtime call reads.
const MAX_BODY: usize = 64 << 10;

/// `PATCH /backends/NAME`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Patch {
    weight: i64,
}

/// Whether `request` is a runtime call: `POST /backends`, or any call under `/backends/`.
pub(super) fn is_runtime_call<B>(request: &Request<B>) -> bool {
    let path = request.uri().path();
    (path == "/backends" && request.method() == Method::POST) || path.starts_with("/backends/")
}

/// Answers a runtime call (see [`is_runtime_call`]).
pub(super) async fn answer(
    reloader: &Reloader,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let force = request.uri().query().is_some_and(|query| {
        query
            .split('&')
            .any(|pair| pair == "force=true" || pair == "force=1")
    });
    let Some(rest) = path.strip_prefix("/backends/") else {
        let new = match read_json::<NewBackend>(request).await {
            Ok(new) => new,
            Err(response) => return response,
        };
        let name = new.name.clone();
        return changed(reloader.add_backend(new).await, &name, StatusCode::CREATED);
    };
    let (name, action) = match rest.rsplit_once('/') {
        Some((name, action @ ("drain" | "undrain"))) => (name, Some(action)),
        _ => (rest, None),
    };
    let name = percent_decoded(name);
    match (method, action) {
        (Method::POST, Some(action)) => match reloader.set_draining(&name, action == "drain") {
            Ok((changed, in_flight)) => json(
                StatusCode::OK,
                json!({
                    "backend": name,
                    "draining": action == "drain",
                    "changed": changed,
                    "in_flight": in_flight,
                }),
            ),
            Err(err) => refused(&err),
        },
        (_, Some(_)) => allowed_only("POST"),
        (Method::DELETE, None) => changed(
            reloader.remove_backend(&name, force).await,
            &name,
            StatusCode::OK,
        ),
        (Method::PATCH, None) => match read_json::<Patch>(request).await {
            Ok(patch) => changed(
                reloader.set_weight(&name, patch.weight).await,
                &name,
                StatusCode::OK,
            ),
            Err(response) => response,
        },
        _ => allowed_only("DELETE or PATCH"),
    }
}

/// The answer to a call that changes the set: its changes, or why it was refused.
fn changed(
    result: Result<Reloaded, ReloadError>,
    name: &str,
    status: StatusCode,
) -> Response<Full<Bytes>> {
    match result {
        Ok(reloaded) => json(
            status,
            json!({ "backend": name, "changes": reloaded.changes }),
        ),
        Err(err) => refused(&err),
    }
}

fn refused(err: &ReloadError) -> Response<Full<Bytes>> {
    json(refusal_status(err), json!({ "error": err.to_string() }))
}

fn allowed_only(methods: &str) -> Response<Full<Bytes>> {
    json(
        StatusCode::METHOD_NOT_ALLOWED,
        json!({ "error": format!("only {methods} is allowed here") }),
    )
}

/// The request's body as `T`, or the 400 (413 if too large) to answer.
async fn read_json<T: serde::de::DeserializeOwned>(
    request: Request<Incoming>,
) -> Result<T, Response<Full<Bytes>>> {
    let bad = |status: StatusCode, message: String| json(status, json!({ "error": message }));
    let body = Limited::new(request.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|err| {
            if err.is::<http_body_util::LengthLimitError>() {
                bad(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the body is larger than {MAX_BODY} bytes"),
                )
            } else {
                bad(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the body: {err}"),
                )
            }
        })?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|err| {
        bad(
            StatusCode::BAD_REQUEST,
            format!("the body is not what this call takes: {err}"),
        )
    })
}

/// `text` with its `%XX` escapes decoded (a backend name in a path may hold `/` as `%2F`);
/// escapes that are not valid UTF-8 are kept as written.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|pair| pair.iter().all(u8::is_ascii_hexdigit))
            .and_then(|pair| std::str::from_utf8(pair).ok())
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                i += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(decoded).unwrap_or_else(|_| text.to_owned())
}
