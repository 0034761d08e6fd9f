//! What a policy learns from outcomes: through `observe`, in batches that no client waits for,
//! and through the recent counts of its states, which forget after about ten seconds.

use std::time::Duration;

use vane::clock::ManualClock;
use vane_e2e::backend::backend;
use vane_e2e::proxy::{config_for, policy};
use vane_e2e::{Client, Vane};

/// The backend that answers the next request, and its status.
async fn served(client: &Client) -> (String, u16) {
    let reply = client.get("/").await.expect("a reply");
    let backend = reply.backend.expect("served by a backend");
    (backend, reply.status.as_u16())
}

/// Sends requests until `run` in a row are served by `wanted`; fails after 10 s (a guard
/// against a hang: what is awaited happens within milliseconds, or a second for the recent
/// counts' sampler).
async fn until_served_by(client: &Client, wanted: &str, run: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut in_a_row = 0;
    loop {
        if served(client).await.0 == wanted {
            in_a_row += 1;
            if in_a_row == run {
                return;
            }
            continue;
        }
        in_a_row = 0;
        assert!(
            tokio::time::Instant::now() < deadline,
            "never served by {wanted}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_learns_from_the_outcomes_observe_hands_it() {
    let a = backend("a").status(500).start().await;
    let b = backend("b").start().await;
    let c = backend("c").start().await;
    let config = config_for(
        &[&a, &b, &c],
        &format!("admin = \"127.0.0.1:0\"\n{}", policy("misbehave", "learn")),
    );
    let vane = Vane::start(&config).await.unwrap();
    let client = vane.client();
    // Nothing learned yet: the first eligible backend, which answers 500.
    assert_eq!(served(&client).await, ("a".to_owned(), 500));
    // The outcome reaches every instance of the plugin after the response, and they all turn
    // to the next backend.
    until_served_by(&client, "b", 50).await;
    let observe = &vane.policy_json().await["observe"];
    assert!(
        observe["outcomes_delivered"].as_u64() >= Some(2),
        "{observe}"
    );
    assert_eq!(observe["outcomes_dropped"], 0, "{observe}");
    assert_eq!(observe["breaker"], "closed", "{observe}");
    vane.assert_no_fallbacks();
    vane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recent_failures_are_forgiven_after_about_ten_seconds() {
    let a = backend("a").status(500).start().await;
    let b = backend("b").start().await;
    let config = config_for(&[&a, &b], &policy("misbehave", "forgiving"));
    let manual = ManualClock::new();
    let vane = Vane::start_with_clock(&config, manual.clock())
        .await
        .unwrap();
    let client = vane.client();
    assert_eq!(served(&client).await, ("a".to_owned(), 500));
    // a failed in the last ten seconds: the plugin keeps away from it while vane's clock
    // stands still.
    for _ in 0..20 {
        assert_eq!(served(&client).await, ("b".to_owned(), 200));
    }
    // Eleven seconds later on vane's clock the failure has left the window.
    manual.advance(Duration::from_secs(11));
    until_served_by(&client, "a", 1).await;
    vane.assert_no_fallbacks();
    vane.stop().await;
}
