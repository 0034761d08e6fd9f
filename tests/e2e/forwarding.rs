//! What reaches the backend and what comes back: bodies intact, headers rewritten as a proxy
//! must, HTTP/2 clients served.

use bytes::Bytes;
use http::Method;
use vane_e2e::backend::backend;
use vane_e2e::proxy::{config_for, policy};
use vane_e2e::{Client, Vane, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_bodies_from_empty_to_8_mib_arrive_intact() {
    let a = backend("a").start().await;
    let vane = Vane::start(&config_for(&[&a], &policy("round_robin", "")))
        .await
        .unwrap();
    let client = vane.client();
    for size in [0, 1, 1000, 64 << 10, 1 << 20, 8 << 20] {
        // A pattern that is not periodic in any power of two, so a misplaced chunk shows.
        let body: Vec<u8> = (0..size).map(|i: usize| (i % 251) as u8).collect();
        let reply = client
            .send(Method::POST, "/echo", &[], Bytes::from(body.clone()))
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "size {size}");
        assert_eq!(reply.body.len(), size, "size {size}");
        assert!(reply.body == body, "size {size}: body altered");
    }
    // The guard is released when vane's side of the response ends, a moment after the client
    // has read the last byte.
    wait_until("the in-flight guard released", || vane.in_flight() == [0]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_are_dropped_and_forwarding_headers_added() {
    let a = backend("a").start().await;
    let vane = Vane::start(&config_for(&[&a], "")).await.unwrap();
    let reply = vane
        .client()
        .send(
            Method::GET,
            "/headers",
            &[
                ("host", "shop.example"),
                ("connection", "keep-alive, x-secret"),
                ("x-secret", "do not forward"),
                ("keep-alive", "timeout=5"),
                ("proxy-authorization", "Basic dmFuZTp2YW5l"),
                ("te", "trailers"),
                ("x-forwarded-for", "203.0.113.9"),
                ("x-forwarded-proto", "https"),
                ("x-kept", "yes"),
            ],
            Bytes::new(),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    let seen = reply.text();
    let has = |line: &str| seen.lines().any(|l| l == line);
    assert!(has("host: shop.example"), "Host passed through:\n{seen}");
    assert!(has("x-kept: yes"), "{seen}");
    assert!(has("x-forwarded-for: 203.0.113.9, 127.0.0.1"), "{seen}");
    assert!(has("x-forwarded-proto: http"), "{seen}");
    assert!(has("x-forwarded-host: shop.example"), "{seen}");
    for dropped in ["x-secret:", "keep-alive:", "proxy-authorization:", "te:"] {
        assert!(
            !seen.lines().any(|l| l.starts_with(dropped)),
            "{dropped} forwarded:\n{seen}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_clients_are_served_and_their_authority_becomes_host() {
    let a = backend("a").start().await;
    let vane = Vane::start(&config_for(&[&a], &policy("least_conn", "")))
        .await
        .unwrap();
    let client = Client::h2c(vane.address);
    let reply = client.get("/headers").await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.backend.as_deref(), Some("a"));
    let host = format!("host: {}", vane.address);
    assert!(reply.text().lines().any(|l| l == host), "{}", reply.text());
}
