//! vane's own HTTP/1.1 server side, seen from a raw client: bodies in chunks, pipelined
//! requests, `100 Continue`, responses streamed in chunks or up to the close, and connections
//! kept or closed exactly when they should be.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use vane_e2e::Vane;
use vane_e2e::backend::{answering, backend, refusing_port};
use vane_e2e::proxy::config_for;
use vane_e2e::raw::RawClient;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_upload_arrives_whole_and_the_connection_serves_again() {
    let a = backend("a").start().await;
    let vane = Vane::start(&config_for(&[&a], "")).await.unwrap();
    let mut client = RawClient::connect(vane.address).await;
    let upload = "POST /echo HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n\
                  5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: t\r\n\r\n";
    let reply = client.exchange(upload).await;
    assert_eq!(reply.status(), 200, "{reply:?}");
    assert_eq!(reply.text(), "hello world");
    let again = client.exchange("GET / HTTP/1.1\r\nhost: a\r\n\r\n").await;
    assert_eq!(
        again.status(),
        200,
        "the same connection serves the next request"
    );
    assert_eq!(a.hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order() {
    let a = backend("a").start().await;
    let vane = Vane::start(&config_for(&[&a], "")).await.unwrap();
    let mut client = RawClient::connect(vane.address).await;
    client
        .send(
            b"POST /echo HTTP/1.1\r\nhost: a\r\ncontent-length: 3\r\n\r\none\
              GET /headers HTTP/1.1\r\nhost: second\r\n\r\n\
              POST /echo HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\n\r\nthree",
        )
        .await;
    assert_eq!(client.response("POST").await.text(), "one");
    let second = client.response("GET").await;
    assert!(second.text().contains("host: second"), "{second:?}");
    assert_eq!(client.response("POST").await.text(), "three");
    assert_eq!(a.hits(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_continue_gets_100_before_the_body_is_sent() {
    let a = backend("a").start().await;
    let vane = Vane::start(&config_for(&[&a], "")).await.unwrap();
    let mut client = RawClient::connect(vane.address).await;
    client
        .send(
            b"POST /echo HTTP/1.1\r\nhost: a\r\nexpect: 100-continue\r\ncontent-length: 5\r\n\r\n",
        )
        .await;
    let interim = client.read_through(b"\r\n\r\n").await;
    assert_eq!(interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    client.send(b"hello").await;
    let reply = client.response("POST").await;
    assert_eq!((reply.status(), reply.text().as_str()), (200, "hello"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_vane_never_read_closes_the_connection() {
    // The backend refuses connections, so vane answers 502 without reading the body: the
    // bytes left on the connection must never be read as a request.
    let (_held, address) = refusing_port();
    let config =
        format!("listen = \"127.0.0.1:0\"\n[[backends]]\nname = \"x\"\naddress = \"{address}\"\n");
    let vane = Vane::start(&config).await.unwrap();
    let mut client = RawClient::connect(vane.address).await;
    let smuggled = "GET /smuggled HTTP/1.1\r\nhost: a\r\n\r\n";
    let request = format!(
        "POST / HTTP/1.1\r\nhost: a\r\nexpect: 100-continue\r\ncontent-length: {}\r\n\r\n",
        smuggled.len()
    );
    let reply = client.exchange(&request).await;
    assert_eq!(reply.status(), 502, "{reply:?}");
    assert_eq!(reply.header("connection"), Some("close"), "{reply:?}");
    client.send(smuggled.as_bytes()).await;
    assert!(
        client.closed().await,
        "the connection is closed, not read on"
    );
}

/// A backend that answers every request with a body streamed in chunks, and no length.
async fn chunked_backend() -> String {
    answering(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        .await
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_response_is_chunked_for_1_1_and_runs_to_the_close_for_1_0() {
    let address = chunked_backend().await;
    let config =
        format!("listen = \"127.0.0.1:0\"\n[[backends]]\nname = \"x\"\naddress = \"{address}\"\n");
    let vane = Vane::start(&config).await.unwrap();

    let mut client = RawClient::connect(vane.address).await;
    let reply = client.exchange("GET / HTTP/1.1\r\nhost: a\r\n\r\n").await;
    assert_eq!(
        reply.header("transfer-encoding"),
        Some("chunked"),
        "{reply:?}"
    );
    assert_eq!(reply.text(), "hello world");
    let again = client.exchange("GET / HTTP/1.1\r\nhost: a\r\n\r\n").await;
    assert_eq!(
        again.text(),
        "hello world",
        "kept alive after a chunked response"
    );

    let mut old = RawClient::connect(vane.address).await;
    let reply = old
        .exchange("GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n")
        .await;
    assert!(reply.status_line.starts_with("HTTP/1.0 200"), "{reply:?}");
    assert_eq!(reply.header("transfer-encoding"), None, "{reply:?}");
    assert_eq!(reply.text(), "hello world", "delimited by the close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_1_0_keep_alive_is_honoured_and_head_gets_no_body() {
    let a = backend("a").start().await;
    let vane = Vane::start(&config_for(&[&a], "")).await.unwrap();
    let mut client = RawClient::connect(vane.address).await;
    let first = client
        .exchange("GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n")
        .await;
    assert_eq!(first.header("connection"), Some("keep-alive"), "{first:?}");
    assert_eq!(first.text(), "a");
    let head = client
        .exchange("HEAD / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n")
        .await;
    assert_eq!(head.status(), 200);
    assert!(head.body.is_empty());
    let last = client.exchange("GET / HTTP/1.0\r\n\r\n").await;
    assert_eq!(last.text(), "a");
    assert!(client.closed().await, "HTTP/1.0 without keep-alive closes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let a = backend("a").start().await;
    let vane = Vane::start(&config_for(&[&a], "[proxy]\nidle_timeout = \"300ms\""))
        .await
        .unwrap();
    let mut client = RawClient::connect(vane.address).await;
    let reply = client.exchange("GET / HTTP/1.1\r\nhost: a\r\n\r\n").await;
    assert_eq!(reply.status(), 200);
    let idle_from = Instant::now();
    assert!(
        client.closed().await,
        "vane kept an idle connection past its timeout"
    );
    let idle = idle_from.elapsed();
    assert!(idle >= Duration::from_millis(250), "closed after {idle:?}");
}

/// A backend that answers each request at once, before reading its body, then reads the body
/// (by its Content-Length) and drops it, as nginx does with a body it does not need; the
/// connection stays open for the next request.
async fn early_answering_backend() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let end = loop {
                        if let Some(at) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            break at + 4;
                        }
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&seen[..end]).to_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|line| line.strip_prefix("content-length:"))
                        .map_or(0, |value| value.trim().parse().unwrap_or(0));
                    seen.drain(..end);
                    if stream
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .await
                        .is_err()
                    {
                        return;
                    }
                    while seen.len() < length {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&chunk[..n]),
                        }
                    }
                    seen.drain(..length);
                }
            });
        }
    });
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_answering_before_the_body_ends_leaves_no_connection_stuck_in_the_pool() {
    // The backend answers before it reads the body, and this client sends only part of its
    // body, then stalls: the connection to the backend is still sending it. It must not be
    // pooled, or the next request on it would wait for the stalled client until the request
    // timeout.
    let address = early_answering_backend().await;
    let config = format!(
        "listen = \"127.0.0.1:0\"\n[proxy]\nrequest_timeout = \"60s\"\n\
         [[backends]]\nname = \"x\"\naddress = \"{address}\"\n"
    );
    let vane = Vane::start(&config).await.unwrap();
    let mut stalled = RawClient::connect(vane.address).await;
    stalled
        .send(b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 1000000\r\n\r\npartial")
        .await;
    let reply = stalled.response("POST").await;
    assert_eq!(reply.status(), 200, "{reply:?}");
    assert_eq!(reply.header("connection"), Some("close"), "{reply:?}");
    for _ in 0..3 {
        let next = tokio::time::timeout(Duration::from_secs(30), vane.client().get("/"))
            .await
            .expect("the next request is not stuck behind the stalled body")
            .unwrap();
        assert_eq!(next.status, 200);
    }
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gone_mid_upload_frees_the_backend_connection_its_answer_streams_on() {
    // The backend answers before it reads the body and streams its answer without an end; the
    // client sends part of its body, reads the start of the answer and goes away. The backend
    // holds half a request it may wait on for ever: vane must close that connection, not wait
    // for an answer nobody will read.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (closed, mut backend_saw_close) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut seen = Vec::new();
        let mut chunk = [0u8; 4096];
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&chunk[..n]),
            }
        }
        stream
            .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
            .await
            .unwrap();
        // Read (and drop) whatever comes, until vane closes the connection.
        while matches!(stream.read(&mut chunk).await, Ok(n) if n > 0) {}
        let _ = closed.send(());
    });
    let config = format!(
        "listen = \"127.0.0.1:0\"\n[proxy]\nrequest_timeout = \"60s\"\n\
         [[backends]]\nname = \"x\"\naddress = \"{address}\"\n"
    );
    let vane = Vane::start(&config).await.unwrap();
    let mut client = RawClient::connect(vane.address).await;
    client
        .send(b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 1000000\r\n\r\npartial")
        .await;
    let start = client.read_through(b"first\r\n").await;
    assert!(start.starts_with(b"HTTP/1.1 200"), "{start:?}");
    assert!(
        tokio::time::timeout(Duration::from_secs(1), &mut backend_saw_close)
            .await
            .is_err(),
        "the backend's connection stays open while the client is there"
    );
    drop(client);
    tokio::time::timeout(Duration::from_secs(30), backend_saw_close)
        .await
        .expect("vane closed the backend's connection once the client had gone")
        .unwrap();
}

/// A config with the one backend at `address`.
fn only_backend(address: &str) -> String {
    format!("listen = \"127.0.0.1:0\"\n[[backends]]\nname = \"x\"\naddress = \"{address}\"\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_length_the_backends_connection_field_names_is_still_told_to_the_client() {
    // `Connection: content-length` is a smuggling probe (and a broken backend's habit): the
    // field goes, but the client must still be told the length, and the connection serve on.
    let address = answering(
        b"HTTP/1.1 200 OK\r\nConnection: content-length\r\nContent-Length: 5\r\n\r\nhello",
    )
    .await
    .to_string();
    let vane = Vane::start(&only_backend(&address)).await.unwrap();
    let mut client = RawClient::connect(vane.address).await;
    for _ in 0..2 {
        client.send(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n").await;
        let reply = tokio::time::timeout(Duration::from_secs(10), client.response("GET"))
            .await
            .expect("a framed answer, not one that runs to the close");
        assert_eq!(reply.status(), 200, "{reply:?}");
        assert_eq!(reply.header("content-length"), Some("5"), "{reply:?}");
        assert_eq!(reply.text(), "hello");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_content_length_list_reaches_the_client_as_its_one_value() {
    let address = answering(b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\nX-Kept: 1\r\n\r\nhello")
        .await
        .to_string();
    let vane = Vane::start(&only_backend(&address)).await.unwrap();
    let mut client = RawClient::connect(vane.address).await;
    client.send(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n").await;
    let reply = client.response("GET").await;
    assert_eq!(reply.status(), 200, "{reply:?}");
    let lengths: Vec<&String> = reply
        .headers
        .iter()
        .filter(|line| line.starts_with("content-length:"))
        .collect();
    assert_eq!(lengths, ["content-length: 5"], "{reply:?}");
    assert_eq!(reply.header("x-kept"), Some("1"));
    assert_eq!(reply.text(), "hello");
}
