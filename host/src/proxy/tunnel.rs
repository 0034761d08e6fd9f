//! The backend's end of a tunnel: after a `101 Switching Protocols` answer to a client's
//! `Upgrade` (a WebSocket, say), the backend connection's byte stream, read from what the backend
//! sent after its head first. It counts as a request in flight on its backend for its whole
//! life (so least-conn sees long-lived sessions) and as an open tunnel in `/metrics`.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::backend::InFlightGuard;
use crate::dial::BackendStream;
use crate::state::State;

/// A backend connection switched to another protocol.
pub(super) struct BackendTunnel {
    stream: BackendStream,
    /// Bytes the backend sent right after its 101 head, read before the stream.
    early: Bytes,
    _in_flight: InFlightGuard,
    state: Arc<State>,
}

impl BackendTunnel {
    /// The tunnel over `stream` (`early` having arrived already), held in flight by `guard`,
    /// counted open in `state` until dropped.
    pub(super) fn new(
        stream: BackendStream,
        early: Bytes,
        guard: InFlightGuard,
        state: Arc<State>,
    ) -> Self {
        state.client_connections().tunnel_opened();
        BackendTunnel {
            stream,
            early,
            _in_flight: guard,
            state,
        }
    }
}

impl Drop for BackendTunnel {
    fn drop(&mut self) {
        self.state.client_connections().tunnel_closed();
    }
}

impl AsyncRead for BackendTunnel {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.early.is_empty() {
            let take = this.early.len().min(buf.remaining());
            buf.put_slice(&this.early[..take]);
            this.early.advance(take);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for BackendTunnel {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
