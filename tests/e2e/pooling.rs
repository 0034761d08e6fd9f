//! Connections to backends are kept alive and reused, and a connection the backend has closed
//! (idle timeout, `Connection: close`) costs the client nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use vane::clock::ManualClock;
use vane_e2e::Vane;
use vane_e2e::backend::backend;
use vane_e2e::proxy::config_for;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_requests_share_one_connection_to_the_backend() {
    let a = backend("a").start().await;
    let vane = Vane::start(&config_for(&[&a], "")).await.unwrap();
    let client = vane.client();
    for round in 0..30 {
        // HEAD answers carry no body, so their connection must go back to the pool unread.
        let method = if round % 3 == 0 {
            Method::HEAD
        } else {
            Method::GET
        };
        let reply = client.send(method, "/", &[], Bytes::new()).await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let echoed = client
        .send(Method::POST, "/echo", &[], Bytes::from_static(b"ping"))
        .await
        .unwrap();
    assert_eq!(echoed.text(), "ping");
    assert_eq!(a.hits(), 31);
    assert_eq!(
        a.connections(),
        1,
        "31 requests one after another need one connection"
    );
}

/// How a [`RawBackend`] treats its connections.
#[derive(Debug, Clone, Copy)]
enum Keep {
    /// Answers every request on a connection, until vane closes it.
    Alive,
    /// Answers one request with `Connection: close`, then closes.
    CloseAnnounced,
    /// Answers one request, then closes without a word this long after: a backend whose
    /// keep-alive timeout is shorter than vane's.
    CloseSilently(Duration),
}

/// A raw HTTP/1.1 backend that answers `connection N` on its Nth connection and counts the
/// connections it accepted and the ones vane closed.
struct RawBackend {
    address: String,
    accepted: Arc<AtomicUsize>,
    closed_by_vane: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl RawBackend {
    async fn start(keep: Keep) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let closed_by_vane = Arc::new(AtomicUsize::new(0));
        let (counted, closed) = (accepted.clone(), closed_by_vane.clone());
        let task = tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::spawn(serve(stream, n, keep, closed.clone()));
            }
        });
        RawBackend {
            address,
            accepted,
            closed_by_vane,
            task,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn closed_by_vane(&self) -> usize {
        self.closed_by_vane.load(Ordering::SeqCst)
    }

    fn config(&self, extra: &str) -> String {
        format!(
            "listen = \"127.0.0.1:0\"\n{extra}\n[[backends]]\nname = \"x\"\naddress = \"{}\"\n",
            self.address
        )
    }
}

impl Drop for RawBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut stream: TcpStream, n: usize, keep: Keep, closed_by_vane: Arc<AtomicUsize>) {
    let mut buffer = [0u8; 4096];
    loop {
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => {
                    closed_by_vane.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                Ok(read) => head.extend_from_slice(&buffer[..read]),
            }
        }
        let body = format!("connection {n}");
        let close = match keep {
            Keep::CloseAnnounced => "connection: close\r\n",
            _ => "",
        };
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n{close}\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(response.as_bytes()).await;
        match keep {
            Keep::Alive => continue,
            Keep::CloseAnnounced => return,
            Keep::CloseSilently(linger) => {
                tokio::time::sleep(linger).await;
                return;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_closes_its_connections_costs_no_request() {
    // The silent close comes 20 ms after the answer; the next request waits 300 ms, so that even
    // a loaded machine has closed the connection by then (the close racing a request is the
    // race every keep-alive proxy has, not what this tests).
    for (keep, gap) in [
        (Keep::CloseAnnounced, Duration::ZERO),
        (
            Keep::CloseSilently(Duration::from_millis(20)),
            Duration::from_millis(300),
        ),
    ] {
        let backend = RawBackend::start(keep).await;
        let vane = Vane::start(&backend.config("")).await.unwrap();
        let client = vane.client();
        for n in 1..=5 {
            let reply = client.get("/").await.unwrap();
            assert_eq!(
                (reply.status.as_u16(), reply.text()),
                (200, format!("connection {n}")),
                "{keep:?}: request {n} goes out on a new connection"
            );
            tokio::time::sleep(gap).await;
        }
        assert_eq!(backend.accepted(), 5);
        vane.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vane_closes_connections_idle_past_the_upstream_idle_timeout() {
    let backend = RawBackend::start(Keep::Alive).await;
    let config = backend.config("[proxy]\nupstream_idle_timeout = \"200ms\"");
    // vane's clock moves only when this test moves it; the sweep looks every second.
    let clock = ManualClock::new();
    let vane = Vane::start_with_clock(&config, clock.clock())
        .await
        .unwrap();
    let client = vane.client();
    for _ in 0..3 {
        assert_eq!(client.get("/").await.unwrap().text(), "connection 1");
    }
    // A sweep comes and goes while the connection is idle for less than the timeout.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        backend.closed_by_vane(),
        0,
        "kept while idle for less than 200ms"
    );
    clock.advance(Duration::from_millis(200));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while backend.closed_by_vane() == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        backend.closed_by_vane(),
        1,
        "closed by the sweep once idle 200ms"
    );
    assert_eq!(client.get("/").await.unwrap().text(), "connection 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_idle_past_the_timeout_is_not_reused() {
    let backend = RawBackend::start(Keep::Alive).await;
    // A long timeout, so the sweep (once per timeout) never runs during the test: what closes
    // the expired connection is the check when it is taken from the pool.
    let config = backend.config("[proxy]\nupstream_idle_timeout = \"60s\"");
    let clock = ManualClock::new();
    let vane = Vane::start_with_clock(&config, clock.clock())
        .await
        .unwrap();
    let client = vane.client();
    assert_eq!(client.get("/").await.unwrap().text(), "connection 1");
    clock.advance(Duration::from_millis(59_999));
    assert_eq!(
        client.get("/").await.unwrap().text(),
        "connection 1",
        "idle for 1 ms less than the timeout"
    );
    clock.advance(Duration::from_secs(60));
    assert_eq!(client.get("/").await.unwrap().text(), "connection 2");
    assert_eq!(backend.accepted(), 2);
}
