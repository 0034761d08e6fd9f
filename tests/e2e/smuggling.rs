//! Request smuggling and framing: raw requests sent through vane to a backend that records the
//! bytes it receives and reads them the strictest way (`vane_e2e::recorder`). Each case is
//! either refused with a 4xx (or 501), nothing of it reaching the backend as a request and the
//! connection closed, or forwarded so that the backend reads exactly the requests listed, with
//! the framing and body listed. README.md's table "What vane refuses, what it normalises" is
//! this file's table in words.

use vane_e2e::Vane;
use vane_e2e::raw::RawClient;
use vane_e2e::recorder::{Forwarded, Recorder};

/// How a forwarded request's body is delimited.
#[derive(Debug, Clone, Copy)]
enum Framing {
    /// No Content-Length and no Transfer-Encoding.
    None,
    /// One `content-length` field with this value.
    Length(usize),
    /// `transfer-encoding: chunked` alone.
    Chunked,
}

/// One request as the backend must read it.
#[derive(Debug)]
struct Reads {
    line: &'static str,
    host: &'static str,
    framing: Framing,
    body: &'static [u8],
}

/// What must become of a case.
#[derive(Debug)]
enum Verdict {
    /// Answered with this status, nothing reaching the backend, the connection closed.
    Refused(u16),
    /// Each request answered 200 by the backend, which read exactly these.
    Forwarded(&'static [Reads]),
}

const fn reads(line: &'static str, framing: Framing, body: &'static [u8]) -> Reads {
    Reads {
        line,
        host: "a.example",
        framing,
        body,
    }
}

const GET_ROOT: Reads = reads("GET / HTTP/1.1", Framing::None, b"");

/// Every case: a name, the bytes the client sends, and the verdict.
const CASES: &[(&str, &str, Verdict)] = &[
    // Content-Length and Transfer-Encoding together, in both orders (CL.TE and TE.CL).
    (
        "content-length with transfer-encoding",
        "POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
        Verdict::Refused(400),
    ),
    (
        "transfer-encoding with content-length",
        "POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
        Verdict::Refused(400),
    ),
    // Content-Lengths that disagree, or are not plain digits.
    (
        "two different content-lengths",
        "POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        Verdict::Refused(400),
    ),
    (
        "a content-length list that disagrees",
        "POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5, 6\r\n\r\nhello!",
        Verdict::Refused(400),
    ),
    (
        "a signed content-length",
        "POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: +5\r\n\r\nhello",
        Verdict::Refused(400),
    ),
    (
        "a hexadecimal content-length",
        "POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 0x5\r\n\r\nhello",
        Verdict::Refused(400),
    ),
    (
        "a content-length with a space inside",
        "POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 1 0\r\n\r\nhello",
        Verdict::Refused(400),
    ),
    (
        "an overflowing content-length",
        "POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 18446744073709551621\r\n\r\nhello",
        Verdict::Refused(400),
    ),
    (
        "an empty content-length",
        "POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: \r\n\r\n",
        Verdict::Refused(400),
    ),
    // Identical Content-Lengths are one value, forwarded once and plain.
    (
        "repeated identical content-lengths",
        "POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5, 5\r\nContent-Length: 005\r\n\r\nhello",
        Verdict::Forwarded(&[reads("POST / HTTP/1.1", Framing::Length(5), b"hello")]),
    ),
    // Transfer-Encoding other than one final `chunked`.
    (
        "a coding before chunked",
        "POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        Verdict::Refused(501),
    ),
    (
        "a coding after chunked",
        "POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
        Verdict::Refused(400),
    ),
    (
        "chunked twice",
        "POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        Verdict::Refused(400),
    ),
    (
        "identity",
        "POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: identity\r\n\r\n",
        Verdict::Refused(400),
    ),
    (
        "a misspelt chunked",
        "POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
        Verdict::Refused(400),
    ),
    (
        "chunked with a vertical tab",
        "POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n",
        Verdict::Refused(400),
    ),
    (
        "transfer-encoding from an HTTP/1.0 client",
        "POST / HTTP/1.0\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        Verdict::Refused(400),
    ),
    // Obsolete line folding.
    (
        "a folded field",
        "GET / HTTP/1.1\r\nHost: a.example\r\nX-Folded: one\r\n two\r\n\r\n",
        Verdict::Refused(400),
    ),
    (
        "a folded transfer-encoding",
        "POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
        Verdict::Refused(400),
    ),
    // Bare CR or LF.
    (
        "a bare CR inside a field value",
        "GET / HTTP/1.1\r\nHost: a.example\r\nX-A: one\rX-B: two\r\n\r\n",
        Verdict::Refused(400),
    ),
    (
        "a bare LF splitting a field",
        "GET / HTTP/1.1\r\nHost: a.example\r\nX-A: one\ntwo\r\n\r\n",
        Verdict::Refused(400),
    ),
    (
        "a bare CR ending the request line",
        "GET / HTTP/1.1\rHost: a.example\r\n\r\n",
        Verdict::Refused(400),
    ),
    // Lines that end in a bare LF are read as lines (RFC 9112 §2.2) and forwarded with CRLF.
    (
        "lines ending in bare LF",
        "GET / HTTP/1.1\nHost: a.example\n\n",
        Verdict::Forwarded(&[GET_ROOT]),
    ),
    // Whitespace before a field's colon, and names that are not tokens.
    (
        "a space before the colon",
        "GET / HTTP/1.1\r\nHost : a.example\r\n\r\n",
        Verdict::Refused(400),
    ),
    (
        "a space before transfer-encoding's colon",
        "POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\nabc",
        Verdict::Refused(400),
    ),
    (
        "a tab before the colon",
        "GET / HTTP/1.1\r\nHost\t: a.example\r\n\r\n",
        Verdict::Refused(400),
    ),
    (
        "a field name with a space",
        "GET / HTTP/1.1\r\nHost: a.example\r\nX A: 1\r\n\r\n",
        Verdict::Refused(400),
    ),
    (
        "a field name with an @",
        "GET / HTTP/1.1\r\nHost: a.example\r\nX@A: 1\r\n\r\n",
        Verdict::Refused(400),
    ),
    (
        "a field name with a quote",
        "GET / HTTP/1.1\r\nHost: a.example\r\n\"X\": 1\r\n\r\n",
        Verdict::Refused(400),
    ),
    (
        "a NUL in a field value",
        "GET / HTTP/1.1\r\nHost: a.example\r\nX-A: a\0b\r\n\r\n",
        Verdict::Refused(400),
    ),
    (
        "a field line without a colon",
        "GET / HTTP/1.1\r\nHost: a.example\r\nX-A\r\n\r\n",
        Verdict::Refused(400),
    ),
    // Chunk sizes and extensions.
    (
        "a chunk size that is not hex",
        "POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        Verdict::Refused(400),
    ),
    (
        "a negative chunk size",
        "POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
        Verdict::Refused(400),
    ),
    (
        "an oversized chunk size",
        "POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n",
        Verdict::Refused(400),
    ),
    (
        "a chunk size with a leading space",
        "POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n",
        Verdict::Refused(400),
    ),
    (
        "a chunk longer than its size",
        "POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n",
        Verdict::Refused(400),
    ),
    (
        "a chunk line ending in bare LF",
        "POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
        Verdict::Refused(400),
    ),
    (
        "an oversized chunk extension",
        concat!(
            "POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n5;x=",
            include_str!("smuggling/long-value.txt"),
            "\r\nhello\r\n0\r\n\r\n"
        ),
        Verdict::Refused(400),
    ),
    // A chunk extension and a trailer are dropped; the body is re-chunked.
    (
        "chunk extensions and a trailer",
        "POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n5;name=\"v;1\"\r\nhello\r\n0\r\nContent-Length: 99\r\n\r\n",
        Verdict::Forwarded(&[reads("POST / HTTP/1.1", Framing::Chunked, b"hello")]),
    ),
    // The request target.
    (
        "an absolute-form target whose authority disagrees with Host",
        "GET http://a.example/x HTTP/1.1\r\nHost: b.example\r\n\r\n",
        Verdict::Forwarded(&[reads("GET /x HTTP/1.1", Framing::None, b"")]),
    ),
    (
        "two Host fields",
        "GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
        Verdict::Refused(400),
    ),
    (
        "no Host from an HTTP/1.1 client",
        "GET / HTTP/1.1\r\n\r\n",
        Verdict::Refused(400),
    ),
    (
        "a space inside the target",
        "GET /a b HTTP/1.1\r\nHost: a.example\r\n\r\n",
        Verdict::Refused(400),
    ),
    (
        "HTTP/2.0 on the request line",
        "GET / HTTP/2.0\r\nHost: a.example\r\n\r\n",
        Verdict::Refused(505),
    ),
    // Pipelining, and bodies where a request could hide.
    (
        "three pipelined requests",
        "GET / HTTP/1.1\r\nHost: a.example\r\n\r\n\
         POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5\r\n\r\nhello\
         GET / HTTP/1.1\r\nHost: a.example\r\n\r\n",
        Verdict::Forwarded(&[
            GET_ROOT,
            reads("POST / HTTP/1.1", Framing::Length(5), b"hello"),
            GET_ROOT,
        ]),
    ),
    (
        "a request after an empty chunked body is a request of its own",
        "POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n\
         GET /next HTTP/1.1\r\nHost: a.example\r\n\r\n",
        Verdict::Forwarded(&[
            reads("POST / HTTP/1.1", Framing::Chunked, b""),
            reads("GET /next HTTP/1.1", Framing::None, b""),
        ]),
    ),
    (
        "a request inside a body stays body",
        "POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 41\r\n\r\n\
         GET /inside HTTP/1.1\r\nHost: a.example\r\n\r\n",
        Verdict::Forwarded(&[reads(
            "POST / HTTP/1.1",
            Framing::Length(41),
            b"GET /inside HTTP/1.1\r\nHost: a.example\r\n\r\n",
        )]),
    ),
    (
        "a body on a GET",
        "GET / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5\r\n\r\nhello\
         GET / HTTP/1.1\r\nHost: a.example\r\n\r\n",
        Verdict::Forwarded(&[
            reads("GET / HTTP/1.1", Framing::Length(5), b"hello"),
            GET_ROOT,
        ]),
    ),
    (
        "HTTP/1.0 keep-alive",
        "GET /one HTTP/1.0\r\nHost: a.example\r\nConnection: keep-alive\r\n\r\n\
         GET /two HTTP/1.0\r\nHost: a.example\r\nConnection: keep-alive\r\n\r\n",
        Verdict::Forwarded(&[
            reads("GET /one HTTP/1.1", Framing::None, b""),
            reads("GET /two HTTP/1.1", Framing::None, b""),
        ]),
    ),
    (
        "Host named in Connection stays",
        "GET / HTTP/1.1\r\nHost: a.example\r\nConnection: host\r\n\r\n",
        Verdict::Forwarded(&[GET_ROOT]),
    ),
    (
        "a hop-by-hop field named by Connection is dropped",
        "GET / HTTP/1.1\r\nHost: a.example\r\nConnection: x-secret\r\nX-Secret: 1\r\nUpgrade: h2c\r\n\r\n",
        Verdict::Forwarded(&[GET_ROOT]),
    ),
];

/// Fields that describe the connection to the client, never forwarded.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "x-secret",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_refused_or_reaches_the_backend_one_way() {
    let recorder = Recorder::start().await;
    let config = format!("listen = \"127.0.0.1:0\"\n{}", recorder.toml());
    let vane = Vane::start(&config).await.unwrap();
    for (name, bytes, verdict) in CASES {
        // Shown with a failure, which may be a read that timed out rather than an assertion.
        eprintln!("case: {name}");
        let before = recorder.requests().len();
        let mut client = RawClient::connect(vane.address).await;
        client.send(bytes.as_bytes()).await;
        match verdict {
            Verdict::Refused(status) => {
                let method = bytes.split(' ').next().unwrap_or_default();
                let reply = client.response(method).await;
                assert_eq!(reply.status(), *status, "{name}: {reply:?}");
                assert!(client.closed().await, "{name}: the connection closes");
                let after = recorder.requests();
                assert_eq!(
                    after.len(),
                    before,
                    "{name}: nothing reached the backend as a request: {:?}",
                    &after[before..]
                );
            }
            Verdict::Forwarded(expected) => {
                for _ in expected.iter() {
                    let reply = client.response("GET").await;
                    assert_eq!(reply.status(), 200, "{name}: {reply:?}");
                    assert_eq!(reply.text(), "ok", "{name}: the backend answered");
                }
                let received = recorder.requests();
                assert_eq!(
                    received.len() - before,
                    expected.len(),
                    "{name}: {:?}",
                    &received[before..]
                );
                for (got, want) in received[before..].iter().zip(expected.iter()) {
                    check(name, got, want);
                }
            }
        }
    }
    vane.stop().await;
}

/// Fails unless the backend read `got` as `want`: request line, Host, framing and body, with
/// no hop-by-hop field.
fn check(name: &str, got: &Forwarded, want: &Reads) {
    assert_eq!(got.request_line, want.line, "{name}: {got:?}");
    assert_eq!(got.value("host"), Some(want.host), "{name}: {got:?}");
    match want.framing {
        Framing::None => {
            assert_eq!(got.value("content-length"), None, "{name}: {got:?}");
            assert_eq!(got.value("transfer-encoding"), None, "{name}: {got:?}");
        }
        Framing::Length(length) => {
            let length = length.to_string();
            assert_eq!(got.value("content-length"), Some(length.as_str()), "{name}");
            assert_eq!(got.value("transfer-encoding"), None, "{name}: {got:?}");
        }
        Framing::Chunked => {
            assert_eq!(got.value("transfer-encoding"), Some("chunked"), "{name}");
            assert_eq!(got.value("content-length"), None, "{name}: {got:?}");
        }
    }
    assert_eq!(got.body, want.body, "{name}: the body");
    for field in HOP_BY_HOP {
        assert_eq!(got.value(field), None, "{name}: {field} is hop-by-hop");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_continue_is_answered_by_vane_and_not_forwarded() {
    let recorder = Recorder::start().await;
    let config = format!("listen = \"127.0.0.1:0\"\n{}", recorder.toml());
    let vane = Vane::start(&config).await.unwrap();
    let mut client = RawClient::connect(vane.address).await;
    client
        .send(b"PUT /up HTTP/1.1\r\nHost: a.example\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        .await;
    let interim = client.response("PUT").await;
    assert_eq!(interim.status(), 100, "{interim:?}");
    client.send(b"hello").await;
    let reply = client.response("PUT").await;
    assert_eq!(reply.status(), 200, "{reply:?}");
    let received = recorder.requests();
    assert_eq!(received.len(), 1, "{received:?}");
    let got = &received[0];
    check(
        "expect",
        got,
        &reads("PUT /up HTTP/1.1", Framing::Length(5), b"hello"),
    );
    assert_eq!(got.value("expect"), None, "vane answered the expectation");
    vane.stop().await;
}
