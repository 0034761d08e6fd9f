//! The response body vane sends: the backend's body streamed through, holding the request's
//! in-flight guard until the last frame, or a short message of vane's own. A gRPC call's body
//! ends at the call's deadline, and with a gRPC status if the backend's connection breaks.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

use super::grpc::{self, Code, GrpcCall};
use super::http1::{FieldSource, Fields};
use super::request_body::BoxError;
use super::upstream::UpstreamBody;
use crate::backend::InFlightGuard;

/// A response body: streamed from a backend, or a fixed message from vane.
// The upstream body is what nearly every response carries: boxing it to shrink vane's own
// messages would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum ProxyBody {
    /// The backend's body; the guard is released at its end (or when the client goes away).
    Upstream {
        /// The body as it arrives from the backend, holding its connection until its end.
        body: UpstreamBody,
        /// Counts the request as in flight until the body ends.
        guard: Option<InFlightGuard>,
        /// How the body of a gRPC call ends early, if the request was one.
        call: Option<Box<CallEnd>>,
    },
    /// A body vane wrote itself, such as an error message.
    Message(Option<Bytes>),
}

/// How a gRPC call's response body ends when the backend does not end it: at the call's
/// deadline (`DEADLINE_EXCEEDED`), or when its connection breaks (`UNAVAILABLE`).
#[derive(Debug)]
pub struct CallEnd {
    deadline: Option<Pin<Box<Sleep>>>,
}

impl CallEnd {
    /// The end of `call`'s body.
    pub(super) fn new(call: GrpcCall) -> Box<Self> {
        Box::new(CallEnd {
            deadline: call
                .deadline
                .map(|deadline| Box::pin(tokio::time::sleep_until(deadline))),
        })
    }

    /// Whether the deadline has passed.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline
            .as_mut()
            .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready())
    }
}

impl ProxyBody {
    /// A body holding `text`.
    pub fn message(text: &'static str) -> Self {
        ProxyBody::Message(Some(Bytes::from_static(text.as_bytes())))
    }
}

impl FieldSource for ProxyBody {
    fn take_fields(&mut self) -> Option<Fields> {
        match self {
            ProxyBody::Upstream { body, .. } => body.take_fields(),
            ProxyBody::Message(_) => None,
        }
    }
}

impl ProxyBody {
    /// `response` with every header in its map: the fields an HTTP/1.1 backend's head carried
    /// as they came are added to it (an HTTP/2 client's response needs them there).
    pub(super) fn fields_in_map(mut response: http::Response<Self>) -> http::Response<Self> {
        if let Some(fields) = response.body_mut().take_fields() {
            fields.add_to(response.headers_mut());
        }
        response
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match this {
            ProxyBody::Upstream { body, guard, call } => {
                let frame = Pin::new(&mut *body).poll_frame(cx);
                if let Some(end) = call {
                    // Looked at on every poll: a backend streaming without a pause must not
                    // outlive the deadline either.
                    let ending = match &frame {
                        Poll::Ready(None) => None,
                        Poll::Ready(Some(Err(_))) => Some((
                            Code::Unavailable,
                            "vane: the backend's connection broke during the response",
                        )),
                        _ if end.expired(cx) => Some((
                            Code::DeadlineExceeded,
                            "vane: the call's grpc-timeout passed",
                        )),
                        _ => None,
                    };
                    if let Some((code, message)) = ending {
                        if code == Code::Unavailable
                            && let Some(guard) = guard.take()
                        {
                            guard.backend().stats.record_failure();
                        }
                        // Dropping the backend's body cancels its stream; the call ends here.
                        *this = ProxyBody::Message(None);
                        return Poll::Ready(Some(Ok(Frame::trailers(grpc::status(code, message)))));
                    }
                }
                match &frame {
                    Poll::Ready(None) => drop(guard.take()),
                    Poll::Ready(Some(Err(_))) => {
                        if let Some(guard) = guard.take() {
                            guard.backend().stats.record_failure();
                        }
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
