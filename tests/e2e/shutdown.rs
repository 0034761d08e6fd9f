//! Stopping vane in process: a request still running when the drain timeout passes has its
//! connection closed, and stopping returns without waiting for the backend; idle keep-alive
//! connections are closed at once, and a request in progress finishes with `Connection: close`.

use std::time::{Duration, Instant};

use vane_e2e::Vane;
use vane_e2e::backend::backend;
use vane_e2e::proxy::config_for;
use vane_e2e::raw::RawClient;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_still_running_after_the_drain_timeout_is_closed() {
    // The backend holds the request far longer than the test waits for anything.
    let slow = backend("slow").delay(Duration::from_secs(60)).start().await;
    let config = config_for(&[&slow], "[proxy]\ndrain_timeout = \"200ms\"");
    let vane = Vane::start(&config).await.unwrap();
    let client = vane.client();
    let request = tokio::spawn(async move { client.get("/").await });
    slow.wait_for_hits(1, Duration::from_secs(20)).await;

    let stopping = Instant::now();
    vane.stop().await;
    let took = stopping.elapsed();
    assert!(
        took < Duration::from_secs(30),
        "stopping waited {took:?} for the backend"
    );
    let reply = tokio::time::timeout(Duration::from_secs(30), request)
        .await
        .expect("the client's request ended when vane stopped")
        .unwrap();
    assert!(reply.is_err(), "the connection was closed: {reply:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_close_at_once_and_a_request_in_progress_finishes_with_close() {
    // The drain timeout is long: if stopping waited for the idle connection, it would take it.
    let slow = backend("slow")
        .delay(Duration::from_millis(500))
        .start()
        .await;
    let config = config_for(&[&slow], "[proxy]\ndrain_timeout = \"60s\"");
    let vane = Vane::start(&config).await.unwrap();
    let mut idle = RawClient::connect(vane.address).await;
    let first = idle.exchange("GET / HTTP/1.1\r\nhost: a\r\n\r\n").await;
    assert_eq!(first.status(), 200);
    let mut busy = RawClient::connect(vane.address).await;
    busy.send(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n").await;
    slow.wait_for_hits(2, Duration::from_secs(20)).await;

    let stopping = Instant::now();
    vane.stop().await;
    let took = stopping.elapsed();
    assert!(
        took < Duration::from_secs(30),
        "stopping waited {took:?} for an idle connection"
    );
    assert!(idle.closed().await, "the idle connection was closed");
    let last = busy.response("GET").await;
    assert_eq!(last.status(), 200, "the request in progress finished");
    assert_eq!(last.header("connection"), Some("close"), "{last:?}");
    assert!(busy.closed().await);
}
