//! Decoding a message body's framing from what is buffered: a Content-Length's worth of bytes,
//! or chunks (RFC 9112 §7.1), strictly, so that no two readers could see two bodies in the same
//! bytes; and reading more into the buffer when decoding needs it (`poll_fill`, as much as the
//! decoder's state calls for, `want`). vane's HTTP/1 server decodes request bodies with it, and
//! its HTTP/1 client response bodies. Trailers are read (within a limit) and dropped, or taken
//! as fields (`take_trailers`).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use tokio::io::AsyncRead;

/// How much a read asks for when a head or a chunk line is read.
pub(in crate::proxy) const READ_SIZE: usize = 8 << 10;
/// The most a read asks for at once while a large body streams through.
pub(in crate::proxy) const BODY_READ_SIZE: usize = 64 << 10;
/// The least room a read is given: what is left of the last allocation may be a few bytes.
const MIN_READ: usize = 1 << 10;

/// Reads what `io` has into `buffer`, up to `want` more bytes: `Ok(0)` when the peer closed.
pub(in crate::proxy) fn poll_fill<R: AsyncRead + Unpin>(
    io: &mut R,
    buffer: &mut BytesMut,
    cx: &mut Context<'_>,
    want: usize,
) -> Poll<io::Result<usize>> {
    if buffer.capacity() - buffer.len() < want.min(MIN_READ) {
        buffer.reserve(want);
    }
    tokio_util::io::poll_read_buf(Pin::new(io), cx, buffer)
}

/// How much to ask the socket for next, in `decoder`'s state: the rest of the data, up to
/// `BODY_READ_SIZE`, or enough for framing lines.
pub(in crate::proxy) fn want(decoder: Decoder) -> usize {
    match decoder {
        Decoder::Length(left) | Decoder::ChunkData(left) => usize::try_from(left)
            .unwrap_or(usize::MAX)
            .clamp(1, BODY_READ_SIZE),
        _ => READ_SIZE,
    }
}

/// The longest chunk-size line, extensions included.
const MAX_CHUNK_LINE: usize = 4 << 10;
/// The largest trailer section; trailers are read and dropped.
const MAX_TRAILERS: usize = 16 << 10;

/// Where a body's decoding stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::proxy) enum Decoder {
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
    /// The body broke off (an error was returned); nothing more is read.
    Failed,
}

/// One step of decoding what is buffered.
pub(in crate::proxy) enum Step {
    /// Body bytes to forward.
    Data(Bytes),
    /// Framing was consumed; decode on.
    Progress,
    /// More bytes must be read first.
    NeedMore,
    /// The framing is broken.
    Malformed(&'static str),
}

/// Decodes framing that is already buffered, without taking data: so that the body is marked
/// finished as soon as the final chunk is in the buffer. With `keep_trailers`, it stops before
/// a trailer section, for [`take_trailers`]; else the trailers are read and dropped.
pub(in crate::proxy) fn consume_framing(
    decoder: &mut Decoder,
    buffer: &mut BytesMut,
    keep_trailers: bool,
) {
    loop {
        match *decoder {
            Decoder::ChunkEnd | Decoder::ChunkSize => {}
            Decoder::Trailers(_) if !keep_trailers => {}
            _ => return,
        }
        if !matches!(step(decoder, buffer), Step::Progress) {
            return;
        }
    }
}

/// The most fields a trailer section may carry.
const MAX_TRAILER_FIELDS: usize = 32;

/// Takes the trailer section at the front of `buffer` (the decoder at `Trailers(0)`, after the
/// last chunk) out of it, as fields; the body is then done. `None` when the section is not all
/// there yet; an error when it is malformed or larger than the limit.
pub(in crate::proxy) fn take_trailers(
    decoder: &mut Decoder,
    buffer: &mut BytesMut,
) -> Option<Result<HeaderMap, &'static str>> {
    const MALFORMED: &str = "trailer section too large or malformed";
    let mut fields = [httparse::EMPTY_HEADER; MAX_TRAILER_FIELDS];
    let (length, fields) = match httparse::parse_headers(buffer, &mut fields) {
        Ok(httparse::Status::Complete(parsed)) if parsed.0 <= MAX_TRAILERS => parsed,
        Ok(httparse::Status::Partial) if buffer.len() <= MAX_TRAILERS => return None,
        _ => return Some(Err(MALFORMED)),
    };
    let mut trailers = HeaderMap::with_capacity(fields.len());
    for field in fields {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(field.name.as_bytes()),
            HeaderValue::from_bytes(field.value),
        ) else {
            return Some(Err(MALFORMED));
        };
        trailers.append(name, value);
    }
    buffer.advance(length);
    *decoder = Decoder::Done;
    Some(Ok(trailers))
}

/// Takes one step of decoding from `buffer`.
pub(in crate::proxy) fn step(decoder: &mut Decoder, buffer: &mut BytesMut) -> Step {
    match *decoder {
        Decoder::Done | Decoder::Failed => Step::Progress,
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
    // Only spaces and tabs, and only before an extension's `;` (RFC 9112 §7.1.1).
    let rest = &line[digits..];
    let after_space = rest.trim_ascii_start();
    let spaces_only = rest[..rest.len() - after_space.len()]
        .iter()
        .all(|&byte| byte == b' ' || byte == b'\t');
    if !rest.is_empty() && (after_space.first() != Some(&b';') || !spaces_only) {
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

/// Decoding bytes fed in pieces, for the property tests and the fuzz target.
#[cfg(any(test, fuzzing))]
pub(super) mod checks {
    use bytes::BytesMut;

    use super::{Decoder, Step, step};

    /// What decoding `pieces`, fed one after the other, gives: the data, and whether the body
    /// ended (or why it broke).
    pub(crate) fn decode(pieces: &[&[u8]]) -> (Vec<u8>, Result<bool, &'static str>) {
        let mut buffer = BytesMut::new();
        let mut decoder = Decoder::ChunkSize;
        let mut data = Vec::new();
        for piece in pieces {
            buffer.extend_from_slice(piece);
            loop {
                match step(&mut decoder, &mut buffer) {
                    Step::Data(bytes) => data.extend_from_slice(&bytes),
                    Step::Progress if decoder == Decoder::Done => return (data, Ok(true)),
                    Step::Progress => {}
                    Step::NeedMore => break,
                    Step::Malformed(reason) => return (data, Err(reason)),
                }
            }
        }
        (data, Ok(false))
    }

    /// Splits `bytes` at the given fractions of its length.
    pub(crate) fn split<'a>(bytes: &'a [u8], cuts: &[f64]) -> Vec<&'a [u8]> {
        let mut at: Vec<usize> = cuts
            .iter()
            .map(|cut| (cut * bytes.len() as f64) as usize)
            .collect();
        at.sort_unstable();
        let mut pieces = Vec::new();
        let mut start = 0;
        for end in at {
            pieces.push(&bytes[start..end]);
            start = end;
        }
        pieces.push(&bytes[start..]);
        pieces
    }

    /// The fuzz target: the bytes after the first decode the same whole or cut into pieces
    /// where the first byte says, and nothing panics.
    #[cfg(fuzzing)]
    pub(crate) fn fuzz(data: &[u8]) {
        let Some((&cut, bytes)) = data.split_first() else {
            return;
        };
        let cuts = [
            f64::from(cut) / 255.0,
            f64::from(cut.rotate_left(4)) / 255.0,
        ];
        assert_eq!(decode(&split(bytes, &cuts)), decode(&[bytes]));
    }
}

/// Properties of the chunked decoder over generated input: any encoding of any data decodes to
/// that data however the bytes arrive, and any bytes at all decode the same fed whole or in
/// pieces, without a panic.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::checks::{decode, split};

    fn chunk() -> impl Strategy<Value = (Vec<u8>, Option<String>)> {
        (
            proptest::collection::vec(any::<u8>(), 1..300),
            proptest::option::of("[a-z]{1,8}(=[a-z0-9]{0,8})?"),
        )
    }

    proptest! {
        #[test]
        fn any_encoding_decodes_to_its_data_however_it_arrives(
            chunks in proptest::collection::vec(chunk(), 0..8),
            trailers in proptest::collection::vec("x-[a-z]{1,6}: [a-z0-9]{0,10}", 0..3),
            uppercase in any::<bool>(),
            cuts in proptest::collection::vec(0.0..1.0f64, 0..6),
        ) {
            let mut encoded = Vec::new();
            let mut expected = Vec::new();
            for (data, extension) in &chunks {
                let size = if uppercase { format!("{:X}", data.len()) } else { format!("{:x}", data.len()) };
                encoded.extend_from_slice(size.as_bytes());
                if let Some(extension) = extension {
                    encoded.extend_from_slice(format!(";{extension}").as_bytes());
                }
                encoded.extend_from_slice(b"\r\n");
                encoded.extend_from_slice(data);
                encoded.extend_from_slice(b"\r\n");
                expected.extend_from_slice(data);
            }
            encoded.extend_from_slice(b"0\r\n");
            for trailer in &trailers {
                encoded.extend_from_slice(trailer.as_bytes());
                encoded.extend_from_slice(b"\r\n");
            }
            encoded.extend_from_slice(b"\r\n");
            prop_assert_eq!(decode(&split(&encoded, &cuts)), (expected, Ok(true)));
        }

        #[test]
        fn any_bytes_decode_the_same_whole_or_in_pieces(
            bytes in proptest::collection::vec(
                prop_oneof![any::<u8>(), Just(b'\r'), Just(b'\n'), Just(b'0'), Just(b';')],
                0..200,
            ),
            cuts in proptest::collection::vec(0.0..1.0f64, 1..6),
        ) {
            prop_assert_eq!(decode(&split(&bytes, &cuts)), decode(&[&bytes]));
        }
    }
}
