//! Active health checks: every interval, one GET of the configured path to each backend of the
//! current set, on a fresh connection; a 2xx within the timeout is a success.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Uri, header};
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::state::Transition;
use crate::backend::Backend;
use crate::config::HealthConfig;
use crate::proxy::Shared;

type ProbeClient = Client<HttpConnector, Empty<Bytes>>;

/// Probes every backend of `shared`'s current set each `interval` until `stop` is cancelled.
/// The first round starts at once; a backend added by a reload is probed from the next round.
pub async fn run_health_checks(shared: Arc<Shared>, config: HealthConfig, stop: CancellationToken) {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(config.timeout));
    connector.set_nodelay(true);
    // No pooling: each probe opens its own connection, so it tests that the backend accepts.
    let client: ProbeClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .timer(TokioTimer::new())
        .build(connector);
    let config = Arc::new(config);
    let mut ticks = tokio::time::interval(config.interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = stop.cancelled() => return,
        }
        let mut round = JoinSet::new();
        for backend in shared.backends.load().backends() {
            let (client, config, backend) = (client.clone(), config.clone(), backend.clone());
            round.spawn(async move {
                let ok = probe(&client, &config, &backend).await;
                report(&backend, backend.health.record_probe(ok, &config));
            });
        }
        tokio::select! {
            _ = round.join_all() => {}
            () = stop.cancelled() => return,
        }
    }
}

/// One probe: whether the backend answered the health path with a 2xx within the timeout.
async fn probe(client: &ProbeClient, config: &HealthConfig, backend: &Backend) -> bool {
    let uri = Uri::builder()
        .scheme("http")
        .authority(backend.authority.clone())
        .path_and_query(config.path.clone())
        .build();
    let Ok(uri) = uri else { return false };
    let mut request = Request::new(Empty::new());
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    headers.insert(
        header::USER_AGENT,
        HeaderValue::from_static("vane-health-check"),
    );
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    match tokio::time::timeout(config.timeout, client.request(request)).await {
        Ok(Ok(response)) => response.status().is_success(),
        Ok(Err(_)) | Err(_) => false,
    }
}

fn report(backend: &Backend, transition: Option<Transition>) {
    match transition {
        Some(Transition::BecameUnhealthy) => tracing::warn!(
            backend = %backend.name,
            address = %backend.address,
            "health check failing; the backend is out of rotation"
        ),
        Some(Transition::BecameHealthy) => tracing::info!(
            backend = %backend.name,
            address = %backend.address,
            "health check passing; the backend is back in rotation"
        ),
        None => {}
    }
}
