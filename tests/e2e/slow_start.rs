//! Slow start: a backend that returns to rotation or joins the set is offered a share of the
//! requests that grows over `slow_start`, under the built-in round-robin and every shipped
//! plugin alike. vane's clock moves only when a test moves it, so the shares do not depend on
//! how fast the machine runs the requests.

use std::time::Duration;

use vane::clock::ManualClock;
use vane_e2e::backend::backend;
use vane_e2e::files::{scratch_folder, write_file};
use vane_e2e::proxy::policy;
use vane_e2e::{Backend, Vane, wait_until};

use super::tally;

/// Requests per round: 200 per backend of three, for the share to be read off them.
const ROUND: usize = 600;

/// Config text: admin API, `slow_start = "30s"`, `extra` (a `[policy]` or `[health]` table),
/// then `backends`.
fn config(extra: &str, backends: &[&Backend]) -> String {
    let mut text =
        format!("listen = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\nslow_start = \"30s\"\n{extra}");
    for backend in backends {
        text.push_str(&backend.toml(1));
    }
    text
}

/// `/backends`' `slow_start_share` of the backend named `name`.
async fn share_shown(vane: &Vane, name: &str) -> serde_json::Value {
    let all = vane.backends_json().await;
    let backend = all["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == name)
        .unwrap_or_else(|| panic!("no backend {name} in {all}"));
    backend["slow_start_share"].clone()
}

/// How many of a round `name` served at the slow start's start (10 %), halfway (50 %) and
/// after it (all), with vane's clock moved by `clock` between rounds.
async fn rounds(vane: &Vane, clock: &ManualClock, name: &str) -> [usize; 3] {
    let mut served = [0; 3];
    for (round, shown) in [(0, Some(0.1)), (1, Some(0.5)), (2, None)] {
        assert_eq!(
            share_shown(vane, name).await.as_f64(),
            shown,
            "round {round}"
        );
        served[round] = tally(&vane.client(), ROUND)
            .await
            .get(name)
            .copied()
            .unwrap_or(0);
        clock.advance(Duration::from_secs(15));
    }
    served
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_back_from_failing_its_health_check_warms_up() {
    let [a, b, c] = [
        backend("a").start().await,
        backend("b").start().await,
        backend("c").start().await,
    ];
    let health = "[health]\npath = \"/healthz\"\ninterval = \"300ms\"\ntimeout = \"300ms\"\n\
                  unhealthy_threshold = 2\nhealthy_threshold = 1\n";
    let clock = ManualClock::new();
    let vane = Vane::start_with_clock(&config(health, &[&a, &b, &c]), clock.clock())
        .await
        .unwrap();
    let healthy = |up: bool| {
        let set = vane.state().backends();
        set.backends()[1].health.healthy() == up
    };
    // Started with the set: b is warm at once.
    assert_eq!(share_shown(&vane, "b").await, serde_json::Value::Null);

    // Real probes take b out and bring it back.
    b.set_healthy(false);
    wait_until("b leaves rotation", || healthy(false)).await;
    assert_eq!(tally(&vane.client(), 30).await.get("b"), None);
    b.set_healthy(true);
    wait_until("b returns", || healthy(true)).await;

    let [start, half, warm] = rounds(&vane, &clock, "b").await;
    println!("b served {start}, {half}, {warm} of {ROUND} at 10 %, 50 %, warm");
    // Its fair share is 200 a round; the requests it is not offered go to a and c.
    assert!((5..=45).contains(&start), "{start} at 10 %");
    assert!((60..=140).contains(&half), "{half} at 50 %");
    assert_eq!(warm, 200);
    let metrics = vane.metrics().await;
    assert_eq!(
        metrics["vane_backend_slow_start_share{backend=b}"], 1.0,
        "warm again"
    );
    vane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_joining_by_reload_warms_up_under_every_shipped_policy() {
    let [a, b, c] = [
        backend("a").start().await,
        backend("b").start().await,
        backend("c").start().await,
    ];
    for name in ["", "round_robin", "least_conn", "p2c_ewma"] {
        let folder = scratch_folder(&format!("slow-start-{name}"));
        let extra = if name.is_empty() {
            String::new()
        } else {
            policy(name, "")
        };
        let path = write_file(&folder, "vane.toml", config(&extra, &[&a, &b]));
        let clock = ManualClock::new();
        let vane = Vane::start_file_with_clock(&path, clock.clock())
            .await
            .unwrap();
        tally(&vane.client(), 30).await;
        write_file(&folder, "vane.toml", config(&extra, &[&a, &b, &c]));
        vane.reloader().reload().await.unwrap();

        let [start, half, warm] = rounds(&vane, &clock, "c").await;
        println!("{name:?}: c served {start}, {half}, {warm} of {ROUND} at 10 %, 50 %, warm");
        assert!(start <= 50, "{name:?}: {start} at 10 %");
        assert!((60..=140).contains(&half), "{name:?}: {half} at 50 %");
        if name == "p2c_ewma" {
            // Two random choices by latency: about a third, not exactly.
            assert!(warm >= 140, "{name:?}: {warm} when warm");
        } else {
            assert!(start >= 5, "{name:?}: {start} at 10 %");
            assert_eq!(warm, 200, "{name:?}: rotation is exact when warm");
        }
        vane.assert_no_fallbacks();
        vane.stop().await;
    }
}
