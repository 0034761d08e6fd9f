//! vane's HTTP/1.1 client against hyper's, on the same backend bytes: each answer below is
//! served by a real socket on 127.0.0.1 to both clients in turn, and what each makes of it (the
//! status, the fields a proxy forwards, the body, or a refusal) must agree, but where vane is
//! right where hyper was not, which the case says.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::HeaderMap;
use http::request::Parts;
use http::uri::Authority;
use http::{Method, Request};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::body::ResponseBody;
use super::connection::{self, Connection, Outgoing};
use crate::dial::BackendStream;
use crate::proxy::head::{ClientAddress, remove_hop_by_hop};
use crate::proxy::request_body::AttemptBody;

/// What a client made of an answer: status, forwarded fields and body, or a refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Answer {
        status: u16,
        fields: Vec<(String, String)>,
        body: Bytes,
        /// The trailer fields, if any came.
        trailers: Vec<(String, String)>,
        /// Whether the body ended cleanly (not broken off).
        whole: bool,
    },
    Refused,
}

/// How vane is meant to differ from hyper on a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Both read it the same way.
    Same,
    /// Both read the same body, but vane leaves out the Content-Length that a Transfer-Encoding
    /// overrides (RFC 9112 §6.3), which hyper's client kept: the client would have been told a
    /// length the body it got does not have.
    NoOverriddenLength,
    /// Both read the same, but vane gives a Content-Length list of one value (`2, 2`) as that
    /// value, which hyper's client passed on as it came (strict clients refuse a list).
    OneLength(&'static str),
}

/// Serves `answer` to the first connection on a fresh listener, after reading the request
/// head, then closes; the address to connect to.
async fn serve_once(answer: &'static [u8]) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if socket.read(&mut byte).await.unwrap_or(0) == 0 {
                return;
            }
            head.push(byte[0]);
        }
        let _ = socket.write_all(answer).await;
        let _ = socket.shutdown().await;
    });
    address
}

fn fields(headers: &HeaderMap) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    fields.sort();
    fields
}

/// A body's data, its trailer fields, and whether it ended cleanly.
async fn collect<B>(mut body: B) -> (Bytes, Vec<(String, String)>, bool)
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    let mut data = BytesMut::new();
    let mut trailers = Vec::new();
    loop {
        match body.frame().await {
            None => return (data.freeze(), trailers, true),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(bytes) => data.extend_from_slice(&bytes),
                Err(frame) => {
                    if let Ok(fields) = frame.into_trailers() {
                        trailers = self::fields(&fields);
                    }
                }
            },
            Some(Err(_)) => return (data.freeze(), trailers, false),
        }
    }
}

async fn hyper_reads(answer: &'static [u8], method: &Method) -> Seen {
    let address = serve_once(answer).await;
    let tcp = TcpStream::connect(address).await.unwrap();
    let Ok((mut sender, connection)) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(tcp)).await
    else {
        return Seen::Refused;
    };
    tokio::spawn(connection);
    let request = Request::builder()
        .method(method.clone())
        .uri("/")
        .header("host", "backend")
        .body(Empty::new())
        .unwrap();
    let Ok(response) = sender.send_request(request).await else {
        return Seen::Refused;
    };
    let (mut parts, body) = response.into_parts();
    remove_hop_by_hop(&mut parts.headers);
    let (body, trailers, whole) = collect(body).await;
    Seen::Answer {
        status: parts.status.as_u16(),
        fields: fields(&parts.headers),
        body,
        trailers,
        whole,
    }
}

async fn vane_reads(answer: &'static [u8], method: &Method) -> Seen {
    let address = serve_once(answer).await;
    let tcp = TcpStream::connect(address).await.unwrap();
    let head: Parts = Request::builder()
        .method(method.clone())
        .uri("/")
        .header("host", "backend")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    let authority = Authority::from_static("backend");
    let client = ClientAddress::new("192.0.2.7:5000".parse().unwrap());
    let outgoing = Outgoing::new(&head, &authority, &client, AttemptBody::Empty);
    let connection = Connection::new(BackendStream::Tcp(tcp));
    let Ok(answered) = connection::exchange(connection, outgoing, false).await else {
        return Seen::Refused;
    };
    let mut head = answered.head;
    let mut body = ResponseBody::new(
        answered.connection,
        &mut head,
        answered.sending,
        super::Home::nowhere(),
    );
    let status = head.status.as_u16();
    let mut headers = head.headers;
    if let Some(kept) = body.take_fields() {
        kept.add_to(&mut headers);
    }
    let fields = fields(&headers);
    let (body, trailers, whole) = collect(body).await;
    Seen::Answer {
        status,
        fields,
        body,
        trailers,
        whole,
    }
}

/// The cases: the bytes a backend answers, the request's method, and how vane should differ.
const CASES: &[(&[u8], Method, Expect)] = &[
    (
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello",
        Method::GET,
        Expect::Same,
    ),
    (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n",
        Method::GET,
        Expect::Same,
    ),
    (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n2\r\nok\r\n0\r\nX-Sum: 5d41\r\nX-More: 2\r\n\r\n",
        Method::GET,
        Expect::Same,
    ),
    (
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n",
        Method::GET,
        Expect::NoOverriddenLength,
    ),
    (
        b"HTTP/1.0 200 OK\r\nX-A: b\r\n\r\nuntil the close",
        Method::GET,
        Expect::Same,
    ),
    (
        b"HTTP/1.1 200 OK\r\n\r\nno framing, until the close",
        Method::GET,
        Expect::Same,
    ),
    (
        b"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n",
        Method::GET,
        Expect::Same,
    ),
    (
        b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n",
        Method::GET,
        Expect::Same,
    ),
    (
        b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n",
        Method::HEAD,
        Expect::Same,
    ),
    (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        Method::GET,
        Expect::Same,
    ),
    (
        b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok",
        Method::GET,
        Expect::OneLength("2"),
    ),
    (
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
        Method::GET,
        Expect::Same,
    ),
    (
        b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok",
        Method::GET,
        Expect::Same,
    ),
    (
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        Method::GET,
        Expect::Same,
    ),
    (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
        Method::GET,
        Expect::Same,
    ),
    (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        Method::GET,
        Expect::Same,
    ),
    (
        b"HTTP/1.1 200 OK\r\nX-A: b\r\n folded\r\nContent-Length: 0\r\n\r\n",
        Method::GET,
        Expect::Same,
    ),
    (
        b"HTTP/1.1 200 OK\r\nX A: b\r\nContent-Length: 0\r\n\r\n",
        Method::GET,
        Expect::Same,
    ),
    (b"garbage\r\n\r\n", Method::GET, Expect::Same),
    (b"", Method::GET, Expect::Same),
    (
        b"HTTP/1.1 200 OK\r\nConnection: close, X-Gone\r\nX-Gone: 1\r\nKeep-Alive: timeout=5\r\nContent-Length: 0\r\n\r\n",
        Method::GET,
        Expect::Same,
    ),
    // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message means its framing is faulty.
    (
        b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        Method::GET,
        Expect::Same,
    ),
];

#[tokio::test]
async fn vane_reads_backend_answers_as_hyper_does() {
    let mut differences = Vec::new();
    for (answer, method, expect) in CASES {
        let limit = Duration::from_secs(10);
        let hyper = tokio::time::timeout(limit, hyper_reads(answer, method))
            .await
            .expect("hyper answered in time");
        let vane = tokio::time::timeout(limit, vane_reads(answer, method))
            .await
            .expect("vane answered in time");
        let mut expected = hyper.clone();
        if let Seen::Answer { fields, .. } = &mut expected {
            match expect {
                Expect::Same => {}
                Expect::NoOverriddenLength => fields.retain(|(name, _)| name != "content-length"),
                Expect::OneLength(length) => {
                    for (name, value) in fields.iter_mut() {
                        if name == "content-length" {
                            *value = (*length).to_owned();
                        }
                    }
                }
            }
        }
        let agreed = vane == expected && (*expect == Expect::Same || hyper != Seen::Refused);
        if !agreed {
            differences.push(format!(
                "{:?} ({method}, {expect:?}):\n  hyper {hyper:?}\n  vane  {vane:?}",
                String::from_utf8_lossy(answer)
            ));
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}
