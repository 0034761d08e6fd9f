//! Stopping vane in process: a request still running when the drain timeout passes has its
//! connection closed, and stopping returns without waiting for the backend.

use std::time::{Duration, Instant};

use vane_e2e::Vane;
use vane_e2e::backend::backend;
use vane_e2e::proxy::config_for;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_still_running_after_the_drain_timeout_is_closed() {
    // The backend holds the request far longer than the test waits for anything.
    let slow = backend("slow").delay(Duration::from_secs(60)).start().await;
    let config = config_for(&[&slow], "[proxy]\ndrain_timeout = \"200ms\"");
    let vane = Vane::start(&config).await.unwrap();
    let client = vane.client();
    let request = tokio::spawn(async move { client.get("/").await });
    let waiting = Instant::now();
    while slow.hits() == 0 {
        assert!(
            waiting.elapsed() < Duration::from_secs(20),
            "the request never arrived"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

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
