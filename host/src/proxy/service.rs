//! The request service: one client request in, one response out. It checks the head, asks the
//! policy to rank the backends, rewrites the head for them and hands the request to the
//! attempts; whatever fails becomes vane's own error response.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::uri::PathAndQuery;
use http::{Request, Response, header};

use super::attempts::{self, Forward, Kind};
use super::grpc::GrpcCall;
use super::head::{self, ClientAddress};
use super::request_body::{BodyLimits, ClientBody, RequestBody};
use super::{Proxy, ProxyBody, ProxyError};
use crate::backend::BackendSet;
use crate::balancer::{Ranked, RequestInfo};
use crate::state::State;

/// Serves one client request: forwards it to a backend, or answers vane's own error.
pub(super) async fn handle(
    proxy: Arc<Proxy>,
    client: ClientAddress,
    request: Request<ClientBody>,
) -> Response<ProxyBody> {
    // gRPC runs over HTTP/2 only: an HTTP/1 request is not looked at for it.
    let call = (request.version() == http::Version::HTTP_2)
        .then(|| GrpcCall::of(request.headers()))
        .flatten();
    match forward(&proxy, &client, request, call).await {
        Ok(response) => response,
        Err(error) => match call {
            Some(call) => call.error_response(error),
            None => error.response(),
        },
    }
}

async fn forward(
    proxy: &Proxy,
    client: &ClientAddress,
    request: Request<ClientBody>,
    call: Option<GrpcCall>,
) -> Result<Response<ProxyBody>, ProxyError> {
    // vane's HTTP/1 server checked the Host already: it refuses a head without one valid Host.
    if request.version() == http::Version::HTTP_2 {
        head::check_host(&request)?;
    }
    let state = &proxy.state;
    let _active = state.retry_budget().start_request();
    let set = state.hold_backends();
    let sequence = proxy.sequence.fetch_add(1, Ordering::Relaxed);
    let ranked = rank(state, sequence, client.socket, &request, &set);
    let upgrade = head::requested_upgrade(&request);
    let (mut head, body) = request.into_parts();
    head::prepare(&mut head);
    let limits = BodyLimits {
        read_timeout: proxy.config.body_read_timeout,
        max_size: proxy.config.max_body_size,
    };
    let body = RequestBody::new(body, limits, &proxy.state)?;
    // A request with a body is not switched: its body would be left unread behind the switch.
    let upgrade = upgrade.filter(|_| matches!(body, RequestBody::Empty));
    if let Some(protocol) = &upgrade {
        head::keep_upgrade(&mut head, protocol.clone());
    }
    if call.is_some() {
        head::keep_grpc_te(&mut head);
    }
    let kind = Kind {
        call,
        upgrade: upgrade.is_some(),
    };
    let request = Forward {
        head: &mut head,
        body: &body,
        client,
    };
    attempts::run(proxy, &set, ranked, sequence, request, kind).await
}

/// Asks the policy to rank the backends of `set` for this request.
fn rank(
    state: &State,
    sequence: u64,
    client: SocketAddr,
    request: &Request<ClientBody>,
    set: &Arc<BackendSet>,
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
    state.policy().pick_with_shadow(&info, set)
}
