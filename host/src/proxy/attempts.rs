//! The attempts of one request: the backends to try, in order (the policy's ranking, then every
//! other eligible one), one attempt at a time, each counted and recorded on its backend, and the
//! one rule for when a failed attempt may be made again on another backend.

use std::sync::Arc;

use http::request::Parts;
use http::{HeaderValue, Method, Response, StatusCode, header};
use tokio::time::Instant;

use super::body::CallEnd;
use super::grpc::GrpcCall;
use super::head::{ClientAddress, remove_hop_by_hop};
use super::http1::Switch;
use super::request_body::RequestBody;
use super::tunnel::BackendTunnel;
use super::upstream::{Outbound, UpstreamBody, UpstreamError};
use super::{Proxy, ProxyBody, ProxyError};
use crate::backend::{Backend, BackendSet, InFlightGuard, Outcome};
use crate::balancer::Ranked;

/// The request every attempt forwards: its head prepared for the backends, its body, and the
/// client it comes from.
pub(super) struct Forward<'a> {
    /// The prepared head.
    pub(super) head: &'a mut Parts,
    /// The body, kept for the attempts.
    pub(super) body: &'a RequestBody,
    /// The client, for the forwarding headers.
    pub(super) client: &'a ClientAddress,
}

/// What kind of request it is, where that changes how its answer is carried.
#[derive(Debug, Clone, Copy)]
pub(super) struct Kind {
    /// A gRPC call: its deadline, and gRPC statuses when it ends early.
    pub(super) call: Option<GrpcCall>,
    /// An HTTP/1.1 client asking to switch protocols: a `101` answer opens a tunnel.
    pub(super) upgrade: bool,
}

/// Forwards `request` (of `kind`) to the backends of `set`, in the order of `ranked` and then
/// the rest, until one answers or no retry is left.
pub(super) async fn run(
    proxy: &Proxy,
    set: &BackendSet,
    ranked: Ranked,
    sequence: u64,
    request: Forward<'_>,
    kind: Kind,
) -> Result<Response<ProxyBody>, ProxyError> {
    let Forward { head, body, client } = request;
    let budget = proxy.state.retry_budget();
    let mut candidates = Candidates::new(ranked, sequence);
    let mut retries_left = budget.max_retries();
    let mut last_error = ProxyError::NoBackend;
    // Holds the current retry's place in the budget until the attempt ends.
    let mut _retry = None;
    while let Some(index) = candidates.next(set) {
        let backend = set.backends()[index as usize].clone();
        let request = Outbound {
            head: &mut *head,
            client,
            body: body.attempt(),
            last: retries_left == 0,
        };
        let error = match attempt(proxy, set, index, backend, request, kind).await {
            Ok(response) => return Ok(response),
            // Why the body broke off is known where it was read.
            Err(ProxyError::ClientBody) => body.fault().map_or(ProxyError::ClientBody, Into::into),
            Err(error) => error,
        };
        last_error = error;
        if retries_left == 0 || !may_retry(error, &head.method, body) {
            break;
        }
        if error == ProxyError::Connect {
            // Nothing reached a backend: sending the request to the next one adds no work
            // anywhere, so it takes nothing from the budget (which bounds retries of requests
            // that may be done twice). The soak found the budget refusing these when a
            // backend died under load.
            budget.count_reroute();
        } else {
            let Some(retry) = budget.try_retry() else {
                break;
            };
            _retry = Some(retry);
        }
        retries_left -= 1;
    }
    Err(last_error)
}

/// One attempt on `backend` (`index` in `set`): counts it, forwards `request` (until the
/// response headers, within `request_timeout` and a gRPC call's deadline), and records what
/// came back on the backend (statistics, passive ejection) and with the policy.
async fn attempt(
    proxy: &Proxy,
    set: &BackendSet,
    index: u32,
    backend: Arc<Backend>,
    request: Outbound<'_>,
    kind: Kind,
) -> Result<Response<ProxyBody>, ProxyError> {
    let call = kind.call;
    let guard = InFlightGuard::start(backend);
    let backend = guard.backend();
    let started = Instant::now();
    let timeout = started + proxy.config.request_timeout;
    // A gRPC client's deadline shorter than the request timeout is the client's choice: its
    // passing is not held against the backend.
    let call_deadline = call
        .and_then(|call| call.deadline)
        .filter(|deadline| *deadline < timeout);
    let outcome = tokio::time::timeout_at(
        call_deadline.unwrap_or(timeout),
        proxy.upstream.send(backend, request),
    )
    .await;
    let latency = started.elapsed();
    let error = match outcome {
        Ok(Ok(response)) => {
            let status = response.status().as_u16();
            backend
                .stats
                .record_outcome(Outcome::Status(status), latency);
            backend.record_attempt(true, &proxy.ejection, set);
            proxy.state.observe(set, index, status, latency);
            if kind.upgrade && response.status() == StatusCode::SWITCHING_PROTOCOLS {
                return switch(proxy, response, guard);
            }
            return Ok(response.map(|body| ProxyBody::Upstream {
                body,
                guard: Some(guard),
                call: call.map(CallEnd::new),
            }));
        }
        Ok(Err(UpstreamError::Connect)) => ProxyError::Connect,
        Ok(Err(UpstreamError::Unreached)) => return Err(ProxyError::Connect),
        Ok(Err(UpstreamError::ClientBody)) => ProxyError::ClientBody,
        Ok(Err(UpstreamError::Broken)) => ProxyError::Upstream,
        Err(_elapsed) => ProxyError::Timeout,
    };
    let clients_deadline = error == ProxyError::Timeout && call_deadline.is_some();
    if error.is_upstream() && !clients_deadline {
        backend.stats.record_outcome(Outcome::NoResponse, latency);
        backend.record_attempt(false, &proxy.ejection, set);
        proxy.state.observe(set, index, 0, latency);
    }
    Err(error)
}

/// The answer to a client whose upgrade the backend accepted (`101`): the backend's head, with
/// the switch it names kept, joined to the backend connection's byte stream, which stays in
/// flight on the backend until the tunnel closes.
fn switch(
    proxy: &Proxy,
    response: Response<UpstreamBody>,
    guard: InFlightGuard,
) -> Result<Response<ProxyBody>, ProxyError> {
    let (mut parts, body) = response.into_parts();
    let protocol = parts.headers.get(header::UPGRADE).cloned();
    let Some((stream, early)) = body.into_tunnel() else {
        return Err(ProxyError::Upstream);
    };
    remove_hop_by_hop(&mut parts.headers);
    if let Some(protocol) = protocol {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        parts.headers.insert(header::UPGRADE, protocol);
    }
    let tunnel = BackendTunnel::new(stream, early, guard, proxy.state.clone());
    let mut response = Response::from_parts(parts, ProxyBody::Message(None));
    response
        .extensions_mut()
        .insert(Switch::new(tunnel, proxy.config.tunnel_idle_timeout));
    Ok(response)
}

/// Whether a failed attempt may be made again on another backend: when nothing reached the
/// backend (no connection), any request may; when the connection broke before the response
/// headers, only an idempotent one (RFC 9110 §9.2.2). Either way the whole body must still be
/// at hand, and a timeout is never retried (the backend may still be working on it).
fn may_retry(error: ProxyError, method: &Method, body: &RequestBody) -> bool {
    let safe = match error {
        ProxyError::Connect => true,
        ProxyError::Upstream => method.is_idempotent(),
        ProxyError::NoBackend
        | ProxyError::Timeout
        | ProxyError::BadHost
        | ProxyError::ClientBody
        | ProxyError::ClientBodyTimeout
        | ProxyError::BodyTooLarge => false,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::test_set;

    fn all(candidates: &mut Candidates, set: &BackendSet) -> Vec<u32> {
        std::iter::from_fn(|| candidates.next(set)).collect()
    }

    #[test]
    fn the_ranking_comes_first_then_every_other_backend_once() {
        let set = test_set(&[1, 1, 1, 1]);
        let mut candidates = Candidates::new(Ranked::from_slice(&[2, 2, 0]), 5);
        assert_eq!(all(&mut candidates, &set), [2, 0, 1, 3]);
    }

    #[test]
    fn backends_out_of_rotation_are_skipped_unless_none_is_in() {
        let set = test_set(&[1, 1, 1]);
        set.backends()[1].health.set_healthy(false);
        assert_eq!(
            all(&mut Candidates::new(Ranked::from_slice(&[1]), 0), &set),
            [0, 2]
        );
        for backend in set.backends() {
            backend.health.set_healthy(false);
        }
        assert_eq!(
            all(&mut Candidates::new(Ranked::from_slice(&[1]), 0), &set),
            [1, 0, 2]
        );
    }
}
