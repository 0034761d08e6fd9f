//! One HTTP/1.1 connection to a backend and one exchange on it: the request's head and body
//! written (`Outgoing`), the response head read. The body is written while the response is
//! read, so a backend that answers before it has read the whole body (a 413, or a stream that
//! echoes as it reads) is heard; the response's body then goes on writing it (`body.rs`).

use std::future::poll_fn;
use std::io::Write as _;
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};

use bytes::Bytes;
use http::header;
use http::request::Parts;
use http::uri::Authority;
use http::{Method, StatusCode};
use http_body::Body;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::response::{self, Head};
use crate::dial::BackendStream;
use crate::proxy::head::{ClientAddress, Forwarding};
use crate::proxy::http1::Reader;
use crate::proxy::http1::decode::READ_SIZE;
use crate::proxy::http1::parse_length;
use crate::proxy::request_body::AttemptBody;

/// Room for a typical request head, so that encoding it does not grow the buffer.
const HEAD_CAPACITY: usize = 512;
/// Body bytes gathered for one write at most.
const WRITE_SIZE: usize = 64 << 10;

/// A connection to a backend: its byte stream and what was read from it but not used yet.
pub(super) type Connection = Reader<BackendStream>;

impl Connection {
    /// Whether the idle connection can take another request: the backend has sent nothing
    /// since the last response (a close, or stray bytes, end it). Looked at once, with nobody
    /// to wake: tokio answers from the readiness it last saw, without a system call when the
    /// socket has not turned readable.
    pub(super) fn alive(&mut self) -> bool {
        if !self.buffer.is_empty() {
            return false;
        }
        let mut nobody = Context::from_waker(Waker::noop());
        let mut byte = [0; 1];
        let mut read = ReadBuf::new(&mut byte);
        Pin::new(&mut self.io)
            .poll_read(&mut nobody, &mut read)
            .is_pending()
    }
}

/// Why a request could not be written.
#[derive(Debug)]
pub(super) enum SendError {
    /// The client's body broke off, or carried more or less than its Content-Length.
    ClientBody,
    /// Writing to the backend failed.
    Io,
}

/// How the request's body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body.
    Empty,
    /// This many bytes are still to be written.
    Length(u64),
    /// Chunks, ended by a zero-size chunk.
    Chunked,
}

/// A request on its way to a backend: bytes gathered to be written next, and the body they are
/// read from.
pub(super) struct Outgoing {
    out: Vec<u8>,
    written: usize,
    body: AttemptBody,
    framing: Framing,
    /// The body has been read to its end, and its end framed.
    ended: bool,
    /// Some of the request has been written: it can no longer go on another connection.
    pub(super) touched: bool,
    /// The request is HEAD: its answer has no body.
    pub(super) head_request: bool,
}

impl Outgoing {
    /// The request of `head` (origin-form target, hop-by-hop fields removed) and `body`, encoded as
    /// HTTP/1.1, with the forwarding headers for `client` (`head::Forwarding`), and `authority`
    /// (the backend's address) as Host if the head has none (an HTTP/1.0 client's). The body is
    /// framed by the head's Content-Length if it has one (the server made it one plain value), else
    /// by its known size, else in chunks; a body already at its end gets no framing field, as
    /// hyper's client did.
    pub(super) fn new(
        head: &Parts,
        authority: &Authority,
        client: &ClientAddress,
        body: AttemptBody,
    ) -> Self {
        let mut out = Vec::with_capacity(HEAD_CAPACITY);
        out.extend_from_slice(head.method.as_str().as_bytes());
        out.push(b' ');
        let target = head
            .uri
            .path_and_query()
            .map_or("/", |target| target.as_str());
        out.extend_from_slice(target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        let mut length = None;
        let mut forwarding = Forwarding::default();
        for (name, value) in &head.headers {
            if name == header::CONTENT_LENGTH {
                match parse_length(value.as_bytes()) {
                    Some(parsed) if length.is_none() => length = Some(parsed),
                    // A second or unreadable one is never forwarded: the body is framed once.
                    _ => continue,
                }
            } else if forwarding.note(name, value) {
                continue;
            }
            encode_field(&mut out, name.as_str().as_bytes(), value.as_bytes());
        }
        match forwarding.host() {
            Some(host) => encode_field(&mut out, b"x-forwarded-host", host.as_bytes()),
            None => encode_field(&mut out, b"host", authority.as_str().as_bytes()),
        }
        encode_field(
            &mut out,
            b"x-forwarded-for",
            &forwarding.forwarded_for(client),
        );
        encode_field(&mut out, b"x-forwarded-proto", client.proto().as_bytes());
        let framing = match length {
            Some(length) => Framing::Length(length),
            None if body.is_end_stream() => Framing::Empty,
            None => match body.size_hint().exact() {
                Some(length) => {
                    write!(out, "content-length: {length}\r\n")
                        .expect("writing to a Vec cannot fail");
                    Framing::Length(length)
                }
                None => {
                    encode_field(&mut out, b"transfer-encoding", b"chunked");
                    Framing::Chunked
                }
            },
        };
        out.extend_from_slice(b"\r\n");
        Outgoing {
            out,
            written: 0,
            ended: framing == Framing::Empty,
            body,
            framing,
            touched: false,
            head_request: head.method == Method::HEAD,
        }
    }

    /// Writes the request as far as the socket and the body allow: `Ready(Ok)` once all of it
    /// is written and flushed.
    pub(super) fn poll_send(
        &mut self,
        stream: &mut BackendStream,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), SendError>> {
        loop {
            while self.written < self.out.len() {
                let written =
                    ready!(Pin::new(&mut *stream).poll_write(cx, &self.out[self.written..]))
                        .map_err(|_| SendError::Io)?;
                if written == 0 {
                    return Poll::Ready(Err(SendError::Io));
                }
                self.written += written;
                self.touched = true;
            }
            self.out.clear();
            self.written = 0;
            // Over TLS, what was written may still be in rustls's buffer: it goes now, before
            // the body is waited for (the backend may answer only once it has those bytes).
            ready!(Pin::new(&mut *stream).poll_flush(cx)).map_err(|_| SendError::Io)?;
            if self.ended {
                return Poll::Ready(Ok(()));
            }
            ready!(self.poll_gather(cx))?;
        }
    }

    /// Gathers what the body has ready, framed, up to `WRITE_SIZE`: `Pending` only when nothing
    /// was gathered.
    fn poll_gather(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), SendError>> {
        loop {
            let frame = match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Pending if self.out.is_empty() => return Poll::Pending,
                Poll::Pending => return Poll::Ready(Ok(())),
                Poll::Ready(frame) => frame,
            };
            let data = match frame {
                None => {
                    match self.framing {
                        Framing::Chunked => self.out.extend_from_slice(b"0\r\n\r\n"),
                        Framing::Length(left) if left > 0 => {
                            return Poll::Ready(Err(SendError::ClientBody));
                        }
                        _ => {}
                    }
                    self.ended = true;
                    return Poll::Ready(Ok(()));
                }
                Some(Err(_)) => return Poll::Ready(Err(SendError::ClientBody)),
                // Trailers are not sent to HTTP/1 backends (nor are they by Envoy, by default).
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if !data.is_empty() => data,
                    _ => continue,
                },
            };
            match &mut self.framing {
                Framing::Length(left) => {
                    // Never more than announced: the backend would read it as another request.
                    *left = left
                        .checked_sub(data.len() as u64)
                        .ok_or(SendError::ClientBody)?;
                    self.out.extend_from_slice(&data);
                    if *left == 0 {
                        // All of it: an end the client signals later (an HTTP/2 client's empty
                        // last frame) adds nothing, and the connection may carry another request.
                        self.ended = true;
                        return Poll::Ready(Ok(()));
                    }
                }
                Framing::Chunked => {
                    write!(self.out, "{:x}\r\n", data.len()).expect("writing to a Vec cannot fail");
                    self.out.extend_from_slice(&data);
                    self.out.extend_from_slice(b"\r\n");
                }
                Framing::Empty => return Poll::Ready(Err(SendError::ClientBody)),
            }
            if self.out.len() >= WRITE_SIZE {
                return Poll::Ready(Ok(()));
            }
        }
    }
}

/// Writes one header field.
fn encode_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Why an exchange ended without a response.
pub(super) enum Failure {
    /// Nothing was written, on a connection that had carried requests before: the backend
    /// closed it while it sat idle, and the request may go on a new one.
    NotSent(Outgoing),
    /// The client's body broke off.
    ClientBody,
    /// The backend answered a head vane refuses.
    Malformed(response::Malformed),
    /// The connection broke before the response head was whole.
    Broken,
}

/// What an exchange gives back: the response head, the connection (its buffer holding what
/// came after the head) and the request, if its body is still being written.
pub(super) struct Answered {
    pub(super) head: Head,
    pub(super) connection: Connection,
    pub(super) sending: Option<Outgoing>,
}

/// Writes `outgoing` on `connection` (`reused` if it carried requests before) and reads the
/// response head, skipping interim answers (`100 Continue`, `103 Early Hints`) but `101`.
pub(super) async fn exchange(
    mut connection: Connection,
    outgoing: Outgoing,
    reused: bool,
) -> Result<Answered, Failure> {
    let head_request = outgoing.head_request;
    let mut sending = Some(outgoing);
    // A write that failed stops the writing, not the reading: the backend may have answered.
    let mut write_failed = false;
    let mut head = poll_fn(|cx| {
        if let Some(outgoing) = sending.as_mut() {
            match outgoing.poll_send(&mut connection.io, cx) {
                Poll::Ready(Ok(())) => sending = None,
                Poll::Ready(Err(SendError::ClientBody)) => {
                    return Poll::Ready(Err(Failure::ClientBody));
                }
                Poll::Ready(Err(SendError::Io)) if reused && !outgoing.touched => {
                    let unsent = sending.take().expect("it was just written to");
                    return Poll::Ready(Err(Failure::NotSent(unsent)));
                }
                Poll::Ready(Err(SendError::Io)) => {
                    sending = None;
                    write_failed = true;
                }
                Poll::Pending => {}
            }
        }
        poll_head(&mut connection, cx, head_request)
    })
    .await?;
    head.keep_alive &= !write_failed;
    Ok(Answered {
        head,
        connection,
        sending,
    })
}

/// Reads until the connection's buffer holds a whole final response head.
fn poll_head(
    connection: &mut Connection,
    cx: &mut Context<'_>,
    head_request: bool,
) -> Poll<Result<Head, Failure>> {
    loop {
        if !connection.buffer.is_empty() {
            match response::parse(&mut connection.buffer, head_request) {
                Ok(Some(head))
                    if head.status.is_informational()
                        && head.status != StatusCode::SWITCHING_PROTOCOLS =>
                {
                    continue;
                }
                Ok(Some(head)) => return Poll::Ready(Ok(head)),
                Ok(None) => {}
                Err(malformed) => return Poll::Ready(Err(Failure::Malformed(malformed))),
            }
        }
        match ready!(connection.poll_fill(cx, READ_SIZE)) {
            Ok(read) if read > 0 => {}
            _ => return Poll::Ready(Err(Failure::Broken)),
        }
    }
}

/// The byte stream of a connection switched to another protocol, and what the backend sent
/// after its `101` head.
pub(super) fn into_stream(connection: Connection) -> (BackendStream, Bytes) {
    (connection.io, connection.buffer.freeze())
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, Request};

    use super::*;
    use crate::proxy::head::add_forwarded;

    /// The fields `head` is encoded with for an HTTP/1.1 backend, from `client`, read back.
    fn encoded_fields(head: &Parts, client: &ClientAddress) -> HeaderMap {
        let authority = Authority::from_static("10.0.0.9:80");
        let outgoing = Outgoing::new(head, &authority, client, AttemptBody::Empty);
        let mut fields = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut fields);
        assert!(request.parse(&outgoing.out).unwrap().is_complete());
        let mut map = HeaderMap::new();
        for field in request.headers.iter() {
            map.append(
                http::HeaderName::from_bytes(field.name.as_bytes()).unwrap(),
                http::HeaderValue::from_bytes(field.value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn the_forwarding_headers_are_written_as_an_http2_backend_gets_them() {
        let heads: [&[(&str, &str)]; 4] = [
            &[("host", "a.example")],
            &[
                ("host", "a.example"),
                ("x-forwarded-for", "10.0.0.1"),
                ("x-forwarded-for", " 10.0.0.2, 10.0.0.3 "),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "spoofed"),
            ],
            // An HTTP/1.0 client's head, without Host: the backend's address goes as Host,
            // and no X-Forwarded-Host.
            &[("x-forwarded-host", "spoofed"), ("x-forwarded-for", "")],
            &[("host", "b:8080"), ("x-kept", "1")],
        ];
        for client in [
            ClientAddress::new("192.0.2.7:5000".parse().unwrap()),
            ClientAddress::new("[2001:db8::1]:5000".parse().unwrap()).over_tls(),
        ] {
            for fields in heads {
                let mut builder = Request::get("/p");
                for (name, value) in fields {
                    builder = builder.header(*name, *value);
                }
                let (head, ()) = builder.body(()).unwrap().into_parts();
                let mut expected = head.headers.clone();
                add_forwarded(&mut expected, &client);
                if !expected.contains_key(header::HOST) {
                    expected.insert(header::HOST, "10.0.0.9:80".parse().unwrap());
                }
                let written = encoded_fields(&head, &client);
                for name in [
                    "x-forwarded-for",
                    "x-forwarded-proto",
                    "x-forwarded-host",
                    "host",
                ] {
                    let all =
                        |map: &HeaderMap| -> Vec<_> { map.get_all(name).iter().cloned().collect() };
                    assert_eq!(all(&written), all(&expected), "{name} of {fields:?}");
                }
                assert_eq!(
                    written.len(),
                    expected.len(),
                    "{written:?} against {expected:?}"
                );
            }
        }
    }
}
