//! The accept loops: one per listener, one task per client connection, HTTP/1.1 (vane's own
//! `http1`) or HTTP/2 (hyper's; h2c by its preface, or ALPN `h2` over TLS), at most
//! `max_connections` at once over all listeners, until shutdown; then a bounded drain of the
//! connections still open, after which the rest are closed. A TLS listener's connections are
//! TLS from their first byte: the handshake is bounded by `header_read_timeout`, and a
//! plaintext request on it gets a 400. The loops own their connections' tasks: none outlives
//! them.

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
use super::transport::ClientStream;
use super::{Proxy, http1, http2};
use crate::state::{ClientConnections, ClientFault};
use crate::tls::TlsListener;

/// The HTTP/2 connection preface (RFC 9113 §3.4), which tells an h2c client from an HTTP/1 one.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The first byte of a TLS handshake record (RFC 8446 §5.1).
const TLS_HANDSHAKE: u8 = 0x16;

/// How long a new client waits at most for the slot of an idle connection asked to close.
const EVICTION_WAIT: Duration = Duration::from_secs(1);

/// What a client connected past `max_connections` gets before vane closes its connection.
const OVER_LIMIT: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 46\r\nretry-after: 1\r\nconnection: close\r\n\r\n503 Service Unavailable: too many connections\n";

/// What a plaintext HTTP request on a TLS listener gets before vane closes its connection.
const PLAIN_ON_TLS: &[u8] = b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 61\r\nconnection: close\r\n\r\n400 Bad Request: a plain HTTP request sent to a TLS listener\n";

/// A bound listening socket, plaintext or TLS.
pub struct Listener {
    /// The socket.
    pub tcp: TcpListener,
    /// Its TLS side, for a TLS listener.
    pub tls: Option<Arc<TlsListener>>,
}

/// What every accept loop of one vane shares.
struct Accepting {
    proxy: Arc<Proxy>,
    settings: http1::Settings,
    /// Connection slots, `max_connections` over all listeners.
    slots: Arc<Semaphore>,
    /// Cancelled when vane stops accepting: connections finish their request and close.
    stop: CancellationToken,
}

/// Serves clients from every listener until `shutdown` is cancelled, then lets open
/// connections finish their requests for up to the configured `drain_timeout`.
pub async fn serve(proxy: Arc<Proxy>, listeners: Vec<Listener>, shutdown: CancellationToken) {
    let accepting = Arc::new(Accepting {
        settings: http1::Settings {
            header_read_timeout: proxy.config.header_read_timeout,
            idle_timeout: proxy.config.idle_timeout,
            max_header_size: proxy.config.max_header_size,
            send_timeout: proxy.config.send_timeout,
        },
        slots: Arc::new(Semaphore::new(proxy.config.max_connections)),
        stop: CancellationToken::new(),
        proxy,
    });
    let mut loops = JoinSet::new();
    for listener in listeners {
        loops.spawn(accept(accepting.clone(), listener, shutdown.clone()));
    }
    while loops.join_next().await.is_some() {}
    // Requests finishing during the drain still needed their HTTP/2 backend connections.
    accepting.proxy.upstream.close();
}

/// Accepts clients from `listener` until `shutdown`, then drains its connections.
async fn accept(accepting: Arc<Accepting>, listener: Listener, shutdown: CancellationToken) {
    let Accepting { proxy, slots, .. } = &*accepting;
    let mut connections = JoinSet::new();
    loop {
        let (stream, client) = tokio::select! {
            accepted = listener.tcp.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %err, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let Some(slot) = take_slot(proxy, slots).await else {
            refuse_over_limit(proxy, stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        // Reap the finished ones, so the set holds only open connections.
        while connections.try_join_next().is_some() {}
        connections.spawn(connection(
            accepting.clone(),
            stream,
            client,
            listener.tls.clone(),
            slot,
        ));
    }

    drop(listener);
    accepting.stop.cancel();
    tracing::info!(
        open = connections.len(),
        "stopped accepting; draining open connections"
    );
    let drain = proxy.config.drain_timeout;
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
    accepting: Arc<Accepting>,
    stream: TcpStream,
    client: SocketAddr,
    tls: Option<Arc<TlsListener>>,
    slot: OwnedSemaphorePermit,
) {
    let _slot = slot;
    let Accepting {
        proxy,
        settings,
        stop,
        ..
    } = &*accepting;
    let state = proxy.state.clone();
    let connections = state.client_connections();
    let _open = connections.open();
    let limit = proxy.config.header_read_timeout;
    // Until its first bytes, a connection is idle: it gives its slot up to a new client.
    let started = tokio::select! {
        started = request_started(&stream, limit, tls.is_some()) => started,
        () = stop.cancelled() => return,
        () = connections.until_evicted() => return,
    };
    let address = ClientAddress::new(client);
    // The bytes peeked at were a request's (plaintext), or a TLS handshake's: after it, an
    // HTTP/1 client's first request has not begun yet.
    let (stream, address, started, request_begun) = match (started, tls) {
        (Started::Tls, Some(tls)) => {
            let Some((stream, http2)) = handshake(&tls, stream, limit, connections).await else {
                return;
            };
            let started = if http2 {
                Started::Http2
            } else {
                Started::Http1
            };
            (
                ClientStream::Tls(stream),
                address.over_tls(),
                started,
                false,
            )
        }
        (Started::PlainOnTls, _) => {
            connections.fault(ClientFault::PlainHttpOnTls);
            let stream = ClientStream::Plain(stream);
            http1::answer_and_close(stream, PLAIN_ON_TLS, *settings, connections).await;
            return;
        }
        (started, _) => (ClientStream::Plain(stream), address, started, true),
    };
    match started {
        Started::Http1 => {
            let clock = proxy.state.clock().clone();
            let proxy = proxy.clone();
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
                stop,
                connections,
            };
            http1::serve(stream, request_begun, *settings, shared, handler).await;
        }
        // Boxed: an HTTP/2 connection's state is large, and most connections are HTTP/1 ones
        // whose task should not be sized for it.
        Started::Http2 => {
            Box::pin(http2::serve(proxy.clone(), stream, address, stop.clone())).await;
        }
        Started::Tls | Started::PlainOnTls | Started::Nothing => {}
    }
}

/// The TLS handshake on a connection whose first bytes came, within `limit`: the TLS stream
/// and whether ALPN chose HTTP/2, or `None` (the failure counted) if it failed.
async fn handshake(
    tls: &TlsListener,
    stream: TcpStream,
    limit: Duration,
    connections: &ClientConnections,
) -> Option<(Box<tokio_rustls::server::TlsStream<TcpStream>>, bool)> {
    match tokio::time::timeout(limit, tls.acceptor().accept(stream)).await {
        Ok(Ok(stream)) => {
            tls.handshake_done();
            let http2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
            Some((Box::new(stream), http2))
        }
        Ok(Err(err)) => {
            connections.fault(ClientFault::TlsHandshake);
            tracing::trace!(error = %err, "TLS handshake failed");
            None
        }
        Err(_elapsed) => {
            connections.fault(ClientFault::TlsTimeout);
            None
        }
    }
}

/// What a new connection's first bytes say.
enum Started {
    /// An HTTP/1 request.
    Http1,
    /// The HTTP/2 preface (h2c with prior knowledge), or ALPN `h2` after a TLS handshake.
    Http2,
    /// A TLS handshake, on a TLS listener (anything but plaintext HTTP is taken for one).
    Tls,
    /// A plaintext HTTP request on a TLS listener.
    PlainOnTls,
    /// Nothing within the header read timeout, or a close.
    Nothing,
}

/// Waits, up to `limit`, until the client has sent enough to tell HTTP/1 from HTTP/2 (or, on
/// a TLS listener, a handshake from plaintext HTTP), without reading it (nor holding a buffer
/// for it). A client that sends nothing, or stalls inside the HTTP/2 preface, is dropped.
async fn request_started(stream: &TcpStream, limit: Duration, tls: bool) -> Started {
    let mut start = [0u8; H2_PREFACE.len()];
    let peek = async {
        loop {
            match stream.peek(&mut start).await {
                Ok(0) | Err(_) => return Started::Nothing,
                // A request line starts with a method, a token: letters in practice.
                Ok(_) if tls && start[0] != TLS_HANDSHAKE && start[0].is_ascii_alphabetic() => {
                    return Started::PlainOnTls;
                }
                Ok(_) if tls => return Started::Tls,
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
