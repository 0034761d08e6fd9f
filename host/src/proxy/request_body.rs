//! The request body sent upstream, kept so that a failed attempt can be sent again: an empty
//! body is rebuilt for free, and a streamed one is reclaimed if no byte of it was read. A body
//! comes from an HTTP/1 client (vane's own server) or an HTTP/2 one (hyper's); either way it is
//! held to `body_read_timeout` and `max_body_size`, and a fault of the client's is counted.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::http1;
use crate::stall::StallTimer;
use crate::state::{ClientFault, State};

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

/// What a request body is held to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimits {
    /// The longest the client may send nothing while the body is being read.
    pub(crate) read_timeout: Duration,
    /// The largest body, if any is set.
    pub(crate) max_size: Option<u64>,
}

/// Why vane cut a client's body off: the client's doing, so the client gets a 4xx.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BodyFault {
    /// Its framing broke (an HTTP/1 chunk line vane cannot read one way).
    #[error("the request body's framing is malformed")]
    Malformed,
    /// Nothing arrived for `body_read_timeout`.
    #[error("the request body sent nothing for too long")]
    TimedOut,
    /// It grew past `max_body_size`.
    #[error("the request body is larger than max_body_size")]
    TooLarge,
}

impl BodyFault {
    fn counted_as(self) -> ClientFault {
        match self {
            BodyFault::Malformed => ClientFault::BodyMalformed,
            BodyFault::TimedOut => ClientFault::BodyTimeout,
            BodyFault::TooLarge => ClientFault::BodyTooLarge,
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

/// The client's body, whether an attempt has started reading it, and how it stands against
/// its limits.
pub(crate) struct Slot {
    body: ClientBody,
    started: bool,
    limits: BodyLimits,
    received: u64,
    stall: StallTimer,
    fault: Option<BodyFault>,
    state: Arc<State>,
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
    /// Keeps `body` for the attempts to come, held to `limits`; faults are counted in
    /// `state`. A body announced larger than `max_body_size` is refused at once.
    pub(crate) fn new(
        body: ClientBody,
        limits: BodyLimits,
        state: &Arc<State>,
    ) -> Result<Self, BodyFault> {
        if body.is_end_stream() {
            return Ok(RequestBody::Empty);
        }
        if limits
            .max_size
            .is_some_and(|max| body.size_hint().lower() > max)
        {
            state.client_connections().fault(ClientFault::BodyTooLarge);
            return Err(BodyFault::TooLarge);
        }
        Ok(RequestBody::Streamed(Arc::new(Mutex::new(Slot {
            body,
            started: false,
            limits,
            received: 0,
            stall: StallTimer::new(limits.read_timeout),
            fault: None,
            state: state.clone(),
        }))))
    }

    /// What the client did wrong, if its body was cut off for it.
    pub(crate) fn fault(&self) -> Option<BodyFault> {
        match self {
            RequestBody::Empty => None,
            RequestBody::Streamed(slot) => lock(slot).fault,
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

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("body", &self.body)
            .field("started", &self.started)
            .field("received", &self.received)
            .field("fault", &self.fault)
            .finish_non_exhaustive()
    }
}

impl Slot {
    /// Polls the client's body, holding it to its limits.
    fn poll_limited(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(fault) = self.fault {
            return Poll::Ready(Some(Err(fault.into())));
        }
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Pending if self.stall.poll_expired(cx) => self.cut_off(BodyFault::TimedOut),
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(frame))) => {
                self.stall.progress();
                if let Some(data) = frame.data_ref() {
                    self.received += data.len() as u64;
                    if self.limits.max_size.is_some_and(|max| self.received > max) {
                        return self.cut_off(BodyFault::TooLarge);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => {
                let malformed = err
                    .downcast_ref::<http1::BodyError>()
                    .is_some_and(|err| matches!(err, http1::BodyError::Malformed(_)));
                if malformed {
                    return self.cut_off(BodyFault::Malformed);
                }
                Poll::Ready(Some(Err(err)))
            }
            Poll::Ready(None) => Poll::Ready(None),
        }
    }

    /// Ends the body with `fault`, counted once.
    fn cut_off(&mut self, fault: BodyFault) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.fault = Some(fault);
        self.state.client_connections().fault(fault.counted_as());
        Poll::Ready(Some(Err(fault.into())))
    }
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
                slot.poll_limited(cx)
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
