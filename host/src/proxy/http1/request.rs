//! A client's request head, parsed (httparse) from the bytes read so far: the request line, the
//! headers, how its body is framed (RFC 9112 §6) and whether the connection may carry another
//! request. Anything ambiguous is refused with the status the client gets, before a byte of it
//! reaches a backend.

use std::mem::MaybeUninit;

use bytes::BytesMut;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode, Uri, Version};

use crate::state::ClientFault;

/// The most header fields one request may carry (hyper's limit was 100; nginx has none but
/// its buffer size).
const MAX_HEADERS: usize = 128;

/// How a request's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body (no Content-Length and no Transfer-Encoding).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A complete request head and what it says about the connection.
#[derive(Debug)]
pub(super) struct Head {
    /// The request, without its body yet.
    pub(super) request: Request<()>,
    /// How its body is delimited.
    pub(super) framing: Framing,
    /// Whether the client lets the connection carry another request after this one.
    pub(super) keep_alive: bool,
    /// Whether the client waits for `100 Continue` before it sends the body.
    pub(super) expect_continue: bool,
}

/// A request vane refuses: the status and a short reason for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Refusal {
    /// The status the client gets.
    pub(super) status: StatusCode,
    /// Why, in a few words.
    pub(super) reason: &'static str,
}

const fn refuse(status: StatusCode, reason: &'static str) -> Refusal {
    Refusal { status, reason }
}

impl Refusal {
    /// How the refusal is counted.
    pub(super) fn fault(self) -> ClientFault {
        match self.status {
            StatusCode::REQUEST_TIMEOUT => ClientFault::HeaderTimeout,
            StatusCode::URI_TOO_LONG | StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
                ClientFault::HeadTooLarge
            }
            StatusCode::NOT_IMPLEMENTED | StatusCode::HTTP_VERSION_NOT_SUPPORTED => {
                ClientFault::Unsupported
            }
            _ => ClientFault::Malformed,
        }
    }
}

/// A request head not whole within the header read timeout.
pub(super) const TIMED_OUT: Refusal = refuse(
    StatusCode::REQUEST_TIMEOUT,
    "the request head took too long",
);

const BAD_REQUEST: StatusCode = StatusCode::BAD_REQUEST;

/// Header fields vane may add to a request's map (`Host` from an absolute-form target, an
/// upgrade's `Connection` and `Upgrade`, gRPC's `TE`): room is made for them up front.
const ADDED_FIELDS: usize = 2;

/// The framing and connection fields a head carries, noted while its fields are read so that
/// the common head (none but perhaps `Connection`) needs no lookup afterwards.
#[derive(Debug, Default, Clone, Copy)]
struct Noted {
    content_length: bool,
    transfer_encoding: bool,
    connection: bool,
    expect: bool,
    hosts: u8,
}

impl Noted {
    fn note(&mut self, name: &HeaderName) {
        if name == header::CONTENT_LENGTH {
            self.content_length = true;
        } else if name == header::TRANSFER_ENCODING {
            self.transfer_encoding = true;
        } else if name == header::CONNECTION {
            self.connection = true;
        } else if name == header::EXPECT {
            self.expect = true;
        } else if name == header::HOST {
            self.hosts = self.hosts.saturating_add(1);
        }
    }
}

/// Parses the request head at the front of `buffer`, taking it out of the buffer when whole:
/// `Ok(None)` when the head is not whole yet (read more), an error when vane refuses it.
/// `max_size` bounds the head: a partial head that large is refused.
pub(super) fn parse(buffer: &mut BytesMut, max_size: usize) -> Result<Option<Head>, Refusal> {
    let mut fields = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut []);
    let length = match request.parse_with_uninit_headers(buffer, &mut fields) {
        Ok(httparse::Status::Complete(length)) if length <= max_size => length,
        Ok(httparse::Status::Complete(_)) => return Err(too_large(buffer)),
        Ok(httparse::Status::Partial) if buffer.len() >= max_size => {
            return Err(too_large(buffer));
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(refuse(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "too many header fields",
            ));
        }
        Err(httparse::Error::Version) => return Err(version_refusal(buffer)),
        Err(_) => return Err(refuse(BAD_REQUEST, "malformed request head")),
    };
    let Ok(method) = Method::from_bytes(request.method.unwrap_or_default().as_bytes()) else {
        return Err(refuse(BAD_REQUEST, "malformed method"));
    };
    let version = match request.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    // Names are made now; values are kept as offsets, to be cut from the head once it is
    // split off the buffer and shared.
    let base = buffer.as_ptr() as usize;
    let span = |part: &[u8]| (part.as_ptr() as usize - base, part.len());
    let target = span(request.path.unwrap_or_default().as_bytes());
    let mut noted = Noted::default();
    let mut fields = Vec::with_capacity(request.headers.len());
    for field in request.headers.iter() {
        let Ok(name) = HeaderName::from_bytes(field.name.as_bytes()) else {
            return Err(refuse(BAD_REQUEST, "malformed header name"));
        };
        noted.note(&name);
        fields.push((name, span(field.value)));
    }
    let head = buffer.split_to(length).freeze();
    let slice = |(start, len): (usize, usize)| head.slice(start..start + len);
    let Ok(uri) = Uri::from_maybe_shared(slice(target)) else {
        return Err(refuse(BAD_REQUEST, "malformed request target"));
    };
    let mut headers = HeaderMap::with_capacity(fields.len() + ADDED_FIELDS);
    for (name, value) in fields {
        match HeaderValue::from_maybe_shared(slice(value)) {
            Ok(value) => headers.append(name, value),
            Err(_) => return Err(refuse(BAD_REQUEST, "malformed header value")),
        };
    }
    head_from(method, uri, version, headers, noted).map(Some)
}

/// 505 for a request line naming another HTTP version (`HTTP/2`, `HTTP/1.2`); 400 for one
/// httparse could not read a version from (a target with a space in it, `HTTP/1O`). httparse
/// stops at the first byte that cannot be 1.0 or 1.1, and a head read in pieces may end there,
/// so only the version's first eight bytes decide, and only those that must have arrived.
fn version_refusal(buffer: &[u8]) -> Refusal {
    let line = buffer
        .split(|&byte| byte == b'\n')
        .next()
        .unwrap_or_default();
    let version = line
        .splitn(3, |&byte| byte == b' ')
        .nth(2)
        .unwrap_or_default();
    let other = match version {
        [b'H', b'T', b'T', b'P', b'/', major, ..] if major.is_ascii_digit() && *major != b'1' => {
            true
        }
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', minor, ..] => {
            minor.is_ascii_digit() && *minor != b'0' && *minor != b'1'
        }
        _ => false,
    };
    if other {
        refuse(
            StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            "only HTTP/1.0 and HTTP/1.1 are served here",
        )
    } else {
        refuse(BAD_REQUEST, "malformed request line")
    }
}

/// 414 when the request line alone fills the limit, 431 otherwise.
fn too_large(buffer: &[u8]) -> Refusal {
    if buffer.contains(&b'\n') {
        refuse(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "the request head is too large",
        )
    } else {
        refuse(StatusCode::URI_TOO_LONG, "the request line is too long")
    }
}

fn head_from(
    method: Method,
    uri: Uri,
    version: Version,
    mut headers: HeaderMap,
    noted: Noted,
) -> Result<Head, Refusal> {
    let framing = framing(version, &headers, noted)?;
    let keep_alive = if noted.connection {
        keep_alive(version, &headers)
    } else {
        version == Version::HTTP_11
    };
    check_host(version, &headers, noted)?;
    // vane answers `100-continue` itself, when the body is first read; the backends get the
    // body without being asked.
    let continue_asked = noted.expect
        && headers
            .get(header::EXPECT)
            .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if continue_asked {
        headers.remove(header::EXPECT);
    }
    let expect_continue =
        continue_asked && version == Version::HTTP_11 && framing != Framing::Empty;
    if noted.content_length {
        canonical_length(&mut headers, framing);
    }
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = headers;
    Ok(Head {
        request,
        framing,
        keep_alive,
        expect_continue,
    })
}

/// Refuses a request without exactly one valid Host where HTTP/1.1 needs one (RFC 9112 §3.2):
/// none from an HTTP/1.1 client, two, or a value that is not a host and optional port.
fn check_host(version: Version, headers: &HeaderMap, noted: Noted) -> Result<(), Refusal> {
    let valid = match noted.hosts {
        0 => version == Version::HTTP_10,
        1 => headers
            .get(header::HOST)
            .is_some_and(|host| is_valid_host(host.as_bytes())),
        _ => false,
    };
    if valid {
        Ok(())
    } else {
        Err(refuse(
            BAD_REQUEST,
            "the request needs exactly one valid Host",
        ))
    }
}

/// Whether `value` can be a Host field: a registered name, an IPv4 address or a bracketed IPv6
/// literal, with an optional port (RFC 3986 §3.2.2); no userinfo, path or whitespace.
pub(in crate::proxy) fn is_valid_host(value: &[u8]) -> bool {
    // A `match` compiles to a table test; `b"...".contains` was a memchr call per byte.
    let allowed = |byte: u8| {
        byte.is_ascii_alphanumeric()
            || matches!(
                byte,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'['
                    | b']'
                    | b'%'
            )
    };
    !value.is_empty() && value.iter().all(|&byte| allowed(byte))
}

/// How the body is delimited (RFC 9112 §6.1–6.3), refusing every ambiguous case: both
/// Content-Length and Transfer-Encoding, Content-Lengths that disagree or are not plain digits,
/// Transfer-Encoding from an HTTP/1.0 client, and codings other than one final `chunked`.
fn framing(version: Version, headers: &HeaderMap, noted: Noted) -> Result<Framing, Refusal> {
    let has_length = noted.content_length;
    if noted.transfer_encoding {
        if has_length {
            return Err(refuse(
                BAD_REQUEST,
                "both Content-Length and Transfer-Encoding",
            ));
        }
        if version == Version::HTTP_10 {
            return Err(refuse(
                BAD_REQUEST,
                "Transfer-Encoding in an HTTP/1.0 request",
            ));
        }
        return transfer_coding(headers);
    }
    if !has_length {
        return Ok(Framing::Empty);
    }
    let mut length = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        // A list of identical values is one value (RFC 9110 §8.6); anything else is refused.
        for item in value.as_bytes().split(|&byte| byte == b',') {
            let item = item.trim_ascii();
            let parsed =
                parse_length(item).ok_or(refuse(BAD_REQUEST, "malformed Content-Length"))?;
            if length.is_some_and(|earlier| earlier != parsed) {
                return Err(refuse(BAD_REQUEST, "Content-Lengths that disagree"));
            }
            length = Some(parsed);
        }
    }
    Ok(match length {
        Some(0) | None => Framing::Empty,
        Some(length) => Framing::Length(length),
    })
}

/// Replaces the Content-Length the client sent (perhaps `5, 5`, two fields, or `005`) with one
/// plain value, so that every backend reads the same length vane read.
fn canonical_length(headers: &mut HeaderMap, framing: Framing) {
    let length = match framing {
        Framing::Length(length) => length,
        _ => 0,
    };
    let canonical = HeaderValue::from(length);
    let mut values = headers.get_all(header::CONTENT_LENGTH).iter();
    let plain = values.next() == Some(&canonical) && values.next().is_none();
    if !plain {
        headers.insert(header::CONTENT_LENGTH, canonical);
    }
}

/// A Content-Length: decimal digits only, at most 18 of them (no sign, no space, no overflow).
pub(in crate::proxy) fn parse_length(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0, |value, digit| value * 10 + u64::from(digit - b'0')),
    )
}

/// Only `chunked`, once and last, is understood: a request with any other coding is refused
/// (501: vane would have to forward a body it cannot delimit).
fn transfer_coding(headers: &HeaderMap) -> Result<Framing, Refusal> {
    let mut codings = Vec::new();
    for value in headers.get_all(header::TRANSFER_ENCODING) {
        let text = value
            .to_str()
            .map_err(|_| refuse(BAD_REQUEST, "malformed Transfer-Encoding"))?;
        codings.extend(
            text.split(',')
                .map(str::trim)
                .filter(|coding| !coding.is_empty()),
        );
    }
    match codings.as_slice() {
        [coding] if coding.eq_ignore_ascii_case("chunked") => Ok(Framing::Chunked),
        [earlier @ .., last]
            if last.eq_ignore_ascii_case("chunked")
                && !earlier
                    .iter()
                    .any(|coding| coding.eq_ignore_ascii_case("chunked")) =>
        {
            Err(refuse(
                StatusCode::NOT_IMPLEMENTED,
                "only the chunked transfer coding is supported",
            ))
        }
        _ => Err(refuse(
            BAD_REQUEST,
            "Transfer-Encoding must be chunked, once and last",
        )),
    }
}

/// HTTP/1.1 keeps the connection unless the client says `close`; HTTP/1.0 closes it unless the
/// client says `keep-alive` (RFC 9112 §9.3).
fn keep_alive(version: Version, headers: &HeaderMap) -> bool {
    let mut close = false;
    let mut keep = false;
    for value in headers.get_all(header::CONNECTION) {
        for token in value.as_bytes().split(|&byte| byte == b',') {
            let token = token.trim_ascii();
            close |= token.eq_ignore_ascii_case(b"close");
            keep |= token.eq_ignore_ascii_case(b"keep-alive");
        }
    }
    match version {
        Version::HTTP_10 => keep && !close,
        _ => !close,
    }
}

/// Parses `bytes` as a whole buffer, with a 64 KiB limit.
#[cfg(test)]
fn parse_bytes(bytes: &[u8]) -> Result<Option<Head>, Refusal> {
    let mut buffer = BytesMut::from(bytes);
    parse(&mut buffer, 64 << 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_may_hold_exactly_the_bytes_of_a_host_and_port() {
        // RFC 3986's reg-name, IP literal and port characters, and nothing else.
        let allowed: Vec<u8> = (0..=255u8).filter(|&byte| is_valid_host(&[byte])).collect();
        let expected: Vec<u8> = (0..=255u8)
            .filter(|byte| byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:[]%".contains(byte))
            .collect();
        assert_eq!(allowed, expected);
        assert!(is_valid_host(b"[::1]:8080") && is_valid_host(b"example.com"));
        assert!(!is_valid_host(b"") && !is_valid_host(b"a b") && !is_valid_host(b"user@host"));
    }

    fn head(bytes: &str) -> Head {
        match parse_bytes(bytes.as_bytes()) {
            Ok(Some(head)) => head,
            other => panic!("{bytes:?}: {other:?}"),
        }
    }

    fn refused(bytes: &str) -> StatusCode {
        match parse_bytes(bytes.as_bytes()) {
            Err(refusal) => refusal.status,
            other => panic!("{bytes:?} was not refused: {other:?}"),
        }
    }

    #[test]
    fn a_plain_get_is_parsed_and_taken_from_the_buffer() {
        let mut buffer = BytesMut::from(&b"GET /a?b HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\r\nNEXT"[..]);
        let Ok(Some(head)) = parse(&mut buffer, 1024) else {
            panic!("not parsed")
        };
        assert_eq!(&buffer[..], b"NEXT");
        assert_eq!(head.request.method(), Method::GET);
        assert_eq!(head.request.uri(), "/a?b");
        assert_eq!(head.request.headers()["host"], "x");
        assert_eq!(head.request.headers()["x-a"], "1");
        assert_eq!(head.framing, Framing::Empty);
        assert!(head.keep_alive);
        assert!(!head.expect_continue);
    }

    #[test]
    fn a_partial_head_asks_for_more_until_the_limit() {
        let mut buffer = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: x\r\n"[..]);
        assert!(matches!(parse(&mut buffer, 1024), Ok(None)));
        assert_eq!(buffer.len(), 25, "nothing is taken from a partial head");
        match parse(&mut buffer, 20) {
            Err(refusal) => {
                assert_eq!(refusal.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
            }
            other => panic!("{other:?}"),
        }
        let mut line = BytesMut::from(&b"GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"[..]);
        match parse(&mut line, 20) {
            Err(refusal) => assert_eq!(refusal.status, StatusCode::URI_TOO_LONG),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn body_framing_follows_rfc_9112() {
        let framing =
            |extra: &str| head(&format!("POST / HTTP/1.1\r\nhost: x\r\n{extra}\r\n")).framing;
        assert_eq!(framing("content-length: 5\r\n"), Framing::Length(5));
        assert_eq!(framing("content-length: 0\r\n"), Framing::Empty);
        assert_eq!(
            framing("content-length: 5, 5\r\ncontent-length: 5\r\n"),
            Framing::Length(5)
        );
        let repeated = head(
            "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 005, 5\r\ncontent-length: 5\r\n\r\n",
        );
        let lengths: Vec<_> = repeated
            .request
            .headers()
            .get_all("content-length")
            .iter()
            .collect();
        assert_eq!(lengths, ["5"], "one plain Content-Length goes on");
        assert_eq!(framing("transfer-encoding: chunked\r\n"), Framing::Chunked);
        assert_eq!(framing("transfer-encoding: Chunked\r\n"), Framing::Chunked);
        assert_eq!(framing(""), Framing::Empty);
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        let post = |extra: &str| refused(&format!("POST / HTTP/1.1\r\nhost: x\r\n{extra}\r\n"));
        assert_eq!(
            post("content-length: 5\r\ntransfer-encoding: chunked\r\n"),
            BAD_REQUEST
        );
        assert_eq!(
            post("content-length: 5\r\ncontent-length: 6\r\n"),
            BAD_REQUEST
        );
        assert_eq!(post("content-length: 5, 6\r\n"), BAD_REQUEST);
        assert_eq!(post("content-length: +5\r\n"), BAD_REQUEST);
        assert_eq!(post("content-length: 0x5\r\n"), BAD_REQUEST);
        assert_eq!(
            post("content-length: 99999999999999999999\r\n"),
            BAD_REQUEST
        );
        assert_eq!(post("transfer-encoding: chunked, gzip\r\n"), BAD_REQUEST);
        assert_eq!(post("transfer-encoding: gzip\r\n"), BAD_REQUEST);
        assert_eq!(
            post("transfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n"),
            BAD_REQUEST
        );
        assert_eq!(
            post("transfer-encoding: gzip, chunked\r\n"),
            StatusCode::NOT_IMPLEMENTED
        );
        assert_eq!(
            refused("POST / HTTP/1.0\r\ntransfer-encoding: chunked\r\n\r\n"),
            BAD_REQUEST
        );
    }

    #[test]
    fn malformed_heads_are_refused() {
        assert_eq!(
            refused("\x16\x03\x01 this is not http\r\n\r\n"),
            BAD_REQUEST
        );
        assert_eq!(refused("GET / HTTP/1.1\r\nhost : x\r\n\r\n"), BAD_REQUEST);
        assert_eq!(
            refused("GET / HTTP/1.1\r\nhost: x\r\n folded\r\n\r\n"),
            BAD_REQUEST
        );
        assert_eq!(
            refused("GET / HTTP/1.1\r\nho\x01st: x\r\n\r\n"),
            BAD_REQUEST
        );
        assert_eq!(refused("GET / HTTP/1.1\r\nhost: a\rb\r\n\r\n"), BAD_REQUEST);
        assert_eq!(
            refused("GET / HTTP/2.0\r\n\r\n"),
            StatusCode::HTTP_VERSION_NOT_SUPPORTED
        );
        let many: String = (0..200).map(|i| format!("x-{i}: 1\r\n")).collect();
        assert_eq!(
            refused(&format!("GET / HTTP/1.1\r\n{many}\r\n")),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
    }

    #[test]
    fn keep_alive_follows_the_version_and_connection_tokens() {
        assert!(head("GET / HTTP/1.1\r\nhost: x\r\n\r\n").keep_alive);
        assert!(!head("GET / HTTP/1.1\r\nhost: x\r\nconnection: Close\r\n\r\n").keep_alive);
        assert!(!head("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(head("GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n").keep_alive);
        assert!(!head("GET / HTTP/1.1\r\nhost: x\r\nconnection: x, close\r\n\r\n").keep_alive);
    }

    #[test]
    fn expect_continue_needs_http_1_1_and_a_body() {
        let with_body =
            "POST / HTTP/1.1\r\nhost: x\r\nexpect: 100-Continue\r\ncontent-length: 3\r\n\r\n";
        assert!(head(with_body).expect_continue);
        assert!(!head("GET / HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\n\r\n").expect_continue);
    }

    #[test]
    fn the_expectation_is_not_forwarded() {
        let asked =
            "PUT / HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 3\r\n\r\n";
        assert!(head(asked).request.headers().get("expect").is_none());
        let other = "PUT / HTTP/1.1\r\nhost: x\r\nexpect: other\r\ncontent-length: 3\r\n\r\n";
        assert_eq!(head(other).request.headers()["expect"], "other");
    }

    #[test]
    fn http_1_1_needs_exactly_one_valid_host() {
        assert_eq!(refused("GET / HTTP/1.1\r\n\r\n"), BAD_REQUEST);
        assert_eq!(
            refused("GET / HTTP/1.1\r\nhost: a\r\nhost: a\r\n\r\n"),
            BAD_REQUEST
        );
        assert_eq!(
            refused("GET / HTTP/1.1\r\nhost: user@a\r\n\r\n"),
            BAD_REQUEST
        );
        assert_eq!(refused("GET / HTTP/1.1\r\nhost: a/b\r\n\r\n"), BAD_REQUEST);
        assert_eq!(refused("GET / HTTP/1.1\r\nhost: \r\n\r\n"), BAD_REQUEST);
        head("GET / HTTP/1.0\r\n\r\n");
        head("GET / HTTP/1.1\r\nhost: [::1]:8080\r\n\r\n");
        head("GET / HTTP/1.1\r\nhost: a-b.example.com:80\r\n\r\n");
    }

    #[test]
    fn only_a_well_formed_other_version_gets_505() {
        assert_eq!(
            refused("GET / HTTP/3.0\r\nhost: x\r\n\r\n"),
            StatusCode::HTTP_VERSION_NOT_SUPPORTED
        );
        assert_eq!(
            refused("GET / HTTP/1.2\r\nhost: x\r\n\r\n"),
            StatusCode::HTTP_VERSION_NOT_SUPPORTED
        );
        assert_eq!(refused("GET /a b HTTP/1.1\r\nhost: x\r\n\r\n"), BAD_REQUEST);
        assert_eq!(refused("GET / HTTX/1.1\r\nhost: x\r\n\r\n"), BAD_REQUEST);
        assert_eq!(refused("GET / HTTP/1.1x\r\nhost: x\r\n\r\n"), BAD_REQUEST);
        // Found by fuzzing (fuzz/corpus/http1_request/regression-version-cut): cut after
        // `HTTP/1OS` this line was 505, whole it was 400.
        let line = "POST / HTTP/1OST / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(refused(&line[..15]), BAD_REQUEST);
        assert_eq!(refused(line), BAD_REQUEST);
    }
}

/// Parsing checks shared by the property tests and the fuzz target.
#[cfg(any(test, fuzzing))]
pub(super) mod checks {
    use bytes::BytesMut;
    use http::header::{self, HeaderValue};

    use super::{Framing, Head, Refusal, parse};

    /// What parsing `bytes` fed in two pieces gives, compared as text: the first piece alone
    /// must ask for more unless it already decides.
    pub(crate) fn outcome(first: &[u8], rest: &[u8]) -> String {
        let mut buffer = BytesMut::from(first);
        let parsed = match parse(&mut buffer, 64 << 10) {
            Ok(None) => {
                buffer.extend_from_slice(rest);
                parse(&mut buffer, 64 << 10)
            }
            decided => {
                buffer.extend_from_slice(rest);
                decided
            }
        };
        describe(parsed, &buffer)
    }

    fn describe(parsed: Result<Option<Head>, Refusal>, left: &[u8]) -> String {
        match parsed {
            Ok(Some(head)) => format!(
                "{:?} {:?} {:?} {:?} {} {} left {}",
                head.request.method(),
                head.request.uri(),
                head.request.headers(),
                head.framing,
                head.keep_alive,
                head.expect_continue,
                left.len()
            ),
            Ok(None) => "more".to_owned(),
            Err(refusal) => format!("refused {}", refusal.status),
        }
    }

    /// Whether an accepted head is framed one way: one plain Content-Length matching its
    /// framing, or a lone chunked Transfer-Encoding, never both; no `100-continue` forwarded.
    pub(crate) fn framed_one_way(head: &Head) -> Result<(), String> {
        let headers = head.request.headers();
        let lengths: Vec<&HeaderValue> = headers.get_all(header::CONTENT_LENGTH).iter().collect();
        let codings = headers.get_all(header::TRANSFER_ENCODING).iter().count();
        let fine = match head.framing {
            Framing::Chunked => lengths.is_empty() && codings == 1,
            Framing::Length(length) => codings == 0 && lengths == [&HeaderValue::from(length)],
            Framing::Empty => {
                codings == 0 && (lengths.is_empty() || lengths == [&HeaderValue::from(0)])
            }
        };
        let continues = headers
            .get(header::EXPECT)
            .is_some_and(|value| value == "100-continue");
        if fine && !continues {
            Ok(())
        } else {
            Err(format!("{:?} framed as {:?}", headers, head.framing))
        }
    }

    /// The fuzz target: a head reads the same whole or cut where the first byte says, and an
    /// accepted one is framed one way.
    #[cfg(fuzzing)]
    pub(crate) fn fuzz(data: &[u8]) {
        let Some((&cut, bytes)) = data.split_first() else {
            return;
        };
        let at = usize::from(cut) * bytes.len() / 255;
        assert_eq!(outcome(&bytes[..at], &bytes[at..]), outcome(bytes, &[]));
        let mut buffer = BytesMut::from(bytes);
        if let Ok(Some(head)) = parse(&mut buffer, 64 << 10) {
            framed_one_way(&head).unwrap();
        }
    }
}

/// Properties of head parsing over generated input: no input makes it panic, a head reads the
/// same whole or in two pieces, and whatever it accepts is framed one way.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::checks::{framed_one_way, outcome};
    use super::*;

    /// Head-like bytes: a request line (now and then a broken one), then fields, framing
    /// fields among them, with odd bytes and line endings at times.
    fn head_bytes() -> impl Strategy<Value = Vec<u8>> {
        let request_line = prop_oneof![
            4 => Just("GET / HTTP/1.1".to_owned()),
            4 => Just("POST /x?y=1 HTTP/1.1".to_owned()),
            2 => Just("PUT /up HTTP/1.0".to_owned()),
            1 => "[A-Z]{0,4} [/a-z ]{0,4} HTTP/[0-9].[0-9]".prop_map(|s| s),
        ];
        let field = prop_oneof![
            3 => Just("host: a.example".to_owned()),
            1 => Just("Host: b".to_owned()),
            3 => "[Cc]ontent-[Ll]ength: ?[0-9 ,+-]{0,6}".prop_map(|s| s),
            3 => "[Tt]ransfer-[Ee]ncoding: ?(chunked|gzip|identity|, )*".prop_map(|s| s),
            1 => Just("connection: close".to_owned()),
            1 => Just("expect: 100-continue".to_owned()),
            2 => "[a-zA-Z0-9 \\-@:\t]{0,12}".prop_map(|s| s),
        ];
        let ending =
            prop_oneof![8 => Just("\r\n"), 1 => Just("\n"), 1 => Just("\r"), 1 => Just(" \r\n")];
        let fields = proptest::collection::vec((field, ending), 0..8);
        (request_line, proptest::bool::weighted(0.8), fields).prop_map(|(line, host, fields)| {
            let mut bytes = line.into_bytes();
            bytes.extend_from_slice(b"\r\n");
            if host {
                bytes.extend_from_slice(b"host: h\r\n");
            }
            for (field, ending) in fields {
                bytes.extend_from_slice(field.as_bytes());
                bytes.extend_from_slice(ending.as_bytes());
            }
            bytes.extend_from_slice(b"\r\nBODY");
            bytes
        })
    }

    proptest! {
        #[test]
        fn a_head_reads_the_same_whole_or_in_two_pieces(bytes in head_bytes(), cut in 0.0..1.0f64) {
            let at = (cut * bytes.len() as f64) as usize;
            prop_assert_eq!(outcome(&bytes[..at], &bytes[at..]), outcome(&bytes, &[]));
        }

        #[test]
        fn whatever_is_accepted_is_framed_one_way(bytes in head_bytes()) {
            let mut buffer = BytesMut::from(&bytes[..]);
            let parsed = parse(&mut buffer, 64 << 10);
            if let Ok(Some(head)) = parsed {
                prop_assert_eq!(framed_one_way(&head), Ok(()));
            }
        }

        #[test]
        fn no_bytes_make_parsing_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut buffer = BytesMut::from(&bytes[..]);
            let _ = parse(&mut buffer, 256);
        }
    }
}
