//! A backend's response head, parsed (httparse) from the bytes read so far: the status line, the
//! fields, how the body is framed (RFC 9112 §6.3) and whether the connection may carry another
//! request. Anything vane could read two ways is refused, and the client gets a 502. The fields
//! stay the bytes they came in (`Fields`, without the hop-by-hop ones): no header map is built
//! unless an HTTP/2 client needs one, or for a `101`, which the proxy looks into.

use std::mem::MaybeUninit;

use bytes::BytesMut;
use http::header::{HeaderMap, HeaderName};
use http::{StatusCode, Version};

use crate::proxy::head;
use crate::proxy::http1::{Fields, parse_length};

/// The most header fields a response may carry (hyper's client allowed 100).
const MAX_HEADERS: usize = 128;

/// The largest response head (hyper's client allowed about 400 KiB, Envoy 60 KiB, nginx 4–8 KiB
/// by default).
pub(super) const MAX_HEAD_SIZE: usize = 64 << 10;

/// How a response's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body: the request was HEAD, or the status is 1xx, 204 or 304.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunks, ended by a zero-size chunk.
    Chunked,
    /// Everything until the backend closes the connection.
    UntilClose,
}

/// A whole response head and what it says about the body and the connection.
#[derive(Debug)]
pub(super) struct Head {
    /// The status.
    pub(super) status: StatusCode,
    /// HTTP/1.0 or HTTP/1.1.
    pub(super) version: Version,
    /// The fields of a `101` (every one, as the backend sent it); empty otherwise.
    pub(super) headers: HeaderMap,
    /// The fields of any other answer, without the hop-by-hop ones, as they came.
    pub(super) fields: Option<Fields>,
    /// How the body is delimited.
    pub(super) framing: Framing,
    /// Whether the connection may carry another request once this response has been read.
    pub(super) keep_alive: bool,
}

impl Head {
    /// The head with its fields in its header map, to look at in tests.
    #[cfg(any(test, fuzzing))]
    pub(super) fn mapped(mut self) -> Self {
        if let Some(fields) = self.fields.take() {
            fields.add_to(&mut self.headers);
        }
        self
    }
}

/// Why a response head is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(super) struct Malformed(pub(super) &'static str);

/// What the framing and connection fields of a head say, noted while its fields are read.
#[derive(Debug, Default)]
struct Noted {
    /// A Content-Length: the length, or why it cannot be read.
    content_length: Option<Result<u64, Malformed>>,
    /// A Transfer-Encoding: whether the last coding named is `chunked`.
    transfer_encoding: Option<bool>,
    /// A `Connection` field: whether it says `close`, and whether `keep-alive`.
    connection: Option<(bool, bool)>,
    /// The fields `Connection` names, removed with it.
    named: Vec<HeaderName>,
    /// A `Date` field.
    date: bool,
}

impl Noted {
    /// Notes the field `name: value`.
    fn note(&mut self, name: &[u8], value: &[u8]) {
        // By length first: most fields are none of these, and are ruled out at once.
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"date") => self.date = true,
            10 if name.eq_ignore_ascii_case(b"connection") => self.note_connection(value),
            14 if name.eq_ignore_ascii_case(b"content-length") => self.note_length(value),
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                let last = value
                    .split(|&byte| byte == b',')
                    .map(<[u8]>::trim_ascii)
                    .rfind(|coding| !coding.is_empty());
                let chunked_last = self.transfer_encoding.unwrap_or(false);
                self.transfer_encoding = Some(last.map_or(chunked_last, |coding| {
                    coding.eq_ignore_ascii_case(b"chunked")
                }));
            }
            _ => {}
        }
    }

    fn note_length(&mut self, value: &[u8]) {
        // A list of identical values is one value (RFC 9110 §8.6).
        for item in value.split(|&byte| byte == b',') {
            let parsed =
                parse_length(item.trim_ascii()).ok_or(Malformed("malformed Content-Length"));
            self.content_length = match (self.content_length, parsed) {
                (Some(Err(earlier)), _) => Some(Err(earlier)),
                (Some(Ok(earlier)), Ok(parsed)) if earlier != parsed => {
                    Some(Err(Malformed("Content-Lengths that disagree")))
                }
                (_, parsed) => Some(parsed),
            };
        }
    }

    fn note_connection(&mut self, value: &[u8]) {
        let (mut close, mut keep) = self.connection.unwrap_or_default();
        let mut others = false;
        for token in value.split(|&byte| byte == b',') {
            let token = token.trim_ascii();
            let is_close = token.eq_ignore_ascii_case(b"close");
            let is_keep = token.eq_ignore_ascii_case(b"keep-alive");
            close |= is_close;
            keep |= is_keep;
            others |= !(is_close || is_keep);
        }
        self.connection = Some((close, keep));
        if others {
            self.named.extend(head::named_in_connection(value));
        }
    }

    /// Whether the field `name` is forwarded: not hop-by-hop (RFC 9110 §7.6.1), and not a
    /// Content-Length that a Transfer-Encoding overrides.
    fn forwarded(&self, name: &[u8]) -> bool {
        !(head::is_hop_by_hop_name(name)
            || !self.named.is_empty()
                && self
                    .named
                    .iter()
                    .any(|named| named.as_str().as_bytes().eq_ignore_ascii_case(name))
            || self.transfer_encoding.is_some() && name.eq_ignore_ascii_case(b"content-length"))
    }
}

/// Parses the response head at the front of `buffer`, taking it out of the buffer when whole:
/// `Ok(None)` when it is not whole yet (read more). `head_request` says whether the request was
/// HEAD, whose answer has no body whatever its fields say. The fields stay as they came
/// (`Fields`), without the hop-by-hop ones; a `101` answer, which the proxy joins to the client
/// as it is, keeps every field, in a header map.
pub(super) fn parse(buffer: &mut BytesMut, head_request: bool) -> Result<Option<Head>, Malformed> {
    let mut fields = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        buffer,
        &mut fields,
    );
    let length = match parsed {
        Ok(httparse::Status::Complete(length)) if length <= MAX_HEAD_SIZE => length,
        Ok(httparse::Status::Partial) if buffer.len() < MAX_HEAD_SIZE => return Ok(None),
        Ok(_) => return Err(Malformed("the response head is too large")),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Malformed("the response has too many header fields"));
        }
        Err(_) => return Err(Malformed("malformed response head")),
    };
    let status = response
        .code
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or(Malformed("malformed status code"))?;
    let version = match response.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    // Fields are kept as offsets, to be cut from the head once it is split off the buffer.
    let base = buffer.as_ptr() as usize;
    let offsets = |part: &[u8]| {
        let start = part.as_ptr() as usize - base;
        (start, start + part.len())
    };
    let switching = status == StatusCode::SWITCHING_PROTOCOLS;
    let mut noted = Noted::default();
    let mut fields = Fields::new(response.headers.len());
    for field in response.headers.iter() {
        let name = field.name.as_bytes();
        noted.note(name, field.value);
        if switching || !head::is_hop_by_hop_name(name) {
            fields.keep(offsets(name), offsets(field.value));
        }
    }
    let mut fields = fields.of_head(buffer.split_to(length).freeze());
    // Rarely, more is left out: what `Connection` names, or a Content-Length with a
    // Transfer-Encoding.
    let more_to_leave = !noted.named.is_empty()
        || noted.transfer_encoding.is_some() && noted.content_length.is_some();
    if more_to_leave && !switching {
        fields.retain(|name| noted.forwarded(name));
    }
    let (headers, fields) = if switching {
        let mut headers = HeaderMap::new();
        fields.add_to(&mut headers);
        (headers, None)
    } else {
        (HeaderMap::new(), Some(fields))
    };
    let framing = framing(status, version, &noted, head_request)?;
    let keep_alive = framing != Framing::UntilClose
        && !(noted.transfer_encoding.is_some() && noted.content_length.is_some())
        && !switching
        && match (version, noted.connection) {
            (Version::HTTP_10, Some((close, keep))) => keep && !close,
            (Version::HTTP_10, None) => false,
            (_, connection) => !connection.is_some_and(|(close, _)| close),
        };
    // A field `Connection` names is gone from the fields (even one as odd as Content-Length or
    // Date): the writer then writes vane's own.
    let named = |name: &str| noted.named.iter().any(|named| named == name);
    let fields = fields.map(|mut fields| {
        fields.content_length = match (noted.transfer_encoding, noted.content_length) {
            (None, Some(Ok(length))) if !named("content-length") => Some(length),
            _ => None,
        };
        fields.date = noted.date && !named("date");
        fields
    });
    Ok(Some(Head {
        status,
        version,
        headers,
        fields,
        framing,
        keep_alive,
    }))
}

/// How the body is delimited (RFC 9112 §6.3). With both Transfer-Encoding and Content-Length,
/// Transfer-Encoding wins (the connection is not used again); Content-Lengths that disagree or
/// are not plain digits, and Transfer-Encoding in an HTTP/1.0 response, are refused.
fn framing(
    status: StatusCode,
    version: Version,
    noted: &Noted,
    head_request: bool,
) -> Result<Framing, Malformed> {
    if head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Framing::Empty);
    }
    match (noted.transfer_encoding, noted.content_length) {
        (Some(_), _) if version == Version::HTTP_10 => {
            Err(Malformed("Transfer-Encoding in an HTTP/1.0 response"))
        }
        (Some(true), _) => Ok(Framing::Chunked),
        (Some(false), _) | (None, None) => Ok(Framing::UntilClose),
        (None, Some(length)) => length.map(Framing::Length),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(bytes: &[u8], head_request: bool) -> Result<Option<Head>, Malformed> {
        parse(&mut BytesMut::from(bytes), head_request).map(|head| head.map(Head::mapped))
    }

    fn head(bytes: &[u8]) -> Head {
        parsed(bytes, false)
            .expect("a valid head")
            .expect("a whole head")
    }

    #[test]
    fn a_length_response_is_kept_alive_and_leaves_its_body_buffered() {
        let mut buffer =
            BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello"[..]);
        let head = parse(&mut buffer, false).unwrap().unwrap().mapped();
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(head.framing, Framing::Length(5));
        assert!(head.keep_alive);
        assert_eq!(head.headers["x-a"], "b");
        assert_eq!(&buffer[..], b"hello");
    }

    #[test]
    fn a_partial_head_waits_for_more() {
        assert!(
            parsed(b"HTTP/1.1 200 OK\r\nContent-Len", false)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn bodies_are_framed_as_rfc_9112_says() {
        let chunked = head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert_eq!(chunked.framing, Framing::Chunked);
        assert!(chunked.keep_alive);
        let both =
            head(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(both.framing, Framing::Chunked);
        assert!(
            !both.keep_alive,
            "a connection that sent both is not used again"
        );
        assert!(!both.headers.contains_key("content-length"));
        let gzip_only = head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
        assert_eq!(gzip_only.framing, Framing::UntilClose);
        assert!(!gzip_only.keep_alive);
        let nothing = head(b"HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(nothing.framing, Framing::UntilClose);
        assert!(!nothing.keep_alive);
        for status in [b"204".as_slice(), b"304", b"100", b"101"] {
            let bytes = [b"HTTP/1.1 ", status, b" X\r\nContent-Length: 9\r\n\r\n"].concat();
            assert_eq!(head(&bytes).framing, Framing::Empty);
        }
        let answer_to_head = parsed(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true);
        assert_eq!(answer_to_head.unwrap().unwrap().framing, Framing::Empty);
        let listed = head(b"HTTP/1.1 200 OK\r\nContent-Length: 4, 4\r\n\r\n");
        assert_eq!(listed.framing, Framing::Length(4));
    }

    #[test]
    fn the_connection_is_kept_as_the_backend_says() {
        assert!(
            !head(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").keep_alive
        );
        assert!(!head(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").keep_alive);
        assert!(
            head(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n")
                .keep_alive
        );
        assert!(
            !head(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n").keep_alive
        );
    }

    #[test]
    fn hop_by_hop_fields_stay_behind_but_in_a_switch() {
        let head = head(
            b"HTTP/1.1 200 OK\r\nX-Secret: 1\r\nConnection: keep-alive, X-Secret\r\n\
              Keep-Alive: timeout=5\r\nContent-Length: 2\r\nX-Kept: 1\r\nUpgrade: h2c\r\n\r\n",
        );
        let names: Vec<&str> = head.headers.keys().map(|name| name.as_str()).collect();
        assert_eq!(names, ["x-kept", "content-length"]);
        let switch = self::head(
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
        );
        assert_eq!(switch.headers["upgrade"], "websocket");
        assert_eq!(switch.headers["connection"], "upgrade");
    }

    #[test]
    fn a_length_connection_names_is_no_length_of_theirs() {
        let mut buffer = BytesMut::from(
            &b"HTTP/1.1 200 OK\r\nConnection: content-length, date\r\nContent-Length: 5\r\nDate: x\r\n\r\n"[..],
        );
        let head = parse(&mut buffer, false).unwrap().unwrap();
        assert_eq!(
            head.framing,
            Framing::Length(5),
            "the body is still read by it"
        );
        let fields = head.fields.expect("fields");
        assert_eq!(fields.content_length, None, "the writer frames it itself");
        assert!(!fields.date, "the writer dates it itself");
    }

    #[test]
    fn ambiguous_heads_are_refused() {
        for bytes in [
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n".as_slice(),
            b"HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 3 4\r\n\r\n",
            b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX-A: b\r\n folded\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX A: b\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/2 200 OK\r\n\r\n",
            b"garbage\r\n\r\n",
        ] {
            assert!(
                parsed(bytes, false).is_err(),
                "{:?} was accepted",
                String::from_utf8_lossy(bytes)
            );
        }
        let huge = [
            b"HTTP/1.1 200 OK\r\nX-A: ".as_slice(),
            &[b'a'; MAX_HEAD_SIZE],
        ]
        .concat();
        assert!(parsed(&huge, false).is_err(), "a head past the limit");
    }
}

/// Parsing heads fed in pieces, for the property tests and the fuzz target.
#[cfg(any(test, fuzzing))]
pub(crate) mod checks {
    use bytes::BytesMut;

    use super::{Head, Malformed, parse};

    /// What parsing `first` and then `first` + `rest` gives, compared as text: the first piece
    /// alone must ask for more unless it already decides.
    pub(crate) fn outcome(first: &[u8], rest: &[u8], head_request: bool) -> String {
        let mut buffer = BytesMut::from(first);
        let parsed = match parse(&mut buffer, head_request) {
            Ok(None) => {
                buffer.extend_from_slice(rest);
                parse(&mut buffer, head_request)
            }
            decided => {
                buffer.extend_from_slice(rest);
                decided
            }
        };
        describe(parsed.map(|head| head.map(Head::mapped)), &buffer)
    }

    fn describe(parsed: Result<Option<Head>, Malformed>, left: &[u8]) -> String {
        match parsed {
            Ok(Some(head)) => format!(
                "{} {:?} {:?} {:?} {} left {}",
                head.status,
                head.version,
                head.headers,
                head.framing,
                head.keep_alive,
                left.len()
            ),
            Ok(None) => "more".to_owned(),
            Err(malformed) => format!("refused: {malformed}"),
        }
    }

    /// The fuzz target: a head reads the same whole and cut in two where the first byte says,
    /// and nothing panics.
    #[cfg(fuzzing)]
    pub(crate) fn fuzz(data: &[u8]) {
        let Some((&cut, bytes)) = data.split_first() else {
            return;
        };
        let at = usize::from(cut) * bytes.len() / 255;
        let head_request = cut % 2 == 1;
        assert_eq!(
            outcome(&bytes[..at], &bytes[at..], head_request),
            outcome(bytes, &[], head_request)
        );
    }
}

/// Properties of the response head parser over generated heads: whatever a backend sends, the
/// head reads the same however it arrives.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::checks::outcome;

    fn field() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("Content-Length: 5".to_owned()),
            Just("Content-Length: 5, 5".to_owned()),
            Just("Content-Length: 7".to_owned()),
            Just("Transfer-Encoding: chunked".to_owned()),
            Just("Transfer-Encoding: gzip".to_owned()),
            Just("Connection: close".to_owned()),
            Just("Connection: keep-alive, x-a".to_owned()),
            "x-[a-z]{1,3}: [ -~]{0,8}",
            "[ -~]{0,12}",
        ]
    }

    proptest! {
        #[test]
        fn a_head_reads_the_same_whole_or_in_two_pieces(
            version in prop_oneof![Just("HTTP/1.1"), Just("HTTP/1.0"), Just("HTTP/2")],
            status in prop_oneof![Just(200u16), Just(204), Just(304), Just(101), Just(100), 0..1000u16],
            fields in proptest::collection::vec(field(), 0..6),
            body in "[a-z]{0,8}",
            cut in 0.0..1.0f64,
            head_request in any::<bool>(),
        ) {
            let bytes = format!("{version} {status} X\r\n{}\r\n{body}", fields.iter().map(|f| format!("{f}\r\n")).collect::<String>());
            let bytes = bytes.as_bytes();
            let at = (cut * bytes.len() as f64) as usize;
            prop_assert_eq!(
                outcome(&bytes[..at], &bytes[at..], head_request),
                outcome(bytes, &[], head_request)
            );
        }
    }
}
