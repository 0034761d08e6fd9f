//! A plugin that fails on every pick never costs a client its request: the built-in
//! round-robin serves it, with the exact spread it would give alone, and the failure is counted
//! by reason. (Under load, and paired with well-behaved twins: `hostile`.)

use vane::balancer::FallbackReason;
use vane_e2e::Vane;
use vane_e2e::backend::backend;
use vane_e2e::proxy::{config_for, policy};

use super::{counts, tally};

async fn every_request_served_despite(mode: &str, reason: FallbackReason) {
    let a = backend("a").start().await;
    let b = backend("b").start().await;
    let vane = Vane::start(&config_for(&[&a, &b], &policy("misbehave", mode)))
        .await
        .unwrap();
    let served = tally(&vane.client(), 40).await;
    assert_eq!(served, counts(&[("a", 20), ("b", 20)]), "{mode}");
    // A failure opens the breaker after 5 in a row; the rest skip the plugin.
    let skipped = vane.fallbacks(FallbackReason::CircuitOpen);
    assert_eq!(vane.fallbacks(reason) + skipped, 40, "{mode}");
    if reason.is_failure() {
        assert!(vane.fallbacks(reason) >= 5, "{mode}");
    } else {
        assert_eq!(skipped, 0, "{mode}: declining opened the breaker");
    }
    vane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_traps_falls_back() {
    every_request_served_despite("trap", FallbackReason::Trap).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_declines_falls_back() {
    every_request_served_despite("decline", FallbackReason::Declined).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_answering_out_of_range_falls_back() {
    every_request_served_despite("out-of-range", FallbackReason::BadIndex).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_loops_is_stopped_at_its_deadline() {
    every_request_served_despite("loop", FallbackReason::Deadline).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_sleeps_on_a_wasi_clock_is_abandoned() {
    every_request_served_despite("sleep", FallbackReason::Deadline).await;
}

/// The paired well-behaved runs: the same plugin, obeying, is never replaced, whether it is
/// silent or writes to stdout and stderr (which WASI lets it do; vane logs the lines).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_well_behaved_plugin_is_not_a_fallback() {
    for mode in ["behave", "print"] {
        let a = backend("a").start().await;
        let b = backend("b").start().await;
        let vane = Vane::start(&config_for(&[&a, &b], &policy("misbehave", mode)))
            .await
            .unwrap();
        assert_eq!(
            tally(&vane.client(), 10).await,
            counts(&[("a", 10)]),
            "{mode}"
        );
        for reason in FallbackReason::ALL {
            assert_eq!(vane.fallbacks(reason), 0, "{mode}: {reason:?}");
        }
    }
}
