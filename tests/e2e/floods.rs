//! Floods and slow peers over HTTP/1.1: a head that never ends, a body that stalls, a body too
//! large, too many header fields, a client that never reads its response, and idle connections
//! filling `max_connections`. For each, vane answers or closes that client, counts the fault in
//! `/metrics`, and goes on serving everyone else (a flood of ordinary clients runs beside the
//! hostile one and must see no failure). Each test sets the limit it tests short; what it checks
//! is what happens at the limit, never how long it took.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use vane::state::ClientFault;
use vane_e2e::backend::backend;
use vane_e2e::load::Flood;
use vane_e2e::proxy::config_for;
use vane_e2e::raw::RawClient;
use vane_e2e::{Backend, Vane, wait_until};

const GET: &str = "GET / HTTP/1.1\r\nhost: a\r\n\r\n";

/// A config for vane in front of `a` with these `[proxy]` settings and an admin listener for
/// `/metrics`. Each test shortens only the limit it tests: with `header_read_timeout` short,
/// an ordinary client whose first bytes came late on a loaded machine would be closed too.
fn config_with(a: &Backend, proxy: &str) -> String {
    config_for(
        &[a],
        &format!("admin = \"127.0.0.1:0\"\n[proxy]\n{proxy}\n"),
    )
}

/// The count of `fault` in vane's `/metrics`.
async fn faults(vane: &Vane, fault: &str) -> f64 {
    let key = format!("vane_client_faults_total{{fault={fault}}}");
    vane.metrics()
        .await
        .get(&key)
        .copied()
        .unwrap_or_else(|| panic!("no {key}"))
}

/// Runs `hostile` while ordinary clients load vane; fails if any of theirs was not a 200.
async fn beside_a_flood<F: std::future::Future<Output = ()>>(vane: &Vane, hostile: F) {
    let flood = Flood::start(vane, 2);
    hostile.await;
    let tally = flood.stop().await;
    assert!(tally.sent() > 0, "the flood sent requests: {tally:?}");
    assert_eq!(tally.failed(), 0, "everyone else was served: {tally:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_that_never_ends_gets_408() {
    let a = backend("a").start().await;
    let vane = Vane::start(&config_with(&a, "header_read_timeout = \"300ms\""))
        .await
        .unwrap();
    beside_a_flood(&vane, async {
        let mut slow = RawClient::connect(vane.address).await;
        slow.send(b"GET / HTTP/1.1\r\nhost: a\r\nx-slow: ").await;
        let reply = slow.response("GET").await;
        assert_eq!(reply.status(), 408, "{reply:?}");
        assert!(slow.closed().await);
    })
    .await;
    assert_eq!(faults(&vane, "header_timeout").await, 1.0);
    vane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stalls_gets_408() {
    let a = backend("a").start().await;
    let vane = Vane::start(&config_with(&a, "body_read_timeout = \"300ms\""))
        .await
        .unwrap();
    beside_a_flood(&vane, async {
        let mut slow = RawClient::connect(vane.address).await;
        slow.send(b"POST /echo HTTP/1.1\r\nhost: a\r\ncontent-length: 10\r\n\r\nabc")
            .await;
        let reply = slow.response("POST").await;
        assert_eq!(reply.status(), 408, "{reply:?}");
        assert_eq!(reply.header("connection"), Some("close"));
        assert!(slow.closed().await);
    })
    .await;
    assert_eq!(faults(&vane, "body_timeout").await, 1.0);
    vane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_max_body_size_gets_413() {
    let a = backend("a").start().await;
    let vane = Vane::start(&config_with(&a, "max_body_size = \"1KiB\""))
        .await
        .unwrap();
    // Announced: refused before anything is forwarded.
    let mut announced = RawClient::connect(vane.address).await;
    announced
        .send(b"POST /echo HTTP/1.1\r\nhost: a\r\ncontent-length: 2000\r\n\r\n")
        .await;
    let reply = announced.response("POST").await;
    assert_eq!(reply.status(), 413, "{reply:?}");
    assert_eq!(a.hits(), 0, "nothing was forwarded");
    // Chunked: cut off once it passes the limit.
    let mut chunked = RawClient::connect(vane.address).await;
    let chunk = format!("200\r\n{}\r\n", "x".repeat(0x200));
    chunked
        .send(b"POST /echo HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n")
        .await;
    for _ in 0..3 {
        chunked.send(chunk.as_bytes()).await;
    }
    let reply = chunked.response("POST").await;
    assert_eq!(reply.status(), 413, "{reply:?}");
    // Within the limit, a body goes through.
    let mut small = RawClient::connect(vane.address).await;
    let body = "y".repeat(1024);
    let reply = small
        .exchange(&format!(
            "POST /echo HTTP/1.1\r\nhost: a\r\ncontent-length: 1024\r\n\r\n{body}"
        ))
        .await;
    assert_eq!(reply.status(), 200, "{reply:?}");
    assert_eq!(reply.text(), body);
    assert_eq!(faults(&vane, "body_too_large").await, 2.0);
    vane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_header_fields_get_431() {
    let a = backend("a").start().await;
    let vane = Vane::start(&config_with(&a, "")).await.unwrap();
    beside_a_flood(&vane, async {
        let fields: String = (0..200).map(|i| format!("x-{i}: 1\r\n")).collect();
        let mut client = RawClient::connect(vane.address).await;
        let reply = client
            .exchange(&format!("GET / HTTP/1.1\r\nhost: a\r\n{fields}\r\n"))
            .await;
        assert_eq!(reply.status(), 431, "{reply:?}");
        assert!(client.closed().await);
    })
    .await;
    assert_eq!(faults(&vane, "head_too_large").await, 1.0);
    vane.stop().await;
}

/// A backend that answers every request with a body of `size` bytes, written as fast as its
/// socket takes them, and counts the bytes its socket took.
async fn streaming_backend(size: u64) -> (String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let written = Arc::new(AtomicU64::new(0));
    let counted = written.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut head = [0u8; 4096];
                let _ = stream.read(&mut head).await;
                let start = format!("HTTP/1.1 200 OK\r\ncontent-length: {size}\r\n\r\n");
                if stream.write_all(start.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b'x'; 64 << 10];
                let mut left = size;
                while left > 0 {
                    let part = &chunk[..chunk.len().min(left as usize)];
                    if stream.write_all(part).await.is_err() {
                        return;
                    }
                    counted.fetch_add(part.len() as u64, Ordering::SeqCst);
                    left -= part.len() as u64;
                }
            });
        }
    });
    (address, written)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_closed_and_holds_little() {
    const SIZE: u64 = 256 << 20;
    let (address, written) = streaming_backend(SIZE).await;
    let config = format!(
        "listen = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n[proxy]\nsend_timeout = \"300ms\"\n[[backends]]\nname = \"big\"\naddress = \"{address}\"\n"
    );
    let vane = Vane::start(&config).await.unwrap();
    let mut stuck = RawClient::connect(vane.address).await;
    stuck.send(GET.as_bytes()).await;
    // Never read: vane's writes stall, then send_timeout closes the connection.
    let connections = vane.state().client_connections();
    wait_until("the send timeout", || {
        connections.faults(ClientFault::SendTimeout) > 0
    })
    .await;
    assert_eq!(faults(&vane, "send_timeout").await, 1.0);
    // What the backend managed to send is what the sockets and vane's buffers could hold:
    // vane stopped reading from the backend when the client stopped reading from vane.
    let sent = written.load(Ordering::SeqCst);
    assert!(
        sent < 32 << 20,
        "the backend sent {sent} bytes of {SIZE} to a client that read none"
    );
    vane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_make_room_for_new_clients() {
    let a = backend("a").start().await;
    let config = config_for(
        &[&a],
        "admin = \"127.0.0.1:0\"\n[proxy]\nmax_connections = 3",
    );
    let vane = Vane::start(&config).await.unwrap();
    // The admin scrape takes no proxy slot; three idle keep-alive clients take all of them.
    // Each waits until vane counts it idle, so that they are idle in this order.
    let connections = vane.state().client_connections();
    let mut first = RawClient::connect(vane.address).await;
    assert_eq!(first.exchange(GET).await.status(), 200);
    wait_until("1 idle", || connections.idle_now() == 1).await;
    let mut second = RawClient::connect(vane.address).await;
    assert_eq!(second.exchange(GET).await.status(), 200);
    wait_until("2 idle", || connections.idle_now() == 2).await;
    let mut third = RawClient::connect(vane.address).await;
    assert_eq!(third.exchange(GET).await.status(), 200);
    wait_until("3 idle", || connections.idle_now() == 3).await;

    // A new client is served: the connection idle the longest gave its slot up.
    let mut fourth = RawClient::connect(vane.address).await;
    assert_eq!(fourth.exchange(GET).await.status(), 200);
    assert!(
        first.closed().await,
        "the longest idle connection was closed"
    );
    assert_eq!(second.exchange(GET).await.status(), 200);
    assert_eq!(third.exchange(GET).await.status(), 200);
    let metrics = vane.metrics().await;
    assert_eq!(metrics["vane_client_connections_evicted_total{}"], 1.0);
    assert_eq!(metrics["vane_client_connections_refused_total{}"], 0.0);
    vane.stop().await;
}
