//! vane's client connections: how many are open, how many were refused at `max_connections`,
//! which of them wait idle (and may be closed to make room for a new client), and what clients
//! did wrong, by kind.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::Notify;

/// Something a client did that vane answered by refusing a request or closing its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFault {
    /// A request head vane cannot read one way (400).
    Malformed,
    /// A request line or head over `max_header_size`, or too many fields (414, 431).
    HeadTooLarge,
    /// A version or transfer coding vane does not serve (505, 501).
    Unsupported,
    /// A request head not whole within `header_read_timeout` (408).
    HeaderTimeout,
    /// A request body whose framing broke (400).
    BodyMalformed,
    /// A request body that sent nothing for `body_read_timeout` (408).
    BodyTimeout,
    /// A request body over `max_body_size` (413).
    BodyTooLarge,
    /// A response the client read nothing of for `send_timeout` (connection closed).
    SendTimeout,
    /// An HTTP/2 flood: rapid resets, CONTINUATION frames past the limit, too many refused
    /// streams (connection closed).
    Http2Flood,
    /// An HTTP/2 client that answered no PING within `send_timeout` (connection closed).
    Unresponsive,
    /// A TLS handshake that failed: no protocol, cipher or certificate in common, or bytes
    /// that are not TLS (connection closed).
    TlsHandshake,
    /// A TLS handshake not done within `header_read_timeout` (connection closed).
    TlsTimeout,
    /// A plaintext HTTP request on a TLS listener (400, connection closed).
    PlainHttpOnTls,
}

impl ClientFault {
    /// Every fault, in the order of the metric's samples.
    pub const ALL: [ClientFault; 13] = [
        ClientFault::Malformed,
        ClientFault::HeadTooLarge,
        ClientFault::Unsupported,
        ClientFault::HeaderTimeout,
        ClientFault::BodyMalformed,
        ClientFault::BodyTimeout,
        ClientFault::BodyTooLarge,
        ClientFault::SendTimeout,
        ClientFault::Http2Flood,
        ClientFault::Unresponsive,
        ClientFault::TlsHandshake,
        ClientFault::TlsTimeout,
        ClientFault::PlainHttpOnTls,
    ];

    /// The label in `/metrics`.
    pub fn label(self) -> &'static str {
        match self {
            ClientFault::Malformed => "malformed",
            ClientFault::HeadTooLarge => "head_too_large",
            ClientFault::Unsupported => "unsupported",
            ClientFault::HeaderTimeout => "header_timeout",
            ClientFault::BodyMalformed => "body_malformed",
            ClientFault::BodyTimeout => "body_timeout",
            ClientFault::BodyTooLarge => "body_too_large",
            ClientFault::SendTimeout => "send_timeout",
            ClientFault::Http2Flood => "h2_flood",
            ClientFault::Unresponsive => "unresponsive",
            ClientFault::TlsHandshake => "tls_handshake",
            ClientFault::TlsTimeout => "tls_timeout",
            ClientFault::PlainHttpOnTls => "plain_http_on_tls",
        }
    }
}

/// Counts of client connections and of what their clients did wrong, read by `/metrics`; and
/// the idle connections, one of which gives up its slot when a new client finds none.
#[derive(Debug, Default)]
pub struct ClientConnections {
    open: AtomicU64,
    refused: AtomicU64,
    idle: AtomicU64,
    evicted: AtomicU64,
    evict: Notify,
    faults: [AtomicU64; ClientFault::ALL.len()],
    tunnels_open: AtomicU64,
    tunnels_opened: AtomicU64,
    /// Set as vane shuts down: an HTTP/1 connection closes after the request it serves.
    closing: AtomicBool,
    /// Cancelled as vane shuts down: an HTTP/2 connection says GOAWAY, finishes its streams
    /// and closes.
    closing_signal: tokio_util::sync::CancellationToken,
}

impl ClientConnections {
    /// From now on, an HTTP/1 connection closes after the request it is serving (its response
    /// says `connection: close`) and an HTTP/2 connection says GOAWAY (its streams in progress
    /// finish), so clients move on while vane still accepts.
    pub fn close_after_requests(&self) {
        self.closing.store(true, Ordering::Relaxed);
        self.closing_signal.cancel();
    }

    /// Resolves once connections are to close after their requests (see
    /// [`ClientConnections::close_after_requests`]); at once if they are already.
    pub async fn closing_begun(&self) {
        self.closing_signal.cancelled().await;
    }

    /// Whether connections close after their request (see
    /// [`ClientConnections::close_after_requests`]).
    pub fn closing(&self) -> bool {
        self.closing.load(Ordering::Relaxed)
    }

    /// Counts a connection as open until the returned guard is dropped.
    pub fn open(&self) -> OpenConnection<'_> {
        self.open.fetch_add(1, Ordering::Relaxed);
        OpenConnection(self)
    }

    /// Counts a connection refused because `max_connections` were open.
    pub fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a fault of a client's.
    pub fn fault(&self, fault: ClientFault) {
        self.faults[fault as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Resolves when this idle connection is asked to close, to make room for a new client:
    /// the connection idle the longest is asked first. Counts the connection as idle while the
    /// future lives, and as evicted when it resolves.
    pub async fn until_evicted(&self) {
        let _idle = Idle::new(self);
        self.evict.notified().await;
        self.evicted.fetch_add(1, Ordering::Relaxed);
    }

    /// Asks the connection idle the longest to close: whether there was one to ask.
    pub fn evict_idle(&self) -> bool {
        if self.idle.load(Ordering::Relaxed) == 0 {
            return false;
        }
        self.evict.notify_one();
        true
    }

    /// Connections open now.
    pub fn open_now(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    /// Connections idle now: waiting for a request, and giving their slot up if asked.
    pub fn idle_now(&self) -> u64 {
        self.idle.load(Ordering::Relaxed)
    }

    /// Connections refused since start.
    pub fn refused_total(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Idle connections closed to make room for new clients, since start.
    pub fn evicted_total(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Counts a connection switched to another protocol (a WebSocket, say), open until
    /// [`ClientConnections::tunnel_closed`].
    pub fn tunnel_opened(&self) {
        self.tunnels_opened.fetch_add(1, Ordering::Relaxed);
        self.tunnels_open.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a tunnel closed.
    pub fn tunnel_closed(&self) {
        self.tunnels_open.fetch_sub(1, Ordering::Relaxed);
    }

    /// Tunnels open now.
    pub fn tunnels_open(&self) -> u64 {
        self.tunnels_open.load(Ordering::Relaxed)
    }

    /// Tunnels opened since start.
    pub fn tunnels_opened_total(&self) -> u64 {
        self.tunnels_opened.load(Ordering::Relaxed)
    }

    /// Faults of `fault`'s kind since start.
    pub fn faults(&self, fault: ClientFault) -> u64 {
        self.faults[fault as usize].load(Ordering::Relaxed)
    }
}

/// An open client connection, counted until dropped.
#[derive(Debug)]
pub struct OpenConnection<'a>(&'a ClientConnections);

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection counted as idle until dropped.
struct Idle<'a>(&'a ClientConnections);

impl<'a> Idle<'a> {
    fn new(connections: &'a ClientConnections) -> Self {
        connections.idle.fetch_add(1, Ordering::Relaxed);
        Idle(connections)
    }
}

impl Drop for Idle<'_> {
    fn drop(&mut self) {
        self.0.idle.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_longest_idle_connection_is_evicted_first() {
        let connections = ClientConnections::default();
        assert!(!connections.evict_idle(), "no idle connection to ask");
        let mut first = Box::pin(connections.until_evicted());
        let mut second = Box::pin(connections.until_evicted());
        // Polled once each, in order, as connections going idle one after the other are.
        assert!(futures_poll(first.as_mut()).is_pending());
        assert!(futures_poll(second.as_mut()).is_pending());
        assert!(connections.evict_idle());
        assert!(
            futures_poll(first.as_mut()).is_ready(),
            "the first idle goes"
        );
        assert!(
            futures_poll(second.as_mut()).is_pending(),
            "the second stays"
        );
        assert_eq!(connections.evicted_total(), 1);
        drop(second);
        assert!(!connections.evict_idle(), "none idle is left");
    }

    fn futures_poll<F: std::future::Future>(
        future: std::pin::Pin<&mut F>,
    ) -> std::task::Poll<F::Output> {
        let waker = std::task::Waker::noop();
        future.poll(&mut std::task::Context::from_waker(waker))
    }
}
