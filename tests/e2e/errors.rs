//! When no backend can answer, the client gets a clear status quickly; bad requests get 4xx
//! and vane keeps serving.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use vane_e2e::backend::{backend, refusing_port};
use vane_e2e::proxy::config_for;
use vane_e2e::{Vane, wait_until};

fn one_backend_at(address: &str, extra: &str) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\n{extra}\n[[backends]]\nname = \"x\"\naddress = \"{address}\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_backend_gives_502_at_once() {
    let (_held, address) = refusing_port();
    let vane = Vane::start(&one_backend_at(&address, "")).await.unwrap();
    let started = Instant::now();
    let reply = vane.client().get("/").await.unwrap();
    assert_eq!(reply.status, 502, "{}", reply.text());
    assert!(
        reply.text().contains("could not connect"),
        "{}",
        reply.text()
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_never_accepts_gives_502_within_the_connect_timeout() {
    // A listener that never accepts, its backlog filled: further handshakes get no answer.
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let address = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(stream)) =
            tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(address)).await
        {
            fillers.push(stream);
        }
    }
    let vane = Vane::start(&one_backend_at(
        &address.to_string(),
        "[proxy]\nconnect_timeout = \"300ms\"",
    ))
    .await
    .unwrap();
    let started = Instant::now();
    let reply = vane.client().get("/").await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(reply.status, 502, "{}", reply.text());
    assert!(
        elapsed >= Duration::from_millis(250),
        "answered before the timeout: {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_slower_than_the_request_timeout_gives_504() {
    let slow = backend("slow").delay(Duration::from_secs(3)).start().await;
    let vane = Vane::start(&config_for(
        &[&slow],
        "[proxy]\nrequest_timeout = \"300ms\"",
    ))
    .await
    .unwrap();
    let started = Instant::now();
    let reply = vane.client().get("/").await.unwrap();
    assert_eq!(reply.status, 504, "{}", reply.text());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    wait_until("the timed-out request no longer in flight", || {
        vane.in_flight() == [0]
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_too_slow_to_send_its_headers_is_disconnected() {
    let a = backend("a").start().await;
    let vane = Vane::start(&config_for(
        &[&a],
        "[proxy]\nheader_read_timeout = \"300ms\"",
    ))
    .await
    .unwrap();
    let mut stream = TcpStream::connect(vane.address).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: a\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "vane kept a half-sent request open for 5 s");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(250),
        "closed after {elapsed:?}"
    );
    assert_eq!(a.hits(), 0);
    assert_eq!(
        vane.client().get("/").await.unwrap().status,
        200,
        "and it keeps serving"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_sends_nothing_is_disconnected() {
    let a = backend("a").start().await;
    let vane = Vane::start(&config_for(
        &[&a],
        "[proxy]\nheader_read_timeout = \"300ms\"",
    ))
    .await
    .unwrap();
    let mut silent = TcpStream::connect(vane.address).await.unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), silent.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "vane kept a silent connection open for 5 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_repeated_host_gets_400_and_an_absolute_uri_names_the_host() {
    let a = backend("a").start().await;
    let vane = Vane::start(&config_for(&[&a], "")).await.unwrap();
    let missing = raw_status_line(&vane, b"GET / HTTP/1.1\r\nconnection: close\r\n\r\n").await;
    assert!(missing.starts_with("HTTP/1.1 400"), "{missing:?}");
    let repeated = raw_status_line(
        &vane,
        b"GET / HTTP/1.1\r\nhost: a\r\nhost: b\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(repeated.starts_with("HTTP/1.1 400"), "{repeated:?}");
    assert_eq!(a.hits(), 0);

    let mut stream = TcpStream::connect(vane.address).await.unwrap();
    let absolute = b"GET http://shop.example/headers HTTP/1.1\r\nhost: other.example\r\nconnection: close\r\n\r\n";
    stream.write_all(absolute).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.lines().any(|l| l == "host: shop.example"),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_1_0_request_without_host_gets_one() {
    let a = backend("a").start().await;
    let vane = Vane::start(&config_for(&[&a], "")).await.unwrap();
    let mut stream = TcpStream::connect(vane.address).await.unwrap();
    stream
        .write_all(b"GET /headers HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    let host = format!("host: {}", a.address);
    assert!(answer.lines().any(|l| l == host), "{answer}");
}

/// Writes raw bytes to vane and returns the status line of its answer.
async fn raw_status_line(vane: &Vane, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(vane.address).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_oversized_requests_get_4xx_and_vane_keeps_serving() {
    let a = backend("a").start().await;
    let vane = Vane::start(&config_for(&[&a], "[proxy]\nmax_header_size = \"16KiB\""))
        .await
        .unwrap();

    let garbage = raw_status_line(&vane, b"\x16\x03\x01 this is not http\r\n\r\n").await;
    assert!(garbage.starts_with("HTTP/1.1 400"), "{garbage:?}");

    let big = format!(
        "GET / HTTP/1.1\r\nhost: a\r\nx-big: {}\r\n\r\n",
        "y".repeat(64 << 10)
    );
    let oversized = raw_status_line(&vane, big.as_bytes()).await;
    assert!(oversized.starts_with("HTTP/1.1 431"), "{oversized:?}");

    let reply = vane.client().get("/").await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(a.hits(), 1, "neither bad request reached the backend");
}
