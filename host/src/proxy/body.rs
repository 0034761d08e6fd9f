//! The response body vane sends: the backend's body streamed through, holding the request's
//! in-flight guard until the last frame, or a short message of vane's own.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::upstream::Lease;
use crate::backend::InFlightGuard;

/// A response body: streamed from a backend, or a fixed message from vane.
#[derive(Debug)]
pub enum ProxyBody {
    /// The backend's body; the guard is released at its end (or when the client goes away).
    Upstream {
        /// The body as it arrives from the backend.
        body: Incoming,
        /// Counts the request as in flight until the body ends.
        guard: Option<InFlightGuard>,
        /// The connection the body arrives on, run by the body and pooled again at its end.
        connection: Option<Lease>,
    },
    /// A body vane wrote itself, such as an error message.
    Message(Option<Bytes>),
}

impl ProxyBody {
    /// A body holding `text`.
    pub fn message(text: &'static str) -> Self {
        ProxyBody::Message(Some(Bytes::from_static(text.as_bytes())))
    }
}

impl Drop for ProxyBody {
    /// hyper stops polling a body once it reports its end (a known length read, or nothing to
    /// read: HEAD, 204, 304), so the connection mostly goes back to the pool here. A body
    /// dropped before its end closes its connection.
    fn drop(&mut self) {
        if let ProxyBody::Upstream {
            body, connection, ..
        } = self
            && body.is_end_stream()
            && let Some(lease) = connection.take()
        {
            lease.release();
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ProxyBody::Upstream {
                body,
                guard,
                connection,
            } => {
                let mut frame = Pin::new(&mut *body).poll_frame(cx);
                if frame.is_pending()
                    && let Some(lease) = connection
                {
                    // The body's bytes come in through the connection: run it, then look again.
                    let _ = lease.drive(cx);
                    frame = Pin::new(&mut *body).poll_frame(cx);
                }
                match &frame {
                    Poll::Ready(None) => {
                        drop(guard.take());
                        if let Some(lease) = connection.take() {
                            lease.release();
                        }
                    }
                    Poll::Ready(Some(Err(_))) => {
                        if let Some(guard) = guard.take() {
                            guard.backend().stats.record_failure();
                        }
                        drop(connection.take());
                    }
                    _ => {}
                }
                frame
            }
            ProxyBody::Message(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Upstream { body, .. } => body.is_end_stream(),
            ProxyBody::Message(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Upstream { body, .. } => body.size_hint(),
            ProxyBody::Message(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}
