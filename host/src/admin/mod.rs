//! The admin listener: JSON status of the backends and the policy, Prometheus metrics, and
//! `POST /reload`, each behind the bearer token when the config names one. It serves operators, never clients, and must stay off the proxy's hot path:
//! every answer is built from the same atomics the proxy updates, at the moment it is asked for.

mod auth;
mod dashboard;
mod metrics;
mod runtime;
pub mod shadow_view;
mod status;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::reload::{ReloadError, Reloader};
use crate::state::State;

pub use metrics::encode_metrics;

/// What the admin API reads and asks: the vane's state, and its reloader.
#[derive(Clone)]
struct Admin {
    state: Arc<State>,
    reloader: Arc<Reloader>,
}

/// Serves the admin API for `state` and `reloader` on `listener` until `stop` is cancelled.
pub async fn serve_admin(
    listener: TcpListener,
    state: Arc<State>,
    reloader: Arc<Reloader>,
    stop: CancellationToken,
) {
    let admin = Admin { state, reloader };
    let mut connections = JoinSet::new();
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "admin: cannot accept a connection");
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        let admin = admin.clone();
        connections.spawn(async move {
            let service = service_fn(move |request| answer(admin.clone(), request));
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
}

async fn answer(
    admin: Admin,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let Admin { state, reloader } = &admin;
    // The probes an orchestrator sends answer without the token: they tell nothing more than
    // whether to send traffic.
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        match request.uri().path() {
            "/live" => return Ok(json(StatusCode::OK, serde_json::json!({ "live": true }))),
            "/ready" => return Ok(readiness(state)),
            // The page holds no data; what it asks for next carries the token.
            "/" => return Ok(dashboard::page(reloader.admin_token().is_some())),
            _ => {}
        }
    }
    if let Err(refused) = auth::check(reloader.admin_token().as_deref(), request.headers()) {
        let mut response = json(
            refused.status(),
            serde_json::json!({ "error": refused.message() }),
        );
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, refused.challenge());
        return Ok(response);
    }
    if runtime::is_runtime_call(&request) {
        return Ok(runtime::answer(reloader, request).await);
    }
    let path = request.uri().path();
    let response = match (request.method(), path) {
        (&Method::GET, "/backends") => json(StatusCode::OK, status::backends(state, reloader)),
        (&Method::GET, "/discovery") => {
            json(StatusCode::OK, status::discovery(reloader.discovery()))
        }
        (&Method::GET, "/policy") => json(StatusCode::OK, status::policy(state, reloader.status())),
        (&Method::GET, "/tls") => json(StatusCode::OK, status::tls(reloader.tls_listeners())),
        (&Method::POST, "/reload") => match reloader.reload().await {
            Ok(reloaded) => json(
                StatusCode::OK,
                serde_json::json!({ "reloaded": true, "changes": reloaded.changes }),
            ),
            Err(err) => json(
                refusal_status(&err),
                serde_json::json!({ "reloaded": false, "error": err.to_string() }),
            ),
        },
        (&Method::POST, "/policy/promote") => match reloader.promote_shadow().await {
            Ok(reloaded) => json(
                StatusCode::OK,
                serde_json::json!({ "promoted": true, "changes": reloaded.changes }),
            ),
            Err(err) => json(
                refusal_status(&err),
                serde_json::json!({ "promoted": false, "error": err.to_string() }),
            ),
        },
        (&Method::GET, "/metrics") => match encode_metrics(state, reloader) {
            Ok(text) => reply(StatusCode::OK, metrics::CONTENT_TYPE, text),
            Err(_) => reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                "cannot encode the metrics\n".into(),
            ),
        },
        (_, "/policy" | "/tls" | "/metrics" | "/live" | "/ready" | "/discovery") => reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "only GET is allowed here\n".into(),
        ),
        (_, "/backends") => reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "only GET (the set) and POST (add a backend) are allowed here\n".into(),
        ),
        (_, "/reload" | "/policy/promote") => reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "only POST is allowed here\n".into(),
        ),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found; try GET / (the dashboard), /backends, /discovery, /policy, /tls, /metrics, /live or /ready; \
             POST /reload or /policy/promote; or the runtime calls POST /backends, DELETE or \
             PATCH /backends/NAME, POST /backends/NAME/drain or /undrain\n"
                .into(),
        ),
    };
    Ok(response)
}

/// The status of a refused reload or runtime call: 400 for a bad config or backend, 404 for a
/// backend the set does not have, 409 for a change that needs a restart, a promotion with no
/// shadow or a backend that cannot be changed so now, 422 for a plugin vane will not run (or
/// that refuses the new set), 500 if the reload itself broke.
fn refusal_status(err: &ReloadError) -> StatusCode {
    match err {
        ReloadError::Config(_) | ReloadError::BadBackend(_) => StatusCode::BAD_REQUEST,
        ReloadError::UnknownBackend(_) => StatusCode::NOT_FOUND,
        ReloadError::NeedsRestart(_)
        | ReloadError::NoShadow
        | ReloadError::ShadowNotPromotable(_)
        | ReloadError::Conflict(_) => StatusCode::CONFLICT,
        ReloadError::Plugin(_)
        | ReloadError::Probe { .. }
        | ReloadError::Tls { .. }
        | ReloadError::BackendTls(_) => StatusCode::UNPROCESSABLE_ENTITY,
        ReloadError::Aborted(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// `GET /ready`: 200 while vane should be sent requests, else 503 with the reason (shutting
/// down, or no backend in rotation).
fn readiness(state: &State) -> Response<Full<Bytes>> {
    match state.not_ready() {
        None => json(StatusCode::OK, serde_json::json!({ "ready": true })),
        Some(reason) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({ "ready": false, "reason": reason }),
        ),
    }
}

fn json(status: StatusCode, value: serde_json::Value) -> Response<Full<Bytes>> {
    let mut text = serde_json::to_string_pretty(&value).expect("a JSON value always serializes");
    text.push('\n');
    reply(status, "application/json", text)
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
