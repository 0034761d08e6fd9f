//! The request body sent upstream, kept so that a failed attempt can be sent again: an empty
//! body is rebuilt for free, and a streamed one is reclaimed if no byte of it was read. A body
//! comes from an HTTP/1 client (vane's own server) or an HTTP/2 one (hyper's).

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::http1;

/// Any error a request body's stream may end with.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A client's request body as its connection delivers it.
#[derive(Debug)]
pub(crate) enum ClientBody {
    /// Read from an HTTP/1 connection.
    Http1(http1::RequestBody),
    /// The DATA frames of an HTTP/2 stream.
    Http2(Incoming),
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ClientBody::Http1(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            ClientBody::Http2(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ClientBody::Http1(body) => body.is_end_stream(),
            ClientBody::Http2(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ClientBody::Http1(body) => body.size_hint(),
            ClientBody::Http2(body) => body.size_hint(),
        }
    }
}

/// A client's request body, owned across attempts.
#[derive(Debug)]
pub(crate) enum RequestBody {
    /// No body at all (most GET, HEAD, DELETE and OPTIONS requests).
    Empty,
    /// A body streamed from the client, shared with the attempt that reads it.
    Streamed(Arc<Mutex<Slot>>),
}

/// The client's body and whether an attempt has started reading it.
#[derive(Debug)]
pub(crate) struct Slot {
    body: ClientBody,
    started: bool,
}

/// The body of one attempt.
#[derive(Debug)]
pub(crate) enum AttemptBody {
    /// Nothing to send.
    Empty,
    /// Reads from the client's body.
    Streamed(Arc<Mutex<Slot>>),
}

impl RequestBody {
    /// Keeps `body` for the attempts to come.
    pub(crate) fn new(body: ClientBody) -> Self {
        if body.is_end_stream() {
            RequestBody::Empty
        } else {
            RequestBody::Streamed(Arc::new(Mutex::new(Slot {
                body,
                started: false,
            })))
        }
    }

    /// The body for the next attempt.
    pub(crate) fn attempt(&self) -> AttemptBody {
        match self {
            RequestBody::Empty => AttemptBody::Empty,
            RequestBody::Streamed(slot) => AttemptBody::Streamed(slot.clone()),
        }
    }

    /// Whether another attempt can send the whole body: it is empty, or none of it was read.
    pub(crate) fn replayable(&self) -> bool {
        match self {
            RequestBody::Empty => true,
            RequestBody::Streamed(slot) => !lock(slot).started,
        }
    }
}

/// Locks a slot; a panic while it was held cannot leave the body half-updated, so a poisoned
/// lock is used as is.
fn lock(slot: &Mutex<Slot>) -> MutexGuard<'_, Slot> {
    slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Body for AttemptBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            AttemptBody::Empty => Poll::Ready(None),
            AttemptBody::Streamed(slot) => {
                let mut slot = lock(slot);
                slot.started = true;
                Pin::new(&mut slot.body).poll_frame(cx)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            AttemptBody::Empty => true,
            AttemptBody::Streamed(slot) => lock(slot).body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            AttemptBody::Empty => SizeHint::with_exact(0),
            AttemptBody::Streamed(slot) => lock(slot).body.size_hint(),
        }
    }
}
