//! Client connections at `max_connections`: a client past the limit gets a clean 503 and is
//! counted, while the connections already open go on being served, and a freed slot is used.

use std::time::Duration;

use vane_e2e::Vane;
use vane_e2e::backend::backend;
use vane_e2e::proxy::config_for;
use vane_e2e::raw::RawClient;

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

    // Both slots are held by idle keep-alive connections: the third is refused unread.
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
    assert_eq!(first.exchange(GET).await.status(), 200);
    assert_eq!(second.exchange(GET).await.status(), 200);
    assert_eq!(a.hits(), 4, "the refused client reached no backend");

    // A slot freed by a client that leaves is taken by the next one.
    drop(first);
    let connections = vane.state().client_connections();
    for _ in 0..500 {
        if connections.open_now() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(connections.open_now(), 1, "vane saw the client leave");
    let mut fourth = RawClient::connect(vane.address).await;
    assert_eq!(fourth.exchange(GET).await.status(), 200);
    assert_eq!(connections.refused_total(), 1);
}
