//! The accept loop: one task per client connection, HTTP/1.1 (vane's own `http1`) or h2c
//! (hyper's), at most `max_connections` at once, until shutdown; then a bounded drain of the
//! connections still open, after which the rest are closed. The loop owns its connections'
//! tasks: none outlives it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::head::ClientAddress;
use super::request_body::ClientBody;
use super::service::handle;
use super::{Proxy, http1, http2};

/// The HTTP/2 connection preface (RFC 9113 §3.4), which tells an h2c client from an HTTP/1 one.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How long a new client waits at most for the slot of an idle connection asked to close.
const EVICTION_WAIT: Duration = Duration::from_secs(1);

/// What a client connected past `max_connections` gets before vane closes its connection.
const OVER_LIMIT: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 46\r\nretry-after: 1\r\nconnection: close\r\n\r\n503 Service Unavailable: too many connections\n";

/// Serves clients from `listener` until `shutdown` completes, then lets open connections finish
/// their requests for up to the configured `drain_timeout`.
pub async fn serve(proxy: Arc<Proxy>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    let drain = proxy.config.drain_timeout;
    let settings = http1::Settings {
        header_read_timeout: proxy.config.header_read_timeout,
        idle_timeout: proxy.config.idle_timeout,
        max_header_size: proxy.config.max_header_size,
        send_timeout: proxy.config.send_timeout,
    };
    let stop = CancellationToken::new();
    let mut connections = JoinSet::new();
    let slots = Arc::new(Semaphore::new(proxy.config.max_connections));
    tokio::pin!(shutdown);

    loop {
        let (stream, client) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %err, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(slot) = take_slot(&proxy, &slots).await else {
            refuse_over_limit(&proxy, stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        // Reap the finished ones, so the set holds only open connections.
        while connections.try_join_next().is_some() {}
        connections.spawn(connection(
            proxy.clone(),
            stream,
            client,
            settings,
            stop.clone(),
            slot,
        ));
    }

    drop(listener);
    stop.cancel();
    tracing::info!(
        open = connections.len(),
        "stopped accepting; draining open connections"
    );
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(drain, drained).await.is_err() {
        tracing::warn!(
            ?drain,
            "drain deadline passed; closing the remaining connections"
        );
    }
    // Connections still open here are past the deadline.
    connections.shutdown().await;
}

/// A connection slot for a new client: a free one, or else the slot of the connection idle the
/// longest, which is asked to close (nginx reuses idle keep-alive connections so). `None` when
/// every connection is busy.
async fn take_slot(proxy: &Proxy, slots: &Arc<Semaphore>) -> Option<OwnedSemaphorePermit> {
    if let Ok(slot) = slots.clone().try_acquire_owned() {
        return Some(slot);
    }
    if !proxy.state.client_connections().evict_idle() {
        return None;
    }
    // The evicted connection's task returns at its next poll, freeing its slot; the bound only
    // guards against a connection that took a request at that very moment.
    tokio::time::timeout(EVICTION_WAIT, slots.clone().acquire_owned())
        .await
        .ok()?
        .ok()
}

/// Answers a client past the limit with 503 and closes its connection at once, without reading
/// its request: the connections being served keep their share of the machine.
fn refuse_over_limit(proxy: &Proxy, stream: TcpStream) {
    proxy.state.client_connections().refused();
    // A fresh socket's send buffer takes the whole answer; if it cannot, the client only sees
    // the close.
    let _ = stream.try_write(OVER_LIMIT);
}

/// One client connection, from its first bytes to its close.
async fn connection(
    proxy: Arc<Proxy>,
    stream: TcpStream,
    client: SocketAddr,
    settings: http1::Settings,
    stop: CancellationToken,
    slot: OwnedSemaphorePermit,
) {
    let _slot = slot;
    let state = proxy.state.clone();
    let _open = state.client_connections().open();
    // Until its first bytes, a connection is idle: it gives its slot up to a new client.
    let started = tokio::select! {
        started = request_started(&stream, proxy.config.header_read_timeout) => started,
        () = stop.cancelled() => return,
        () = state.client_connections().until_evicted() => return,
    };
    let address = ClientAddress::new(client);
    match started {
        Started::Http1 => {
            let clock = proxy.state.clock().clone();
            // The request's future is boxed on its own: the exchange around it, boxed by
            // `http1`, then stays small, and building each moves less memory.
            let handler = move |request: http::Request<http1::RequestBody>| {
                Box::pin(handle(
                    proxy.clone(),
                    address.clone(),
                    request.map(ClientBody::Http1),
                ))
            };
            let shared = http1::Shared {
                clock: &clock,
                stop: &stop,
                connections: state.client_connections(),
            };
            http1::serve(stream, settings, shared, handler).await;
        }
        // Boxed: an HTTP/2 connection's state is large, and most connections are HTTP/1 ones
        // whose task should not be sized for it.
        Started::Http2 => Box::pin(http2::serve(proxy, stream, address, stop)).await,
        Started::Nothing => {}
    }
}

/// What a new connection's first bytes say.
enum Started {
    /// An HTTP/1 request.
    Http1,
    /// The HTTP/2 preface (h2c with prior knowledge).
    Http2,
    /// Nothing within the header read timeout, or a close.
    Nothing,
}

/// Waits, up to `limit`, until the client has sent enough to tell HTTP/1 from HTTP/2, without
/// reading it (nor holding a buffer for it). A client that sends nothing, or stalls inside the
/// HTTP/2 preface, is dropped.
async fn request_started(stream: &TcpStream, limit: Duration) -> Started {
    let mut start = [0u8; H2_PREFACE.len()];
    let peek = async {
        loop {
            match stream.peek(&mut start).await {
                Ok(0) | Err(_) => return Started::Nothing,
                Ok(n) if start[..n] != H2_PREFACE[..n] => return Started::Http1,
                Ok(n) if n == start.len() => return Started::Http2,
                // Part of the preface: wait for the rest (rare, so a short sleep is cheap).
                Ok(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    };
    tokio::time::timeout(limit, peek)
        .await
        .unwrap_or(Started::Nothing)
}
