//! Writing a response to an HTTP/1 client: the status line and headers, then the body framed
//! by its Content-Length, in chunks (HTTP/1.1) or up to the connection's close (HTTP/1.0), with
//! `Connection` and `Date` set. Small writes are gathered into one buffer and sent when the
//! body has nothing more ready.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io::Write as _;
use std::pin::Pin;
use std::task::Poll;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode, Version};
use http_body::Body;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::fields::FieldSource;
use super::request::Refusal;

/// Room for a typical response head, so that encoding it does not grow the buffer.
const HEAD_CAPACITY: usize = 1024;
/// Gathered bytes are sent once they reach this size, even if the body has more ready.
const WRITE_SIZE: usize = 64 << 10;
/// Body bytes up to this size are copied behind the head in one write; larger ones are sent
/// as they are.
const COPY_LIMIT: usize = 8 << 10;

/// What the response depends on in the request it answers.
#[derive(Debug, Clone, Copy)]
pub(super) struct Answering {
    /// The request's version: an HTTP/1.0 client gets HTTP/1.0 back, and no chunks.
    pub(super) version: Version,
    /// Whether the request was HEAD: the response has a head only.
    pub(super) head: bool,
    /// Whether the connection may carry another request, as far as the request goes.
    pub(super) keep_alive: bool,
}

impl Answering {
    /// What a response to a request with `method` and `version` depends on.
    pub(super) fn new(method: &Method, version: Version, keep_alive: bool) -> Self {
        Answering {
            version,
            head: method == Method::HEAD,
            keep_alive,
        }
    }
}

/// How a response's body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body is sent (HEAD, 204, 304).
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunks, ended by a zero-size chunk.
    Chunked,
    /// Bytes until the connection closes.
    UntilClose,
}

/// Writes `response` to `io`: whether the connection may carry another request after it
/// (the response was whole and both sides allow it). An error means the client went away.
pub(super) async fn write<W, B>(
    io: &mut W,
    response: Response<B>,
    answering: Answering,
) -> std::io::Result<bool>
where
    W: AsyncWrite + Unpin,
    B: Body<Data = Bytes> + Unpin + FieldSource,
{
    let (mut parts, mut body) = response.into_parts();
    // An HTTP/1.1 backend's fields, copied as they came; vane's own additions are in the map.
    let fields = body.take_fields();
    if parts.status.is_informational() {
        // An interim status as the final answer (a backend's unasked-for 101, say) would leave
        // the client waiting for a response that never comes.
        io.write_all(&refusal(Refusal {
            status: StatusCode::BAD_GATEWAY,
            reason: "the backend answered with an interim status",
        }))
        .await?;
        return Ok(false);
    }
    let mut present = Present::in_headers(&parts.headers);
    present.date |= fields.as_ref().is_some_and(|fields| fields.date);
    let their_length = fields.as_ref().and_then(|fields| fields.content_length);
    let framing = framing(
        &mut parts.headers,
        present,
        their_length,
        parts.status,
        &body,
        answering,
    );
    let keep_alive = answering.keep_alive && framing != Framing::UntilClose;
    set_connection(&mut parts.headers, present, answering.version, keep_alive);
    let mut out = Vec::with_capacity(HEAD_CAPACITY);
    encode_head(&mut out, answering.version, parts.status, &parts.headers);
    if let Some(fields) = &fields {
        fields.encode(&mut out);
        // Their one length, however the backend wrote it (a 204 says none, RFC 9110 §8.6).
        if let Some(length) = their_length
            && parts.status != StatusCode::NO_CONTENT
        {
            write!(out, "content-length: {length}\r\n").expect("writing to a Vec cannot fail");
        }
    }
    out.extend_from_slice(b"\r\n");
    if framing == Framing::None {
        drop(body);
        io.write_all(&out).await?;
        io.flush().await?;
        return Ok(keep_alive);
    }
    let mut sent: u64 = 0;
    loop {
        // Look at the body once; if it has nothing ready, send what is gathered first.
        let ready = poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx))).await;
        let frame = match ready {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                io.write_all(&out).await?;
                out.clear();
                poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
            }
        };
        let data = match frame {
            None => break,
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                // Trailers are not sent to HTTP/1 clients.
                Err(_) => continue,
            },
            Some(Err(_)) => {
                // The backend broke off: what was sent stands, and the connection closes so
                // that the client sees the body is incomplete.
                io.write_all(&out).await?;
                return Ok(false);
            }
        };
        if data.is_empty() {
            continue;
        }
        sent += data.len() as u64;
        if let Framing::Length(length) = framing
            && sent > length
        {
            // More than the backend announced: never send bytes the client would read as
            // the start of another response.
            io.write_all(&out).await?;
            return Ok(false);
        }
        if framing == Framing::Chunked {
            write!(out, "{:x}\r\n", data.len()).expect("writing to a Vec cannot fail");
        }
        send_data(io, &mut out, data).await?;
        if framing == Framing::Chunked {
            out.extend_from_slice(b"\r\n");
        }
        if out.len() >= WRITE_SIZE {
            io.write_all(&out).await?;
            out.clear();
        }
    }
    if framing == Framing::Chunked {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    io.write_all(&out).await?;
    // Over TLS a write may leave records in rustls's buffer when the socket is full; nothing
    // else writes before the next response, so they go now (plain TCP has nothing to flush).
    io.flush().await?;
    let whole = match framing {
        Framing::Length(length) => sent == length,
        _ => true,
    };
    Ok(keep_alive && whole)
}

/// Adds `data` behind what is gathered in `out`, or sends both if `data` is large.
async fn send_data<W: AsyncWrite + Unpin>(
    io: &mut W,
    out: &mut Vec<u8>,
    data: Bytes,
) -> std::io::Result<()> {
    if data.len() <= COPY_LIMIT {
        out.extend_from_slice(&data);
        return Ok(());
    }
    io.write_all(out).await?;
    out.clear();
    io.write_all(&data).await
}

/// Which of the fields vane sets itself a response already has: found in one pass over the
/// names, so that the common response needs no lookup.
#[derive(Debug, Default, Clone, Copy)]
struct Present {
    content_length: bool,
    transfer_encoding: bool,
    connection: bool,
    date: bool,
}

impl Present {
    fn in_headers(headers: &HeaderMap) -> Self {
        let mut present = Present::default();
        for name in headers.keys() {
            if name == header::CONTENT_LENGTH {
                present.content_length = true;
            } else if name == header::TRANSFER_ENCODING {
                present.transfer_encoding = true;
            } else if name == header::CONNECTION {
                present.connection = true;
            } else if name == header::DATE {
                present.date = true;
            }
        }
        present
    }
}

/// Decides the body's framing and sets the headers that announce it; `their_length` is the
/// Content-Length among the fields the backend's head carries as they came, if any.
fn framing<B: Body>(
    headers: &mut HeaderMap,
    present: Present,
    their_length: Option<u64>,
    status: StatusCode,
    body: &B,
    answering: Answering,
) -> Framing {
    if present.transfer_encoding {
        headers.remove(header::TRANSFER_ENCODING);
    }
    if status == StatusCode::NO_CONTENT {
        // A 204 has no body and says no length (RFC 9110 §8.6).
        if present.content_length {
            headers.remove(header::CONTENT_LENGTH);
        }
        return Framing::None;
    }
    if answering.head || status == StatusCode::NOT_MODIFIED {
        return Framing::None;
    }
    if present.content_length {
        if let Some(length) = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse().ok())
        {
            return Framing::Length(length);
        }
        headers.remove(header::CONTENT_LENGTH);
    }
    if let Some(length) = their_length {
        return Framing::Length(length);
    }
    if let Some(length) = body.size_hint().exact() {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        return Framing::Length(length);
    }
    if answering.version == Version::HTTP_11 {
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        return Framing::Chunked;
    }
    Framing::UntilClose
}

/// Says `close` to an HTTP/1.1 client whose connection ends here, and `keep-alive` to an
/// HTTP/1.0 one whose connection stays open (RFC 9112 §9.3); adds `Date` if it is missing.
fn set_connection(headers: &mut HeaderMap, present: Present, version: Version, keep_alive: bool) {
    if present.connection {
        headers.remove(header::CONNECTION);
    }
    match (version, keep_alive) {
        (Version::HTTP_11, false) => {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        (Version::HTTP_10, true) => {
            headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        }
        _ => {}
    }
    if !present.date {
        headers.insert(header::DATE, date());
    }
}

/// Encodes the status line and the headers of `headers`, not the blank line that ends the head.
fn encode_head(out: &mut Vec<u8>, version: Version, status: StatusCode, headers: &HeaderMap) {
    out.extend_from_slice(match version {
        Version::HTTP_10 => b"HTTP/1.0 ",
        _ => b"HTTP/1.1 ",
    });
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// Writes the head of a `101 Switching Protocols` answer with `headers` (the backend's, which
/// name the protocol); the connection's bytes are the new protocol's from then on.
pub(super) async fn write_switching<W: AsyncWrite + Unpin>(
    io: &mut W,
    headers: &HeaderMap,
) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(HEAD_CAPACITY);
    encode_head(
        &mut out,
        Version::HTTP_11,
        StatusCode::SWITCHING_PROTOCOLS,
        headers,
    );
    out.extend_from_slice(b"\r\n");
    io.write_all(&out).await?;
    io.flush().await
}

/// The whole response to a refused request head, which closes the connection.
pub(super) fn refusal(refusal: Refusal) -> Vec<u8> {
    let text = format!("{}: {}\n", refusal.status, refusal.reason);
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(text.len()));
    set_connection(&mut headers, Present::default(), Version::HTTP_11, false);
    let mut out = Vec::with_capacity(HEAD_CAPACITY);
    encode_head(&mut out, Version::HTTP_11, refusal.status, &headers);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(text.as_bytes());
    out
}

thread_local! {
    /// The `Date` value of the current second, made once per second per thread.
    static DATE: RefCell<(u64, HeaderValue)> =
        const { RefCell::new((u64::MAX, HeaderValue::from_static(""))) };
}

/// The current time as an HTTP date (RFC 9110 §5.6.7), as hyper added it.
fn date() -> HeaderValue {
    let now = SystemTime::now();
    let second = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    DATE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != second {
            *cached = (
                second,
                HeaderValue::try_from(httpdate::fmt_http_date(now))
                    .expect("an HTTP date is a valid header value"),
            );
        }
        cached.1.clone()
    })
}

#[cfg(test)]
mod tests {
    use http_body_util::Full;

    use super::super::fields::Fields;
    use super::*;

    impl FieldSource for Full<Bytes> {
        fn take_fields(&mut self) -> Option<Fields> {
            None
        }
    }

    /// A body whose response head's fields came as bytes, as an HTTP/1.1 backend's do.
    struct WithFields(Full<Bytes>, Option<Fields>);

    impl FieldSource for WithFields {
        fn take_fields(&mut self) -> Option<Fields> {
            self.1.take()
        }
    }

    impl Body for WithFields {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
            Pin::new(&mut self.0).poll_frame(cx)
        }
    }

    /// The fields of `head` (a response head's field lines), every one kept.
    fn fields_of(head: &'static [u8], length: Option<u64>, date: bool) -> Fields {
        let mut fields = Fields::new(4);
        let mut at = 0;
        for line in head.split(|&byte| byte == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if let Some(colon) = line.iter().position(|&byte| byte == b':') {
                let value = line[colon + 1..].trim_ascii();
                let value_start = at + (value.as_ptr() as usize - line.as_ptr() as usize);
                fields.keep((at, at + colon), (value_start, value_start + value.len()));
            }
            at += line.len() + 2;
        }
        let mut fields = fields.of_head(Bytes::from_static(head));
        fields.content_length = length;
        fields.date = date;
        fields
    }

    #[tokio::test]
    async fn fields_that_came_as_bytes_are_written_as_they_came() {
        let fields = fields_of(
            b"Server: nginx\r\nDate: Sun\r\nContent-Length: 2, 2\r\n",
            Some(2),
            true,
        );
        let body = WithFields(Full::new(Bytes::from_static(b"ok")), Some(fields));
        let mut out = Vec::new();
        let keep = write(
            &mut out,
            Response::new(body),
            answering(Version::HTTP_11, true),
        )
        .await
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(keep);
        assert_eq!(
            text, "HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Sun\r\ncontent-length: 2\r\n\r\nok",
            "one plain length, no second date"
        );

        let fields = fields_of(b"Content-Length: 9\r\n", Some(9), false);
        let body = WithFields(Full::new(Bytes::new()), Some(fields));
        let mut response = Response::new(body);
        *response.status_mut() = StatusCode::NO_CONTENT;
        let mut out = Vec::new();
        write(&mut out, response, answering(Version::HTTP_11, false))
            .await
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 204 No Content\r\n"), "{text}");
        assert!(
            !text.to_lowercase().contains("content-length"),
            "a 204 says no length: {text}"
        );
        assert!(text.contains("date: "), "{text}");
        assert!(text.contains("connection: close\r\n"), "{text}");
    }

    fn message(text: &'static str) -> Response<Full<Bytes>> {
        Response::new(Full::new(Bytes::from_static(text.as_bytes())))
    }

    async fn written(response: Response<Full<Bytes>>, answering: Answering) -> (String, bool) {
        let mut out = Vec::new();
        let keep = write(&mut out, response, answering).await.unwrap();
        (String::from_utf8(out).unwrap(), keep)
    }

    fn answering(version: Version, keep_alive: bool) -> Answering {
        Answering::new(&Method::GET, version, keep_alive)
    }

    #[tokio::test]
    async fn a_message_gets_its_length_and_a_date() {
        let response = message("hi\n");
        let (text, keep) = written(response, answering(Version::HTTP_11, true)).await;
        assert!(keep);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("content-length: 3\r\n"), "{text}");
        assert!(text.contains("date: "), "{text}");
        assert!(!text.contains("connection"), "{text}");
        assert!(text.ends_with("\r\n\r\nhi\n"), "{text}");
    }

    #[tokio::test]
    async fn http_1_0_gets_1_0_and_keep_alive_is_said() {
        let response = message("x");
        let (text, keep) = written(response, answering(Version::HTTP_10, true)).await;
        assert!(keep);
        assert!(text.starts_with("HTTP/1.0 200 OK\r\n"), "{text}");
        assert!(text.contains("connection: keep-alive\r\n"), "{text}");
    }

    #[tokio::test]
    async fn a_closing_connection_says_close_and_head_has_no_body() {
        let response = message("x");
        let (text, keep) = written(response, answering(Version::HTTP_11, false)).await;
        assert!(!keep);
        assert!(text.contains("connection: close\r\n"), "{text}");

        let response = message("body");
        let head = Answering::new(&Method::HEAD, Version::HTTP_11, true);
        let (text, keep) = written(response, head).await;
        assert!(keep);
        assert!(text.ends_with("\r\n\r\n"), "{text}");
    }

    #[test]
    fn a_refusal_is_a_whole_closing_response() {
        let text = String::from_utf8(refusal(Refusal {
            status: StatusCode::BAD_REQUEST,
            reason: "malformed request head",
        }))
        .unwrap();
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
        assert!(text.contains("connection: close\r\n"), "{text}");
        assert!(
            text.ends_with("\r\n\r\n400 Bad Request: malformed request head\n"),
            "{text}"
        );
    }
}
