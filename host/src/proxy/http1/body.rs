//! A request body as an HTTP/1 client sends it: a Content-Length's worth of bytes, or chunks
//! (RFC 9112 §7.1), decoded as the attempt that forwards it reads. The body borrows the
//! connection's read side and hands it back at its last byte, so that the connection can read
//! the next request; a body dropped before its end keeps it, and the connection closes.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::oneshot;

use super::request::Framing;

/// What a connection reads with: the socket's read side and the bytes read but not used yet.
#[derive(Debug)]
pub(crate) struct Reader {
    /// The socket's read side.
    pub(super) io: OwnedReadHalf,
    /// Bytes read from it and not yet parsed or forwarded.
    pub(super) buffer: BytesMut,
}

/// How much a read asks for when a head or a chunk line is read.
pub(super) const READ_SIZE: usize = 8 << 10;
/// The most a read asks for at once while a large body streams through.
const BODY_READ_SIZE: usize = 64 << 10;
/// The longest chunk-size line, extensions included.
const MAX_CHUNK_LINE: usize = 4 << 10;
/// The largest trailer section; trailers are read and dropped.
const MAX_TRAILERS: usize = 16 << 10;

impl Reader {
    /// A reader with nothing buffered yet.
    pub(super) fn new(io: OwnedReadHalf) -> Self {
        Reader {
            io,
            buffer: BytesMut::new(),
        }
    }

    /// Reads what the socket has, up to `want` more bytes: `Ok(0)` when the client closed.
    pub(super) fn poll_fill(
        &mut self,
        cx: &mut Context<'_>,
        want: usize,
    ) -> Poll<io::Result<usize>> {
        if self.buffer.capacity() == self.buffer.len() {
            self.buffer.reserve(want);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.buffer)
    }

    /// Reads what the socket has, up to `want` more bytes: `Ok(0)` when the client closed.
    pub(super) async fn fill(&mut self, want: usize) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_fill(cx, want)).await
    }

    /// Reads what the socket has (up to `READ_SIZE`) through this thread's scratch area, so that
    /// the buffer grows only by what arrived: a request head costs an allocation of its own
    /// size, not a read buffer's. `Ok(0)` when the client closed.
    pub(super) async fn fill_exact(&mut self) -> io::Result<usize> {
        loop {
            self.io.readable().await?;
            let read = SCRATCH.with_borrow_mut(|scratch| {
                let read = self.io.try_read(scratch)?;
                self.buffer.extend_from_slice(&scratch[..read]);
                Ok::<_, io::Error>(read)
            });
            match read {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                read => return read,
            }
        }
    }
}

thread_local! {
    /// Where `Reader::fill_exact` reads before it copies what arrived.
    static SCRATCH: RefCell<[u8; READ_SIZE]> = const { RefCell::new([0; READ_SIZE]) };
}

/// Why a request body could not be read to its end.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    /// The client closed the connection before the body's end.
    #[error("the client closed the connection inside the request body")]
    Closed,
    /// The chunked framing was broken.
    #[error("malformed chunked body: {0}")]
    Malformed(&'static str),
    /// Reading from the socket failed.
    #[error("reading the request body failed: {0}")]
    Io(#[from] io::Error),
}

/// Where a body's decoding stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decoder {
    /// This many bytes of a Content-Length body are still to come.
    Length(u64),
    /// A chunk-size line is next.
    ChunkSize,
    /// This many bytes of the current chunk are still to come.
    ChunkData(u64),
    /// The CRLF after a chunk's data is next.
    ChunkEnd,
    /// The trailer section (after the last chunk) is next; this much of it was read.
    Trailers(usize),
    /// The body was read to its end.
    Done,
}

/// One step of decoding what is buffered.
enum Step {
    /// Body bytes to forward.
    Data(Bytes),
    /// Framing was consumed; decode on.
    Progress,
    /// More bytes must be read first.
    NeedMore,
    /// The framing is broken.
    Malformed(&'static str),
}

/// A request body read from an HTTP/1 connection.
#[derive(Debug)]
pub(crate) struct RequestBody {
    reader: Option<Reader>,
    decoder: Decoder,
    /// Takes the reader back to the connection at the body's end.
    give_back: Option<oneshot::Sender<Reader>>,
    /// Asks the connection to send `100 Continue`, the first time the body is read.
    wants_continue: Option<oneshot::Sender<()>>,
}

impl RequestBody {
    /// A body framed by `framing` (not `Empty`), read through `reader`, which goes back through
    /// `give_back` at the end; `wants_continue` is signalled at the first read, if given.
    pub(super) fn new(
        reader: Reader,
        framing: Framing,
        give_back: oneshot::Sender<Reader>,
        wants_continue: Option<oneshot::Sender<()>>,
    ) -> Self {
        let decoder = match framing {
            Framing::Empty => Decoder::Done,
            Framing::Length(length) => Decoder::Length(length),
            Framing::Chunked => Decoder::ChunkSize,
        };
        let mut body = RequestBody {
            reader: Some(reader),
            decoder,
            give_back: Some(give_back),
            wants_continue,
        };
        body.finish_if_done();
        body
    }

    /// The body of a request without one.
    pub(super) fn empty() -> Self {
        RequestBody {
            reader: None,
            decoder: Decoder::Done,
            give_back: None,
            wants_continue: None,
        }
    }

    /// Hands the reader back once the body was read to its end.
    fn finish_if_done(&mut self) {
        if self.decoder == Decoder::Done
            && let (Some(reader), Some(give_back)) = (self.reader.take(), self.give_back.take())
        {
            let _ = give_back.send(reader);
        }
    }

    /// Decodes framing that is already buffered, without taking data: so that the reader goes
    /// back as soon as the final chunk is in the buffer.
    fn consume_framing(&mut self) {
        while !matches!(self.decoder, Decoder::ChunkData(_) | Decoder::Done) {
            let Some(reader) = self.reader.as_mut() else {
                return;
            };
            if !matches!(step(&mut self.decoder, &mut reader.buffer), Step::Progress) {
                return;
            }
        }
        self.finish_if_done();
    }

    /// How much to ask the socket for next.
    fn want(&self) -> usize {
        match self.decoder {
            Decoder::Length(left) | Decoder::ChunkData(left) => usize::try_from(left)
                .unwrap_or(usize::MAX)
                .clamp(1, BODY_READ_SIZE),
            _ => READ_SIZE,
        }
    }
}

/// Takes one step of decoding from `buffer`.
fn step(decoder: &mut Decoder, buffer: &mut BytesMut) -> Step {
    match *decoder {
        Decoder::Done => Step::Progress,
        Decoder::Length(left) | Decoder::ChunkData(left) => {
            if buffer.is_empty() {
                return Step::NeedMore;
            }
            let take = usize::try_from(left).map_or(buffer.len(), |left| left.min(buffer.len()));
            let left = left - take as u64;
            *decoder = match (*decoder, left) {
                (Decoder::Length(_), 0) => Decoder::Done,
                (Decoder::Length(_), left) => Decoder::Length(left),
                (_, 0) => Decoder::ChunkEnd,
                (_, left) => Decoder::ChunkData(left),
            };
            Step::Data(buffer.split_to(take).freeze())
        }
        Decoder::ChunkEnd => match buffer.get(..2) {
            None if buffer.first().is_none_or(|&byte| byte == b'\r') => Step::NeedMore,
            Some(b"\r\n") => {
                buffer.advance(2);
                *decoder = Decoder::ChunkSize;
                Step::Progress
            }
            _ => Step::Malformed("no CRLF after a chunk's data"),
        },
        Decoder::ChunkSize => {
            let Some(line) = line(buffer, MAX_CHUNK_LINE) else {
                return Step::NeedMore;
            };
            let line = match line {
                Ok(line) => line,
                Err(reason) => return Step::Malformed(reason),
            };
            let size = match chunk_size(&buffer[..line]) {
                Ok(size) => size,
                Err(reason) => return Step::Malformed(reason),
            };
            buffer.advance(line + 2);
            *decoder = if size == 0 {
                Decoder::Trailers(0)
            } else {
                Decoder::ChunkData(size)
            };
            Step::Progress
        }
        Decoder::Trailers(seen) => {
            let Some(line) = line(buffer, MAX_TRAILERS.saturating_sub(seen)) else {
                return Step::NeedMore;
            };
            let line = match line {
                Ok(line) => line,
                Err(_) => return Step::Malformed("trailer section too large or malformed"),
            };
            if line > 0 && seen + line + 2 > MAX_TRAILERS {
                return Step::Malformed("trailer section too large or malformed");
            }
            buffer.advance(line + 2);
            *decoder = if line == 0 {
                Decoder::Done
            } else {
                Decoder::Trailers(seen + line + 2)
            };
            Step::Progress
        }
    }
}

/// The length of the CRLF-terminated line at the front of `buffer`, CRLF not counted: `None`
/// when it is not all there yet, an error when it is longer than `max` or has a bare CR or LF.
fn line(buffer: &[u8], max: usize) -> Option<Result<usize, &'static str>> {
    let window = &buffer[..buffer.len().min(max + 2)];
    match window
        .iter()
        .position(|&byte| byte == b'\n' || byte == b'\r')
    {
        Some(end) if end > max => Some(Err("chunk line too long")),
        Some(end) if window.get(end..end + 2) == Some(b"\r\n") => Some(Ok(end)),
        Some(end) if end + 1 == buffer.len() && window[end] == b'\r' => None,
        Some(_) => Some(Err("a bare CR or LF in a chunk line")),
        None if window.len() > max => Some(Err("chunk line too long")),
        None => None,
    }
}

/// A chunk-size line's size: hexadecimal digits (at most 15, so no overflow), then optional
/// extensions (`;name=value`), which are ignored.
fn chunk_size(line: &[u8]) -> Result<u64, &'static str> {
    let digits = line
        .iter()
        .take_while(|byte| byte.is_ascii_hexdigit())
        .count();
    if digits == 0 {
        return Err("no chunk size");
    }
    if digits > 15 {
        return Err("chunk size too large");
    }
    let rest = line[digits..].trim_ascii_start();
    if !rest.is_empty() && rest[0] != b';' {
        return Err("junk after a chunk size");
    }
    if rest
        .iter()
        .any(|&byte| byte < b' ' && byte != b'\t' || byte == 0x7f)
    {
        return Err("a control byte in a chunk extension");
    }
    let text = std::str::from_utf8(&line[..digits]).map_err(|_| "no chunk size")?;
    u64::from_str_radix(text, 16).map_err(|_| "no chunk size")
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if let Some(wants_continue) = this.wants_continue.take() {
            let _ = wants_continue.send(());
        }
        loop {
            let want = this.want();
            let Some(reader) = this.reader.as_mut() else {
                return Poll::Ready(None);
            };
            match step(&mut this.decoder, &mut reader.buffer) {
                Step::Data(data) => {
                    this.consume_framing();
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Step::Progress if this.decoder == Decoder::Done => {
                    this.finish_if_done();
                    return Poll::Ready(None);
                }
                Step::Progress => {}
                Step::NeedMore => match ready!(reader.poll_fill(cx, want)) {
                    Ok(0) => return self::fail(this, BodyError::Closed),
                    Ok(_) => {}
                    Err(err) => return self::fail(this, BodyError::Io(err)),
                },
                Step::Malformed(reason) => return self::fail(this, BodyError::Malformed(reason)),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.decoder == Decoder::Done
    }

    fn size_hint(&self) -> SizeHint {
        match self.decoder {
            Decoder::Length(left) => SizeHint::with_exact(left),
            Decoder::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

/// Ends a body that cannot go on: the reader is dropped, so the connection closes.
fn fail(body: &mut RequestBody, error: BodyError) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
    body.reader = None;
    body.decoder = Decoder::Done;
    Poll::Ready(Some(Err(error)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` (all buffered) as a chunked body: the data, and whether it ended.
    fn chunked(input: &[u8]) -> Result<(Vec<u8>, bool), &'static str> {
        let mut buffer = BytesMut::from(input);
        let mut decoder = Decoder::ChunkSize;
        let mut data = Vec::new();
        loop {
            match step(&mut decoder, &mut buffer) {
                Step::Data(bytes) => data.extend_from_slice(&bytes),
                Step::Progress if decoder == Decoder::Done => return Ok((data, true)),
                Step::Progress => {}
                Step::NeedMore => return Ok((data, false)),
                Step::Malformed(reason) => return Err(reason),
            }
        }
    }

    #[test]
    fn chunks_with_extensions_and_trailers_decode() {
        let input = b"5\r\nhello\r\n6;name=value\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n";
        assert_eq!(chunked(input), Ok((b"hello world".to_vec(), true)));
        assert_eq!(
            chunked(b"A\r\n0123456789\r\n0\r\n\r\n"),
            Ok((b"0123456789".to_vec(), true))
        );
    }

    #[test]
    fn a_partial_chunked_body_waits_for_more() {
        assert_eq!(chunked(b"5\r\nhel"), Ok((b"hel".to_vec(), false)));
        assert_eq!(chunked(b"5\r\nhello\r"), Ok((b"hello".to_vec(), false)));
        assert_eq!(
            chunked(b"5\r\nhello\r\n0\r\n"),
            Ok((b"hello".to_vec(), false))
        );
        assert_eq!(chunked(b"5"), Ok((Vec::new(), false)));
    }

    #[test]
    fn broken_chunked_framing_is_refused() {
        assert!(chunked(b"5\nhello\r\n0\r\n\r\n").is_err(), "a bare LF");
        assert!(
            chunked(b"5\r\nhelloXX0\r\n\r\n").is_err(),
            "no CRLF after the data"
        );
        assert!(chunked(b"-5\r\nhello\r\n").is_err(), "a sign");
        assert!(chunked(b"0x5\r\nhello\r\n").is_err(), "a prefix");
        assert!(chunked(b"\r\n").is_err(), "no size");
        assert!(chunked(b"1000000000000000\r\n").is_err(), "16 digits");
        assert!(
            chunked(b"5 junk\r\nhello\r\n").is_err(),
            "junk after the size"
        );
        assert!(
            chunked(b"5;a\rb\r\nhello\r\n").is_err(),
            "a bare CR in an extension"
        );
        let long = [b"5;".as_slice(), &[b'a'; MAX_CHUNK_LINE], b"\r\n"].concat();
        assert!(chunked(&long).is_err(), "an extension past the line limit");
        let trailers = [
            b"0\r\n".as_slice(),
            &b"x: 1\r\n".repeat(MAX_TRAILERS / 6 + 1),
            b"\r\n",
        ]
        .concat();
        assert!(chunked(&trailers).is_err(), "trailers past their limit");
    }

    #[test]
    fn a_length_body_stops_at_its_length() {
        let mut buffer = BytesMut::from(&b"helloGET / HTTP/1.1"[..]);
        let mut decoder = Decoder::Length(5);
        let Step::Data(data) = step(&mut decoder, &mut buffer) else {
            panic!("no data")
        };
        assert_eq!(&data[..], b"hello");
        assert_eq!(decoder, Decoder::Done);
        assert_eq!(
            &buffer[..],
            b"GET / HTTP/1.1",
            "the next request stays buffered"
        );
    }
}
