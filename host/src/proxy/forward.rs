//! One request's way through vane: take its facts, ask the policy, rewrite the head, forward it
//! on a pooled connection, and turn the outcome into the response the client gets.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::uri::{PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri, Version, header};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Instant;

use super::headers::{add_forwarded, join_cookies, remove_hop_by_hop};
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
        .pool_idle_timeout(config.upstream_idle_timeout)
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
    check_host(&request)?;
    let (generation, index, backend) = choose(shared, client, &request)?;
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
    let error = match outcome {
        Ok(Ok(response)) => {
            stats.record_latency(latency);
            if response.status().is_server_error() {
                stats.record_failure();
            }
            let status = response.status().as_u16();
            observe(shared, generation, index, status, latency);
            let mut response = response.map(|body| ProxyBody::Upstream {
                body,
                guard: Some(guard),
            });
            remove_hop_by_hop(response.headers_mut());
            return Ok(response);
        }
        Ok(Err(err)) => classify(&err),
        Err(_elapsed) => ProxyError::Timeout,
    };
    if error.is_upstream() {
        stats.record_failure();
        observe(shared, generation, index, 0, latency);
    }
    Err(error)
}

/// Reports an outcome to the policy, unless the backend set changed since the pick (then
/// `index` may name another backend).
fn observe(shared: &Shared, generation: u64, index: u32, status: u16, latency: Duration) {
    let set = shared.backends.load();
    if set.generation() == generation {
        shared.policy.load().observe(&set, index, status, latency);
    }
}

/// Tells whose fault a failed exchange was: no connection, the client's body breaking off, or
/// the backend breaking off before its response headers.
fn classify(err: &hyper_util::client::legacy::Error) -> ProxyError {
    if err.is_connect() {
        return ProxyError::Connect;
    }
    let hyper_error = std::error::Error::source(err).and_then(|e| e.downcast_ref::<hyper::Error>());
    if hyper_error.is_some_and(hyper::Error::is_user) {
        ProxyError::ClientBody
    } else {
        ProxyError::Upstream
    }
}

/// Refuses an HTTP/1.1 request without exactly one valid Host (RFC 9112 §3.2); HTTP/1.0 may
/// omit it, and HTTP/2 names the host in `:authority`.
fn check_host(request: &Request<Incoming>) -> Result<(), ProxyError> {
    let mut hosts = request.headers().get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => Err(ProxyError::BadHost),
        (None, _) if request.version() == Version::HTTP_11 => Err(ProxyError::BadHost),
        (Some(host), None) if host.is_empty() || host.to_str().is_err() => Err(ProxyError::BadHost),
        _ => Ok(()),
    }
}

/// Asks the policy for a backend for this request: the set's generation, the backend's index
/// in it, and the backend.
fn choose(
    shared: &Shared,
    client: SocketAddr,
    request: &Request<Incoming>,
) -> Result<(u64, u32, Arc<Backend>), ProxyError> {
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
    Ok((set.generation(), index, backend.clone()))
}

/// Rewrites the request for the backend: its address in the URI, HTTP/1.1, the Host the client
/// asked for (from an absolute-form URI or `:authority` when it has one, RFC 9112 §3.2.2), split
/// cookies joined, hop-by-hop headers out, forwarding headers in.
fn prepare_request(request: &mut Request<Incoming>, client: SocketAddr, backend: &Backend) {
    let path = request
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let asked_authority = request
        .uri()
        .authority()
        .and_then(|authority| HeaderValue::try_from(authority.as_str()).ok());
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(backend.authority.clone());
    parts.path_and_query = Some(path);
    *request.uri_mut() = Uri::from_parts(parts).expect("scheme, authority and path make a URI");
    let from_http2 = request.version() == Version::HTTP_2;
    *request.version_mut() = Version::HTTP_11;

    let headers = request.headers_mut();
    remove_hop_by_hop(headers);
    if from_http2 {
        join_cookies(headers);
    }
    if let Some(authority) = asked_authority {
        headers.insert(header::HOST, authority);
    }
    let host = headers.get(header::HOST).cloned();
    if host.is_none() {
        // An HTTP/1.0 client may name no host; HTTP/1.1 requires one, so name the backend.
        let own = HeaderValue::try_from(backend.authority.as_str())
            .expect("an address is a valid header value");
        headers.insert(header::HOST, own);
    }
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
