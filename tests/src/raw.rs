//! A raw HTTP/1 client: bytes written exactly as a test gives them, responses read back one at
//! a time (Content-Length, chunked, or up to the close), so that tests can check framing,
//! pipelining and connection handling that a real client library hides.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a raw read may wait before the test fails instead of hanging.
const READ_LIMIT: Duration = Duration::from_secs(10);

/// One connection, and what was read from it but not yet returned as a response.
#[derive(Debug)]
pub struct RawClient {
    /// The connection.
    pub stream: TcpStream,
    buffered: Vec<u8>,
}

/// A response as read off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawResponse {
    /// The status line, such as `HTTP/1.1 200 OK`.
    pub status_line: String,
    /// The header lines, lowercased, as `name: value`.
    pub headers: Vec<String>,
    /// The body, decoded from its framing.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The status code.
    pub fn status(&self) -> u16 {
        self.status_line
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0)
    }

    /// The value of the first header named `name` (lowercase), if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        let prefix = format!("{name}: ");
        self.headers
            .iter()
            .find_map(|line| line.strip_prefix(&prefix))
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl RawClient {
    /// Connects to `address`.
    pub async fn connect(address: SocketAddr) -> RawClient {
        RawClient {
            stream: TcpStream::connect(address).await.expect("connect"),
            buffered: Vec::new(),
        }
    }

    /// Writes `bytes` as they are.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Reads until `bytes` is buffered, and returns everything up to and including it.
    pub async fn read_through(&mut self, bytes: &[u8]) -> Vec<u8> {
        loop {
            if let Some(at) = find(&self.buffered, bytes) {
                return self.buffered.drain(..at + bytes.len()).collect();
            }
            assert!(self.fill().await > 0, "closed before {bytes:?}");
        }
    }

    /// Reads one response to a request with `method`, framed as its headers say.
    pub async fn response(&mut self, method: &str) -> RawResponse {
        let head = String::from_utf8(self.read_through(b"\r\n\r\n").await).expect("a text head");
        let mut lines = head.trim_end().split("\r\n");
        let status_line = lines.next().unwrap_or_default().to_owned();
        let headers: Vec<String> = lines
            .map(|line| match line.split_once(':') {
                Some((name, value)) => format!("{}: {}", name.to_lowercase(), value.trim()),
                None => line.to_lowercase(),
            })
            .collect();
        let mut response = RawResponse {
            status_line,
            headers,
            body: Vec::new(),
        };
        let status = response.status();
        if method == "HEAD" || status == 204 || status == 304 || (100..200).contains(&status) {
            return response;
        }
        if let Some(length) = response.header("content-length") {
            let length: usize = length.parse().expect("a numeric content-length");
            response.body = self.read_exactly(length).await;
        } else if response.header("transfer-encoding") == Some("chunked") {
            response.body = self.read_chunks().await;
        } else {
            while self.fill().await > 0 {}
            response.body = std::mem::take(&mut self.buffered);
        }
        response
    }

    /// Sends `request` and reads the response to it.
    pub async fn exchange(&mut self, request: &str) -> RawResponse {
        self.send(request.as_bytes()).await;
        let method = request.split(' ').next().unwrap_or_default().to_owned();
        self.response(&method).await
    }

    /// Whether the server closes the connection (rather than sending anything) within the read
    /// limit.
    pub async fn closed(&mut self) -> bool {
        self.buffered.is_empty() && self.fill().await == 0
    }

    async fn read_exactly(&mut self, length: usize) -> Vec<u8> {
        while self.buffered.len() < length {
            assert!(self.fill().await > 0, "closed inside a body");
        }
        self.buffered.drain(..length).collect()
    }

    async fn read_chunks(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let line = self.read_through(b"\r\n").await;
            let text = String::from_utf8_lossy(&line[..line.len() - 2]).into_owned();
            let size = usize::from_str_radix(text.split(';').next().unwrap_or("").trim(), 16)
                .expect("a chunk size");
            if size == 0 {
                self.read_through(b"\r\n").await;
                return body;
            }
            body.extend(self.read_exactly(size + 2).await.drain(..size));
        }
    }

    /// Reads more into the buffer: how much (0 at the close).
    async fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 16 << 10];
        let read = tokio::time::timeout(READ_LIMIT, self.stream.read(&mut chunk))
            .await
            .expect("the server answered within the read limit")
            .unwrap_or(0);
        self.buffered.extend_from_slice(&chunk[..read]);
        read
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}
