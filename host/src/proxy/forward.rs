//! One request's way through vane: take its facts, ask the policy, rewrite the head, forward it
//! on a pooled connection, and turn the outcome into the response the client gets.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use http::uri::{PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri, Version, header};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::headers::{add_forwarded, remove_hop_by_hop};
use super::{ProxyBody, ProxyError, Shared};
use crate::backend::{Backend, InFlightGuard};
use crate::balancer::RequestInfo;
use crate::config::ProxyConfig;

/// The pooled HTTP/1.1 client vane uses to reach backends.
pub(crate) type UpstreamClient = Client<HttpConnector, Incoming>;

/// Builds the upstream client: keep-alive pool, connect timeout, no Nagle delay.
pub(crate) fn upstream_client(config: &ProxyConfig) -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(config.connect_timeout));
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        // The client's Host header is forwarded untouched; the pool must not replace it.
        .set_host(false)
        .build(connector)
}

/// Serves one client request: picks a backend and forwards to it, or answers vane's own error.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    client: SocketAddr,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    Ok(match forward(&shared, client, request).await {
        Ok(response) => response,
        Err(error) => error_response(error),
    })
}

async fn forward(
    shared: &Shared,
    client: SocketAddr,
    mut request: Request<Incoming>,
) -> Result<Response<ProxyBody>, ProxyError> {
    let (index, backend) = choose(shared, client, &request)?;
    prepare_request(&mut request, client, &backend);

    let guard = InFlightGuard::start(backend);
    let stats = &guard.backend().stats;
    let started = Instant::now();
    let outcome = tokio::time::timeout(
        shared.config.request_timeout,
        shared.client.request(request),
    )
    .await;
    let latency = started.elapsed();
    let mut response = match outcome {
        Ok(Ok(response)) => response,
        Ok(Err(err)) => {
            stats.record_failure();
            shared.policy.load().observe(index, 0, latency);
            return Err(if err.is_connect() {
                ProxyError::Connect
            } else {
                ProxyError::Upstream
            });
        }
        Err(_elapsed) => {
            stats.record_failure();
            shared.policy.load().observe(index, 0, latency);
            return Err(ProxyError::Timeout);
        }
    };
    stats.record_latency(latency);
    if response.status().is_server_error() {
        stats.record_failure();
    }
    shared
        .policy
        .load()
        .observe(index, response.status().as_u16(), latency);
    remove_hop_by_hop(response.headers_mut());
    Ok(response.map(|body| ProxyBody::Upstream {
        body,
        guard: Some(guard),
    }))
}

/// Asks the policy for a backend for this request: its index in the set and the backend.
fn choose(
    shared: &Shared,
    client: SocketAddr,
    request: &Request<Incoming>,
) -> Result<(u32, Arc<Backend>), ProxyError> {
    let headers = request.headers();
    let authority = request
        .uri()
        .authority()
        .map(|authority| authority.as_str())
        .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()))
        .unwrap_or("");
    let info = RequestInfo {
        sequence: shared.sequence.fetch_add(1, Ordering::Relaxed),
        method: request.method(),
        authority,
        path: request
            .uri()
            .path_and_query()
            .map_or("/", PathAndQuery::as_str),
        client_ip: client.ip(),
        headers,
    };
    let set = shared.backends.load();
    let ranked = shared.policy.load().pick(&info, &set);
    let index = *ranked.first().ok_or(ProxyError::NoBackend)?;
    let backend = set.get(index as usize).ok_or(ProxyError::NoBackend)?;
    Ok((index, backend.clone()))
}

/// Rewrites the request for the backend: its address in the URI, HTTP/1.1, the client's Host
/// kept (taken from `:authority` for HTTP/2 clients), hop-by-hop headers out, forwarding headers in.
fn prepare_request(request: &mut Request<Incoming>, client: SocketAddr, backend: &Backend) {
    let path = request
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let original_authority = request.uri().authority().cloned();
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(backend.authority.clone());
    parts.path_and_query = Some(path);
    *request.uri_mut() = Uri::from_parts(parts).expect("scheme, authority and path make a URI");
    *request.version_mut() = Version::HTTP_11;

    let headers = request.headers_mut();
    remove_hop_by_hop(headers);
    if !headers.contains_key(header::HOST)
        && let Some(authority) = original_authority
        && let Ok(host) = HeaderValue::try_from(authority.as_str())
    {
        headers.insert(header::HOST, host);
    }
    let host = headers.get(header::HOST).cloned();
    add_forwarded(headers, client.ip(), host.as_ref());
}

/// The response for a request vane could not forward.
fn error_response(error: ProxyError) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::message(error.body()));
    *response.status_mut() = error.status();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
