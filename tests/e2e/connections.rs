//! Client connections at `max_connections`: when every slot is held by a connection in the
//! middle of a request, a client past the limit gets a clean 503 and is counted, while the
//! connections already open go on being served, and a freed slot is used. (Idle connections
//! give their slot up instead: `floods.rs`.)

use vane_e2e::backend::backend;
use vane_e2e::proxy::config_for;
use vane_e2e::raw::RawClient;
use vane_e2e::{Vane, wait_until};

const GET: &str = "GET / HTTP/1.1\r\nhost: a\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_connections_a_client_gets_503_and_the_open_ones_are_served() {
    let a = backend("a").start().await;
    let config = config_for(
        &[&a],
        "admin = \"127.0.0.1:0\"\n[proxy]\nmax_connections = 2",
    );
    let vane = Vane::start(&config).await.unwrap();
    let mut first = RawClient::connect(vane.address).await;
    let mut second = RawClient::connect(vane.address).await;
    assert_eq!(first.exchange(GET).await.status(), 200);
    assert_eq!(second.exchange(GET).await.status(), 200);
    // Both start another request, and stop inside its head: neither is idle.
    let (head, end) = GET.split_at(GET.len() - 2);
    first.send(head.as_bytes()).await;
    second.send(head.as_bytes()).await;
    let connections = vane.state().client_connections();
    wait_until("both heads begun", || connections.idle_now() == 0).await;

    // Both slots are held by connections inside a request: the third is refused unread.
    let mut third = RawClient::connect(vane.address).await;
    let refused = third.response("GET").await;
    assert_eq!(refused.status(), 503, "{refused:?}");
    assert!(
        refused.text().contains("too many connections"),
        "{refused:?}"
    );
    assert_eq!(refused.header("connection"), Some("close"));
    assert!(third.closed().await);
    let metrics = vane.metrics().await;
    assert_eq!(metrics["vane_client_connections_refused_total{}"], 1.0);
    assert_eq!(metrics["vane_client_connections{}"], 2.0);

    // The open ones are still served.
    assert_eq!(first.exchange(end).await.status(), 200);
    assert_eq!(second.exchange(end).await.status(), 200);
    assert_eq!(a.hits(), 4, "the refused client reached no backend");
    assert_eq!(connections.evicted_total(), 0, "nothing idle was closed");

    // A slot freed by a client that leaves is taken by the next one.
    drop(first);
    wait_until("the client left", || connections.open_now() == 1).await;
    let mut fourth = RawClient::connect(vane.address).await;
    assert_eq!(fourth.exchange(GET).await.status(), 200);
    assert_eq!(connections.refused_total(), 1);
}
