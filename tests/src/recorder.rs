//! A backend that records exactly the bytes vane sends it, and reads them the strictest way an
//! HTTP/1.1 server could: every line ends in CRLF, field names are tokens with the colon right
//! after them, no folded lines, at most one Content-Length of plain digits, Transfer-Encoding
//! only as a lone `chunked` and never beside a Content-Length, chunk lines of hex digits alone.
//! A request that passes is answered `200`; anything else is noted as a violation and the
//! connection closed. If vane forwards only what this backend reads, every backend reads vane's
//! requests exactly one way, which is what protects it from request smuggling.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// One request as the strict reading found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    /// The request line, such as `GET / HTTP/1.1`.
    pub request_line: String,
    /// The header fields in the order received, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body, decoded from its framing.
    pub body: Vec<u8>,
}

impl Forwarded {
    /// Every value of the field `name` (lowercase), in order.
    pub fn values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
            .collect()
    }

    /// The one value of the field `name`, if it appears (fails if it appears twice).
    pub fn value(&self, name: &str) -> Option<&str> {
        let values = self.values(name);
        assert!(values.len() <= 1, "{name} appears twice: {self:?}");
        values.first().copied()
    }
}

/// What the backend has seen so far.
#[derive(Debug, Default)]
struct Log {
    /// Every request read whole, in the order read.
    requests: Vec<Forwarded>,
    /// Bytes that no strict reading accepts, with why.
    violations: Vec<String>,
    /// Connections that closed inside a request (a request broken off, which no backend acts on).
    broken_off: usize,
}

/// The recording backend, on a free loopback port; it stops when dropped.
pub struct Recorder {
    /// Where it listens.
    pub address: SocketAddr,
    log: Arc<Mutex<Log>>,
    task: JoinHandle<()>,
}

impl Recorder {
    /// Binds a free loopback port and starts recording.
    pub async fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("a bound address");
        let log = Arc::new(Mutex::new(Log::default()));
        let shared = log.clone();
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                connections.spawn(record(stream, shared.clone()));
            }
        });
        Recorder { address, log, task }
    }

    /// The `[[backends]]` table for it.
    pub fn toml(&self) -> String {
        format!(
            "[[backends]]\nname = \"recorder\"\naddress = \"{}\"\n",
            self.address
        )
    }

    /// Every request read whole so far; fails the test if any bytes broke the strict reading.
    pub fn requests(&self) -> Vec<Forwarded> {
        let log = self.log();
        assert!(
            log.violations.is_empty(),
            "vane forwarded bytes a strict backend cannot read one way: {:?}",
            log.violations
        );
        log.requests.clone()
    }

    /// How many connections closed inside a request.
    pub fn broken_off(&self) -> usize {
        self.log().broken_off
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        self.log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one connection, answering each request read whole.
async fn record(mut stream: TcpStream, log: Arc<Mutex<Log>>) {
    let mut received = Vec::new();
    let mut chunk = [0u8; 16 << 10];
    loop {
        let read = stream.read(&mut chunk).await.unwrap_or(0);
        if read == 0 {
            if !received.is_empty() {
                log.lock().expect("log").broken_off += 1;
            }
            return;
        }
        received.extend_from_slice(&chunk[..read]);
        loop {
            match read_request(&received) {
                Reading::Whole(request, used) => {
                    received.drain(..used);
                    let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    log.lock().expect("log").requests.push(request);
                    if stream.write_all(reply).await.is_err() {
                        return;
                    }
                }
                Reading::Partial => break,
                Reading::Violation(why) => {
                    let text = String::from_utf8_lossy(&received).into_owned();
                    log.lock()
                        .expect("log")
                        .violations
                        .push(format!("{why}: {text:?}"));
                    return;
                }
            }
        }
    }
}

/// What the strict reading makes of the bytes at the front of a connection.
#[derive(Debug)]
enum Reading {
    /// A whole request, and how many bytes it took.
    Whole(Forwarded, usize),
    /// Not all there yet.
    Partial,
    /// Not readable one way.
    Violation(&'static str),
}

/// Reads the request at the front of `bytes` strictly (RFC 9112 without any of its leniencies).
fn read_request(bytes: &[u8]) -> Reading {
    let Some(head_end) = find(bytes, b"\r\n\r\n") else {
        let complete_lines = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        return if !has_only_crlf(complete_lines) {
            Reading::Violation("a bare CR or LF in the head")
        } else {
            Reading::Partial
        };
    };
    let head = &bytes[..head_end];
    if !has_only_crlf(head) {
        return Reading::Violation("a bare CR or LF in the head");
    }
    let Ok(head) = std::str::from_utf8(head) else {
        return Reading::Violation("a head that is not text");
    };
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_owned();
    let parts: Vec<&str> = request_line.split(' ').collect();
    if parts.len() != 3 || parts[2] != "HTTP/1.1" || !parts[0].bytes().all(is_token) {
        return Reading::Violation("a malformed request line");
    }
    let mut headers = Vec::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Reading::Violation("a field line without a colon");
        };
        if name.is_empty() || !name.bytes().all(is_token) {
            return Reading::Violation("a field name that is not a token (or a folded line)");
        }
        let value = value.trim_matches([' ', '\t']);
        if value
            .bytes()
            .any(|byte| byte < 0x20 && byte != b'\t' || byte == 0x7f)
        {
            return Reading::Violation("a control byte in a field value");
        }
        headers.push((name.to_ascii_lowercase(), value.to_owned()));
    }
    let mut request = Forwarded {
        request_line,
        headers,
        body: Vec::new(),
    };
    let body_start = head_end + 4;
    let lengths = request.values("content-length").len();
    let codings = request.values("transfer-encoding");
    let rest = &bytes[body_start..];
    let used = match (lengths, codings.as_slice()) {
        (0, []) => 0,
        (1, []) => {
            let text = request.values("content-length")[0];
            if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
                return Reading::Violation("a Content-Length that is not plain digits");
            }
            let Ok(length) = text.parse::<usize>() else {
                return Reading::Violation("a Content-Length out of range");
            };
            if rest.len() < length {
                return Reading::Partial;
            }
            request.body = rest[..length].to_vec();
            length
        }
        (0, ["chunked"]) => match read_chunks(rest) {
            Reading::Whole(Forwarded { body, .. }, used) => {
                request.body = body;
                used
            }
            other => return other,
        },
        (0, _) => return Reading::Violation("a Transfer-Encoding other than a lone chunked"),
        (_, []) => return Reading::Violation("more than one Content-Length"),
        _ => return Reading::Violation("both Content-Length and Transfer-Encoding"),
    };
    Reading::Whole(request, body_start + used)
}

/// Reads a chunked body strictly: hex sizes alone on their lines, CRLF after each chunk's
/// data, no trailers (vane sends none).
fn read_chunks(bytes: &[u8]) -> Reading {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let Some(line_end) = find(&bytes[at..], b"\r\n") else {
            return Reading::Partial;
        };
        let line = &bytes[at..at + line_end];
        if line.is_empty() || line.len() > 15 || !line.iter().all(u8::is_ascii_hexdigit) {
            return Reading::Violation("a chunk line that is not a plain size");
        }
        let size = usize::from_str_radix(std::str::from_utf8(line).expect("hex"), 16)
            .expect("at most 15 hex digits");
        at += line_end + 2;
        if size == 0 {
            return match bytes.get(at..at + 2) {
                None => Reading::Partial,
                Some(b"\r\n") => Reading::Whole(
                    Forwarded {
                        request_line: String::new(),
                        headers: Vec::new(),
                        body,
                    },
                    at + 2,
                ),
                Some(_) => Reading::Violation("trailers or bytes after the last chunk"),
            };
        }
        let Some(data) = bytes.get(at..at + size + 2) else {
            return Reading::Partial;
        };
        if !data.ends_with(b"\r\n") {
            return Reading::Violation("no CRLF after a chunk's data");
        }
        body.extend_from_slice(&data[..size]);
        at += size + 2;
    }
}

/// Whether every CR in `bytes` starts a CRLF and every LF ends one.
fn has_only_crlf(bytes: &[u8]) -> bool {
    bytes.iter().enumerate().all(|(at, &byte)| match byte {
        b'\r' => bytes.get(at + 1) == Some(&b'\n'),
        b'\n' => at > 0 && bytes[at - 1] == b'\r',
        _ => true,
    })
}

/// Whether `byte` may appear in a token (RFC 9110 §5.6.2).
fn is_token(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(bytes: &str) -> Forwarded {
        match read_request(bytes.as_bytes()) {
            Reading::Whole(request, used) => {
                assert_eq!(used, bytes.len(), "{bytes:?}");
                request
            }
            other => panic!("{bytes:?}: {other:?}"),
        }
    }

    fn violation(bytes: &str) -> &'static str {
        match read_request(bytes.as_bytes()) {
            Reading::Violation(why) => why,
            other => panic!("{bytes:?} was read: {other:?}"),
        }
    }

    #[test]
    fn the_strict_reading_accepts_plain_requests() {
        let get = whole("GET /x HTTP/1.1\r\nhost: a\r\n\r\n");
        assert_eq!(get.request_line, "GET /x HTTP/1.1");
        assert_eq!(get.value("host"), Some("a"));
        let post = whole("POST / HTTP/1.1\r\ncontent-length: 3\r\n\r\nabc");
        assert_eq!(post.body, b"abc");
        let chunked =
            whole("POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
        assert_eq!(chunked.body, b"abc");
        assert!(matches!(
            read_request(b"POST / HTTP/1.1\r\ncontent-length: 3\r\n\r\nab"),
            Reading::Partial
        ));
    }

    #[test]
    fn the_strict_reading_refuses_every_ambiguity() {
        violation("GET / HTTP/1.1\r\nhost: a\nx: b\r\n\r\n");
        violation("GET / HTTP/1.1\r\nhost : a\r\n\r\n");
        violation("GET / HTTP/1.1\r\nx: a\r\n b\r\n\r\n");
        violation("GET / HTTP/1.0\r\n\r\n");
        violation("POST / HTTP/1.1\r\ncontent-length: 1\r\ncontent-length: 1\r\n\r\na");
        violation("POST / HTTP/1.1\r\ncontent-length: +1\r\n\r\na");
        violation("POST / HTTP/1.1\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n");
        violation("POST / HTTP/1.1\r\ntransfer-encoding: gzip, chunked\r\n\r\n");
        violation("POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n3;x\r\nabc\r\n0\r\n\r\n");
        violation("POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n");
    }
}
