//! Connections to backends, pooled per backend and per way of connecting, in the protocol each
//! backend speaks: HTTP/1.1 (`http1.rs`: one request at a time per connection, run inside the
//! task of the request that holds it) or HTTP/2 (`http2.rs`: many requests at once on a shared
//! connection, each a stream of its own). Connections are opened by [`crate::dial`], over TLS
//! when the backend takes it.

pub(super) mod http1;
mod http2;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use http::request::Parts;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio_util::sync::CancellationToken;

use super::head::{self, ClientAddress};
use super::http1::Fields;
use super::request_body::{AttemptBody, BoxError};
use crate::backend::Backend;
use crate::clock::Clock;
use crate::dial::{BackendStream, DialError};
use crate::log_budget::LogBudget;

/// At most this many lines a minute say why a TLS or HTTP/2 handshake with a backend failed
/// (a connection refused says nothing: it is counted on the backend, and common).
const HANDSHAKE_WARNINGS_PER_MINUTE: u32 = 6;

/// How a request to a backend failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpstreamError {
    /// No connection could be made: refused, unreachable, a failed TLS or HTTP/2 handshake, or
    /// not within the connect timeout.
    Connect,
    /// The request did not reach the backend, which is not to blame for it: the dial it waited
    /// for failed (that request counts the failure), or the backend refused the stream unread
    /// (REFUSED_STREAM, or past its GOAWAY).
    Unreached,
    /// The client's request body broke off while it was being sent.
    ClientBody,
    /// The connection broke, or the backend answered nonsense, before the response headers.
    Broken,
}

/// Where pooled connections go: one backend address reached one way (plain, or with one TLS
/// config), so a backend whose TLS changes never gets a connection made the old way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PoolKey {
    address: SocketAddr,
    /// [`crate::tls::ClientTls::id`], or 0 for plain TCP.
    tls: u64,
}

impl std::hash::Hash for PoolKey {
    /// One word for the whole key (the derived hash writes each part apart, and SipHash pays per
    /// write, twice per request); keys that fold alike are told apart by `Eq`.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let ip = match self.address.ip() {
            std::net::IpAddr::V4(ip) => u64::from(ip.to_bits()),
            std::net::IpAddr::V6(ip) => {
                let bits = ip.to_bits();
                (bits as u64) ^ ((bits >> 64) as u64)
            }
        };
        let port = u64::from(self.address.port());
        state.write_u64((ip << 16 | port) ^ self.tls.rotate_left(40));
    }
}

impl PoolKey {
    fn of(backend: &Backend) -> Self {
        PoolKey {
            address: backend.address,
            tls: backend.tls.as_ref().map_or(0, |tls| tls.id()),
        }
    }
}

/// What every connection to a backend is held to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UpstreamLimits {
    /// How long opening a connection (TCP, TLS, HTTP/2 handshake) may take.
    pub(crate) connect_timeout: Duration,
    /// How long a connection may sit unused in the pool.
    pub(crate) idle_timeout: Duration,
    /// The largest response head accepted from an HTTP/2 backend.
    pub(crate) max_header_list_size: u32,
}

/// The pools of connections to every backend, shared by all requests.
#[derive(Clone)]
pub(crate) struct Upstream {
    http1: http1::Pool,
    http2: http2::Pool,
    /// Ends the tasks running HTTP/2 connections when vane has drained.
    stop: CancellationToken,
}

/// One attempt's request: the head prepared for the backends, which an attempt reads (the last
/// possible attempt may take its headers), and the body.
pub(crate) struct Outbound<'a> {
    /// The prepared head: origin-form target, hop-by-hop fields out.
    pub(crate) head: &'a mut Parts,
    /// The client, for the forwarding headers.
    pub(crate) client: &'a ClientAddress,
    /// The body for this attempt.
    pub(crate) body: AttemptBody,
    /// No attempt can follow this one.
    pub(crate) last: bool,
}

/// A response body as a backend sends it: read from the HTTP/1.1 connection it holds, or the
/// DATA frames of an HTTP/2 stream, counted on its connection until the body ends.
#[derive(Debug)]
pub struct UpstreamBody(Received);

#[derive(Debug)]
enum Received {
    /// From an HTTP/1.1 backend.
    Http1(Box<http1::ResponseBody>),
    /// From an HTTP/2 backend.
    Http2 {
        /// The stream's DATA frames.
        body: Incoming,
        /// Counts the stream on its connection until the body is dropped.
        _stream: http2::Stream,
    },
}

impl Upstream {
    /// Pools that open connections and keep them idle as `limits` says, timed by `clock`.
    pub(crate) fn new(limits: UpstreamLimits, clock: Clock) -> Self {
        let stop = CancellationToken::new();
        let warnings = Arc::new(LogBudget::new(
            HANDSHAKE_WARNINGS_PER_MINUTE,
            Duration::from_secs(60),
            clock.clone(),
        ));
        Upstream {
            http1: http1::Pool::new(limits, clock.clone(), warnings.clone()),
            http2: http2::Pool::new(limits, clock, warnings, stop.clone()),
            stop,
        }
    }

    /// Closes the connections idle past the timeout, about once per timeout (at most once a
    /// second), until `stop` is cancelled.
    pub(crate) async fn sweep(&self, stop: CancellationToken) {
        let every = self.http1.idle_timeout().max(http1::MIN_SWEEP_INTERVAL);
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {
                    self.http1.close_expired();
                    self.http2.close_expired();
                }
                () = stop.cancelled() => return,
            }
        }
    }

    /// Ends every HTTP/2 connection's task: once the drain is over, nothing needs them.
    pub(crate) fn close(&self) {
        self.stop.cancel();
    }

    /// Sends `request` to `backend` in its protocol, on a pooled connection if one is alive,
    /// else on a new one. The response comes without its hop-by-hop headers (but a `101`), and
    /// its body holds the connection (or stream) until its end.
    pub(crate) async fn send(
        &self,
        backend: &Backend,
        request: Outbound<'_>,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        let Outbound {
            head,
            client,
            body,
            last,
        } = request;
        if backend.protocol.is_http2() {
            let request = head::for_http2(head, client, backend, body, last);
            let (mut response, stream) = self.http2.send(backend, request).await?;
            head::remove_hop_by_hop(response.headers_mut());
            Ok(response.map(|body| {
                UpstreamBody(Received::Http2 {
                    body,
                    _stream: stream,
                })
            }))
        } else {
            let response = self.http1.send(backend, head, client, body).await?;
            Ok(response.map(|body| UpstreamBody(Received::Http1(body))))
        }
    }
}

/// What a failed dial of `backend` means for the request; a failed TLS or HTTP/2 handshake
/// (most often a certificate or protocol setting that does not match the backend) is logged,
/// within `warnings`.
fn dial_failed(backend: &Backend, error: &DialError, warnings: &LogBudget) -> UpstreamError {
    if !matches!(error, DialError::Connect(_)) && warnings.allow() {
        tracing::warn!(
            backend = %backend.name,
            address = %backend.address,
            %error,
            "cannot connect to the backend"
        );
    }
    UpstreamError::Connect
}

impl UpstreamBody {
    /// The response head's fields as an HTTP/1.1 backend sent them, if the response has them
    /// that way and they were not taken yet (its header map is then empty).
    pub(crate) fn take_fields(&mut self) -> Option<Fields> {
        match &mut self.0 {
            Received::Http1(body) => body.take_fields(),
            Received::Http2 { .. } => None,
        }
    }

    /// The connection's byte stream after a `101 Switching Protocols` answer, with what the
    /// backend sent after that head; `None` over HTTP/2, which has no such switch.
    pub(crate) fn into_tunnel(self) -> Option<(BackendStream, Bytes)> {
        match self.0 {
            Received::Http1(body) => (*body).into_tunnel(),
            Received::Http2 { .. } => None,
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().0 {
            Received::Http1(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            Received::Http2 { body, .. } => Pin::new(body).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Received::Http1(body) => body.is_end_stream(),
            Received::Http2 { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Received::Http1(body) => body.size_hint(),
            Received::Http2 { body, .. } => body.size_hint(),
        }
    }
}
