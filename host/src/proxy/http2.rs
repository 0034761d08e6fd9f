//! vane's HTTP/2 server side (h2c with prior knowledge), hyper's, with the defences an HTTP/2
//! front needs:
//! - at most [`MAX_STREAMS`] streams at once per connection, and per stream at most
//!   [`MAX_SEND_BUFFER`] of response waiting for a client that does not read, so one connection's
//!   memory is bounded;
//! - floods the h2 crate detects itself (streams reset before they are accepted, CONTINUATION
//!   frames past the header list size, too many streams refused) end the connection with
//!   GOAWAY `ENHANCE_YOUR_CALM`;
//! - the rapid reset (CVE-2023-44487) that h2 cannot see: streams the client cancels before
//!   their response (hyper drops their service future, or their body breaks off), each of
//!   which cost a pick and a backend request. As Envoy does, a
//!   connection whose client cancelled at least [`PREMATURE_RESETS`] streams, more than half of
//!   all it opened, is closed;
//! - a client that answers no PING within `send_timeout` is closed.
//!
//! Each of these is counted as a client fault (`h2_flood`, `unresponsive`).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio_util::sync::CancellationToken;

use super::error::BodyBrokeOff;
use super::head::ClientAddress;
use super::request_body::ClientBody;
use super::service::handle;
use super::transport::ClientStream;
use super::{Proxy, ProxyBody};
use crate::state::ClientFault;

/// How often a client that sent nothing is pinged at most; the answer may take `send_timeout`.
const PING_INTERVAL: Duration = Duration::from_secs(20);

/// Streams one connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS; nginx's
/// `http2_max_concurrent_streams` is 128, Envoy's default is larger but its overload manager
/// bounds it).
pub(super) const MAX_STREAMS: u32 = 100;

/// The most response data buffered for one stream whose client does not read (hyper's default
/// is 400 KiB, which over [`MAX_STREAMS`] streams would be 40 MiB for one connection).
const MAX_SEND_BUFFER: usize = 64 << 10;

/// Streams a client may cancel before their response before its connection is judged, and
/// the share of all its streams they must be: Envoy's premature reset check (50 % of at least
/// 100 streams, `envoy.restart_features.send_goaway_for_premature_rst_streams`).
const PREMATURE_RESETS: u64 = 100;

/// Serves an HTTP/2 client (h2c, or h2 over TLS) until it closes, floods, stops answering, or
/// vane shuts down: gracefully, GOAWAY and the streams in progress finish, from the start of
/// the shutdown grace (or `stop`, without one).
pub(super) async fn serve(
    proxy: Arc<Proxy>,
    stream: ClientStream,
    address: ClientAddress,
    stop: CancellationToken,
) {
    let client = address.socket;
    let state = proxy.state.clone();
    let mut http2 = http2::Builder::new(TokioExecutor::new());
    http2
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS)
        .max_send_buf_size(MAX_SEND_BUFFER)
        .keep_alive_interval(PING_INTERVAL.min(proxy.config.send_timeout))
        .keep_alive_timeout(proxy.config.send_timeout)
        .max_header_list_size(u32::try_from(proxy.config.max_header_size).unwrap_or(u32::MAX));
    let streams = Arc::new(Streams::default());
    let counted = streams.clone();
    let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
        let stream = counted.open();
        // Boxed: hyper spawns each stream's future as a task, moving it several times on the
        // way, and a request's whole state (its attempts, its upstream exchange) is large;
        // moving a pointer instead took a third of the instructions of an HTTP/2 request.
        let answer = Box::pin(handle(
            proxy.clone(),
            address.clone(),
            request.map(ClientBody::Http2),
        ));
        async move {
            let response = ProxyBody::fields_in_map(answer.await);
            // A body that broke off was, over HTTP/2, a stream the client reset.
            if response.extensions().get::<BodyBrokeOff>().is_none() {
                stream.answered();
            }
            Ok::<_, Infallible>(response)
        }
    });
    let connection = http2.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let served = tokio::select! {
        served = connection.as_mut() => served,
        () = streams.flooded.cancelled() => {
            state.client_connections().fault(ClientFault::Http2Flood);
            tracing::debug!(%client, "h2c client cancelled most of its streams early; closed");
            return;
        }
        () = stop.cancelled() => {
            // A connection that never opened a stream (after TLS, one whose client has not
            // sent its preface yet) has nothing to finish: it closes at once.
            if streams.opened.load(Ordering::Relaxed) == 0 {
                return;
            }
            connection.as_mut().graceful_shutdown();
            connection.await
        }
        // vane is shutting down but still serves (`shutdown_grace`): GOAWAY tells the client
        // to open its next streams elsewhere, as `connection: close` tells an HTTP/1 client.
        () = state.client_connections().closing_begun() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    let Err(err) = served else { return };
    if let Some(fault) = fault_of(&err) {
        state.client_connections().fault(fault);
    }
    tracing::debug!(%client, error = %err, "h2c client connection ended with an error");
}

/// The client's fault in an error that ended its connection, if it was one.
fn fault_of(err: &hyper::Error) -> Option<ClientFault> {
    if err.is_timeout() {
        return Some(ClientFault::Unresponsive);
    }
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if let Some(h2) = cause.downcast_ref::<h2::Error>() {
            return (h2.reason() == Some(h2::Reason::ENHANCE_YOUR_CALM))
                .then_some(ClientFault::Http2Flood);
        }
        source = cause.source();
    }
    None
}

/// One connection's streams: how many were opened, how many the client cancelled before
/// their response, and the signal to close it for that.
#[derive(Debug, Default)]
struct Streams {
    opened: AtomicU64,
    premature: AtomicU64,
    flooded: CancellationToken,
}

impl Streams {
    /// Counts a stream opened; the guard counts it cancelled unless it is answered.
    fn open(self: &Arc<Self>) -> StreamGuard {
        self.opened.fetch_add(1, Ordering::Relaxed);
        StreamGuard {
            streams: self.clone(),
            answered: false,
        }
    }
}

/// A stream in progress.
struct StreamGuard {
    streams: Arc<Streams>,
    answered: bool,
}

impl StreamGuard {
    /// The stream got its response head: a reset from now on is not premature.
    fn answered(mut self) {
        self.answered = true;
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        // Dropped unanswered: hyper drops a stream's service future when the client resets it.
        let streams = &self.streams;
        let premature = streams.premature.fetch_add(1, Ordering::Relaxed) + 1;
        let opened = streams.opened.load(Ordering::Relaxed);
        if premature >= PREMATURE_RESETS && premature * 2 > opened {
            streams.flooded.cancel();
        }
    }
}
