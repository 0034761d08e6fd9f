//! A response body as an HTTP/1.1 backend sends it, read from the connection it came on, which
//! the body holds: a Content-Length's worth, chunks, or everything until the close. While it is
//! read, the request's body goes on being written if it was not all written yet. At its last
//! byte the connection goes back to the pool, before the client has even been sent that byte,
//! if the backend and the exchange allow another request on it; any other end closes it. A
//! chunked body's trailers come as a trailers frame (an HTTP/2 client gets them; HTTP/1 clients
//! do not), without the fields that may not be trailers.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Frame, SizeHint};

use http::header;
use http::{HeaderMap, StatusCode};

use super::Home;
use super::connection::{self, Connection, Outgoing, SendError};
use super::response::{Framing, Head};
use crate::dial::BackendStream;
use crate::proxy::head;
use crate::proxy::http1::Fields;
use crate::proxy::http1::decode::{
    self, Decoder, READ_SIZE, Step, consume_framing, step, take_trailers,
};

/// How the rest of the body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// By its framing.
    Framed(Decoder),
    /// Until the backend closes the connection.
    UntilClose,
    /// Read to its end, or broken off.
    Over,
}

/// The body of a response from an HTTP/1.1 backend.
pub(crate) struct ResponseBody {
    /// The connection, until the body ends (pooled again or closed).
    connection: Option<Connection>,
    reading: Reading,
    /// The request, while its body is still being written (boxed: most requests are written
    /// whole before their answer comes, and the body should not carry room for it).
    sending: Option<Box<Outgoing>>,
    /// Whether the connection may carry another request once the body has been read.
    keep_alive: bool,
    /// Where the connection goes back to.
    home: Home,
    /// The response head's fields, as they came, until the writer takes them.
    fields: Option<Fields>,
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("reading", &self.reading)
            .field("open", &self.connection.is_some())
            .field("sending", &self.sending.is_some())
            .finish_non_exhaustive()
    }
}

impl ResponseBody {
    /// The body of the answer `head` on `connection`; `sending` is the request if its body is
    /// still being written. A body with nothing to read ends at once, and a connection that may
    /// carry another request goes home now (but after a `101`: the client's tunnel takes it).
    /// The head's fields come with the body, for the writer.
    pub(super) fn new(
        connection: Connection,
        head: &mut Head,
        sending: Option<Outgoing>,
        home: Home,
    ) -> Self {
        let reading = match head.framing {
            Framing::Empty | Framing::Length(0) => Reading::Framed(Decoder::Done),
            Framing::Length(length) => Reading::Framed(Decoder::Length(length)),
            Framing::Chunked => Reading::Framed(Decoder::ChunkSize),
            Framing::UntilClose => Reading::UntilClose,
        };
        let mut body = ResponseBody {
            connection: Some(connection),
            reading,
            sending: sending.map(Box::new),
            keep_alive: head.keep_alive,
            home,
            fields: head.fields.take(),
        };
        if head.status != StatusCode::SWITCHING_PROTOCOLS {
            body.finish_if_read();
        }
        body
    }

    /// The response head's fields as they came, if not taken yet.
    pub(crate) fn take_fields(&mut self) -> Option<Fields> {
        self.fields.take()
    }

    /// The connection's byte stream after a `101 Switching Protocols` answer, with what the
    /// backend sent after that head.
    pub(crate) fn into_tunnel(mut self) -> Option<(BackendStream, Bytes)> {
        self.connection.take().map(connection::into_stream)
    }

    /// Once the body has been read to its end, sends the connection home if it may carry
    /// another request: the request was all written and nothing came after the response.
    fn finish_if_read(&mut self) {
        if self.reading != Reading::Framed(Decoder::Done) {
            return;
        }
        self.reading = Reading::Over;
        let Some(connection) = self.connection.take() else {
            return;
        };
        if self.keep_alive && self.sending.is_none() && connection.buffer.is_empty() {
            self.home.check_in(connection);
        }
    }

    /// Ends the body with `error`; the connection closes.
    fn fail(&mut self, error: io::Error) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.reading = Reading::Over;
        self.connection = None;
        self.sending = None;
        Poll::Ready(Some(Err(error)))
    }
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        loop {
            let Some(connection) = this.connection.as_mut() else {
                return Poll::Ready(None);
            };
            if let Some(outgoing) = this.sending.as_mut() {
                match outgoing.poll_send(&mut connection.io, cx) {
                    Poll::Ready(Ok(())) => this.sending = None,
                    // The backend has half a request and may wait for the rest for ever: the
                    // exchange ends here, as hyper's client ended it.
                    Poll::Ready(Err(SendError::ClientBody)) => {
                        return this.fail(io::Error::other(
                            "the client's request body broke off while the response streamed",
                        ));
                    }
                    // The backend stopped reading, and may still be answering: the response
                    // goes on, and the connection is not used again.
                    Poll::Ready(Err(SendError::Io)) => {
                        this.sending = None;
                        this.keep_alive = false;
                    }
                    Poll::Pending => {}
                }
            }
            let decoder = match &mut this.reading {
                Reading::Over => return Poll::Ready(None),
                Reading::Framed(decoder) => decoder,
                Reading::UntilClose => {
                    if !connection.buffer.is_empty() {
                        let data = connection.buffer.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    match ready!(connection.poll_fill(cx, decode::BODY_READ_SIZE)) {
                        Ok(0) => {
                            this.reading = Reading::Over;
                            this.connection = None;
                            return Poll::Ready(None);
                        }
                        Ok(_) => continue,
                        Err(error) => return this.fail(error),
                    }
                }
            };
            if *decoder == Decoder::Trailers(0) {
                match take_trailers(decoder, &mut connection.buffer) {
                    Some(Ok(mut trailers)) => {
                        this.finish_if_read();
                        keep_trailers_only(&mut trailers);
                        if trailers.is_empty() {
                            return Poll::Ready(None);
                        }
                        return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                    }
                    Some(Err(reason)) => {
                        return this.fail(io::Error::new(io::ErrorKind::InvalidData, reason));
                    }
                    None => match ready!(connection.poll_fill(cx, READ_SIZE)) {
                        Ok(0) => return this.fail(closed_inside()),
                        Ok(_) => continue,
                        Err(error) => return this.fail(error),
                    },
                }
            }
            match step(decoder, &mut connection.buffer) {
                Step::Data(data) => {
                    consume_framing(decoder, &mut connection.buffer, true);
                    this.finish_if_read();
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Step::Progress if *decoder == Decoder::Done => {
                    this.finish_if_read();
                    return Poll::Ready(None);
                }
                Step::Progress => {}
                Step::NeedMore => match ready!(connection.poll_fill(cx, decode::want(*decoder))) {
                    Ok(0) => return this.fail(closed_inside()),
                    Ok(_) => {}
                    Err(error) => return this.fail(error),
                },
                Step::Malformed(reason) => {
                    return this.fail(io::Error::new(io::ErrorKind::InvalidData, reason));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.reading == Reading::Over
    }

    fn size_hint(&self) -> SizeHint {
        match self.reading {
            Reading::Framed(Decoder::Length(left)) => SizeHint::with_exact(left),
            Reading::Over => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

/// The error of a body the backend's close cut short.
fn closed_inside() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the backend closed the connection inside the response body",
    )
}

/// Fields a trailer section may not carry (RFC 9110 §6.5.1): framing, routing, request
/// modifiers, authentication, response control data, and how to process the content.
static NOT_TRAILERS: [header::HeaderName; 21] = [
    header::CONTENT_LENGTH,
    header::CONTENT_TYPE,
    header::CONTENT_ENCODING,
    header::CONTENT_RANGE,
    header::HOST,
    header::AUTHORIZATION,
    header::WWW_AUTHENTICATE,
    header::COOKIE,
    header::SET_COOKIE,
    header::CACHE_CONTROL,
    header::EXPIRES,
    header::AGE,
    header::DATE,
    header::LOCATION,
    header::RETRY_AFTER,
    header::VARY,
    header::WARNING,
    header::IF_MATCH,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::RANGE,
];

/// Leaves out of `trailers` the fields a trailer section may not carry, and the hop-by-hop
/// ones.
fn keep_trailers_only(trailers: &mut HeaderMap) {
    let refused: Vec<header::HeaderName> = trailers
        .keys()
        .filter(|name| head::is_hop_by_hop(name) || NOT_TRAILERS.contains(name))
        .cloned()
        .collect();
    for name in refused {
        trailers.remove(name);
    }
}
