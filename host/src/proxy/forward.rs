//! One request's way through vane: take its facts, ask the policy, rewrite the head, forward it
//! on a pooled connection, and turn the outcome into the response the client gets.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::uri::PathAndQuery;
use http::{HeaderValue, Method, Request, Response, Uri, Version, header};
use hyper::body::Incoming;
use tokio::time::Instant;

use super::headers::{ClientAddress, add_forwarded, join_cookies, remove_hop_by_hop};
use super::request_body::{AttemptBody, RequestBody};
use super::upstream::UpstreamError;
use super::{ProxyBody, ProxyError, Shared};
use crate::backend::{Backend, BackendSet, InFlightGuard, Outcome};
use crate::balancer::{Ranked, RequestInfo};
use crate::health;

/// Serves one client request: picks a backend and forwards to it, or answers vane's own error.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    client: ClientAddress,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    Ok(match forward(&shared, &client, request).await {
        Ok(response) => response,
        Err(error) => error_response(error),
    })
}

async fn forward(
    shared: &Shared,
    client: &ClientAddress,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, ProxyError> {
    check_host(&request)?;
    let _active = shared.retry_budget.start_request();
    let set = shared.backends.load_full();
    let sequence = shared.sequence.fetch_add(1, Ordering::Relaxed);
    let ranked = rank(shared, sequence, client.socket, &request, &set);
    let (mut head, body) = request.into_parts();
    prepare_head(&mut head, client);
    let body = RequestBody::new(body);
    let mut candidates = Candidates::new(ranked, sequence);
    let mut retries_left = shared.retry_budget.max_retries();
    let mut last_error = ProxyError::NoBackend;
    // Holds the current retry's place in the budget until the attempt ends.
    let mut _retry = None;
    while let Some(index) = candidates.next(&set) {
        let backend = set.backends()[index as usize].clone();
        let request = request_for(&mut head, &backend, body.attempt(), retries_left == 0);
        let error = match send(shared, &set, index, backend, request).await {
            Ok(response) => return Ok(response),
            Err(error) => error,
        };
        last_error = error;
        if retries_left == 0 || !may_retry(error, &head.method, &body) {
            break;
        }
        let Some(retry) = shared.retry_budget.try_retry() else {
            break;
        };
        _retry = Some(retry);
        retries_left -= 1;
    }
    Err(last_error)
}

/// One attempt on `backend` (`index` in `set`): counts it, forwards it, and records what came back.
async fn send(
    shared: &Shared,
    set: &BackendSet,
    index: u32,
    backend: Arc<Backend>,
    request: Request<AttemptBody>,
) -> Result<Response<ProxyBody>, ProxyError> {
    let guard = InFlightGuard::start(backend);
    let backend = guard.backend();
    let started = Instant::now();
    let outcome = tokio::time::timeout(
        shared.config.request_timeout,
        shared.upstream.send(backend.address, request),
    )
    .await;
    let latency = started.elapsed();
    let error = match outcome {
        Ok(Ok((response, connection))) => {
            let status = response.status().as_u16();
            backend
                .stats
                .record_outcome(Outcome::Status(status), latency);
            health::record_attempt(backend, true, &shared.ejection);
            observe(shared, set, index, status, latency);
            let mut response = response.map(|body| ProxyBody::Upstream {
                body,
                guard: Some(guard),
                connection: Some(connection),
            });
            remove_hop_by_hop(response.headers_mut());
            return Ok(response);
        }
        Ok(Err(UpstreamError::Connect)) => ProxyError::Connect,
        Ok(Err(UpstreamError::ClientBody)) => ProxyError::ClientBody,
        Ok(Err(UpstreamError::Broken)) => ProxyError::Upstream,
        Err(_elapsed) => ProxyError::Timeout,
    };
    if error.is_upstream() {
        backend.stats.record_outcome(Outcome::NoResponse, latency);
        health::record_attempt(backend, false, &shared.ejection);
        observe(shared, set, index, 0, latency);
    }
    Err(error)
}

/// Whether a failed attempt may be made again on another backend: when nothing reached the
/// backend (no connection), any request may; when the connection broke before the response
/// headers, only an idempotent one (RFC 9110 §9.2.2). Either way the whole body must still be
/// at hand, and a timeout is never retried (the backend may still be working on it).
fn may_retry(error: ProxyError, method: &Method, body: &RequestBody) -> bool {
    let safe = match error {
        ProxyError::Connect => true,
        ProxyError::Upstream => method.is_idempotent(),
        _ => false,
    };
    safe && body.replayable()
}

/// The backends to try for one request, in order: the policy's ranking, then every other
/// eligible backend from the request's place in the set, each at most once.
struct Candidates {
    ranked: Ranked,
    next_ranked: usize,
    scan_from: u64,
    scanned: usize,
    /// Backends already tried, in a fixed array so that a request without retries allocates
    /// nothing here: `max_retries` is at most 10, so a request makes at most 11 attempts.
    tried: [u32; MAX_ATTEMPTS],
    tried_count: usize,
}

/// The most attempts one request can make: the first and `max_retries` (at most 10) more.
const MAX_ATTEMPTS: usize = 11;

impl Candidates {
    fn new(ranked: Ranked, sequence: u64) -> Self {
        Candidates {
            ranked,
            next_ranked: 0,
            scan_from: sequence,
            scanned: 0,
            tried: [0; MAX_ATTEMPTS],
            tried_count: 0,
        }
    }

    fn record(&mut self, index: u32) -> Option<u32> {
        if self.tried_count == MAX_ATTEMPTS {
            return None;
        }
        self.tried[self.tried_count] = index;
        self.tried_count += 1;
        Some(index)
    }

    /// The next backend to try; eligibility is read afresh, so a backend ejected by an earlier
    /// attempt is skipped.
    fn next(&mut self, set: &BackendSet) -> Option<u32> {
        let eligibility = set.eligibility();
        let allowed = |index: u32, tried: &[u32]| {
            !tried.contains(&index)
                && set
                    .get(index as usize)
                    .is_some_and(|backend| eligibility.allows(backend))
        };
        while let Some(&index) = self.ranked.get(self.next_ranked) {
            self.next_ranked += 1;
            if allowed(index, &self.tried[..self.tried_count]) {
                return self.record(index);
            }
        }
        while self.scanned < set.len() {
            let index = ((self.scan_from + self.scanned as u64) % set.len() as u64) as u32;
            self.scanned += 1;
            if allowed(index, &self.tried[..self.tried_count]) {
                return self.record(index);
            }
        }
        None
    }
}

/// Reports an outcome to the policy, unless the backend set changed since the pick (then the
/// plugin has been configured for another set).
fn observe(shared: &Shared, set: &BackendSet, index: u32, status: u16, latency: Duration) {
    if shared.backends.load().generation() == set.generation() {
        shared.policy.load().observe(set, index, status, latency);
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

/// Asks the policy to rank the backends of `set` for this request.
fn rank(
    shared: &Shared,
    sequence: u64,
    client: SocketAddr,
    request: &Request<Incoming>,
    set: &BackendSet,
) -> Ranked {
    let headers = request.headers();
    let authority = request
        .uri()
        .authority()
        .map(|authority| authority.as_str())
        .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()))
        .unwrap_or("");
    let info = RequestInfo {
        sequence,
        method: request.method(),
        authority,
        path: request
            .uri()
            .path_and_query()
            .map_or("/", PathAndQuery::as_str),
        client_ip: client.ip(),
        headers,
    };
    shared.policy.load().pick(&info, set)
}

/// Rewrites the request head for any backend: HTTP/1.1, an origin-form URI, the Host the client
/// asked for (from an absolute-form URI or `:authority` when it has one, RFC 9112 §3.2.2), split
/// cookies joined, hop-by-hop headers out, forwarding headers in.
fn prepare_head(head: &mut http::request::Parts, client: &ClientAddress) {
    let asked_authority = head
        .uri
        .authority()
        .and_then(|authority| HeaderValue::try_from(authority.as_str()).ok());
    let from_http2 = head.version == Version::HTTP_2;
    head.version = Version::HTTP_11;
    head.uri = origin_form(&head.uri);
    let headers = &mut head.headers;
    remove_hop_by_hop(headers);
    if from_http2 {
        join_cookies(headers);
    }
    if let Some(authority) = asked_authority {
        headers.insert(header::HOST, authority);
    }
    let host = headers.get(header::HOST).cloned();
    add_forwarded(headers, client, host.as_ref());
}

/// The request for one attempt on `backend`: the prepared head, and the backend's address as
/// Host if the client named none (HTTP/1.0). The last possible attempt takes the headers;
/// earlier ones copy them, for the retry.
fn request_for(
    head: &mut http::request::Parts,
    backend: &Backend,
    body: AttemptBody,
    last: bool,
) -> Request<AttemptBody> {
    let mut request = Request::new(body);
    *request.uri_mut() = head.uri.clone();
    *request.method_mut() = head.method.clone();
    *request.version_mut() = Version::HTTP_11;
    let headers = request.headers_mut();
    *headers = if last {
        std::mem::take(&mut head.headers)
    } else {
        head.headers.clone()
    };
    if !headers.contains_key(header::HOST) {
        let own = HeaderValue::try_from(backend.authority.as_str())
            .expect("an address is a valid header value");
        headers.insert(header::HOST, own);
    }
    request
}

/// `uri` in origin form (`/path?query`), as a request to a backend carries it (RFC 9112 §3.2.1).
fn origin_form(uri: &Uri) -> Uri {
    if uri.scheme().is_none() && uri.authority().is_none() {
        return uri.clone();
    }
    let path = uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    Uri::from(path)
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
