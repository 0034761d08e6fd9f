//! The connection's write side, held to `send_timeout`: a client that reads nothing of its
//! response for that long has its connection closed (counted), so that it cannot hold a
//! connection, a backend connection and their buffers for ever.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::AsyncWrite;

use crate::proxy::transport::ClientWrite;
use crate::stall::StallTimer;
use crate::state::{ClientConnections, ClientFault};

/// A client connection's write half, with the send timeout.
pub(super) struct Sender<'a> {
    write: ClientWrite,
    stall: StallTimer,
    connections: &'a ClientConnections,
}

impl<'a> Sender<'a> {
    /// Writes to `write`, waiting at most `send_timeout` for the client to read; a timeout is
    /// counted in `connections`.
    pub(super) fn new(
        write: ClientWrite,
        send_timeout: Duration,
        connections: &'a ClientConnections,
    ) -> Self {
        Sender {
            write,
            stall: StallTimer::new(send_timeout),
            connections,
        }
    }

    /// What a write answers: progress stops the stall timer; a write that has to wait is
    /// still waiting, or past the timeout.
    fn written(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        if polled.is_ready() {
            self.stall.progress();
            return polled;
        }
        if self.stall.poll_expired(cx) {
            self.connections.fault(ClientFault::SendTimeout);
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client read nothing of its response for send_timeout",
            )));
        }
        Poll::Pending
    }
}

impl AsyncWrite for Sender<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.write).poll_write(cx, buf);
        this.written(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.write).poll_write_vectored(cx, bufs);
        this.written(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.write.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().write).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().write).poll_shutdown(cx)
    }
}
