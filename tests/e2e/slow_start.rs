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
/// then `backends`, each tagged `zone=a` and `canary` (for the locality and canary plugins).
fn config(extra: &str, backends: &[&Backend]) -> String {
    let mut text =
        format!("listen = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\nslow_start = \"30s\"\n{extra}");
    for backend in backends {
        text.push_str(&backend.toml(1));
        text.push_str("tags = [\"zone=a\", \"canary\"]\n");
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

/// Sends a round of sequential requests, each with its own `x-user` key (for consistent-hash);
/// answers how many `name` served.
async fn round(vane: &Vane, name: &str) -> usize {
    let client = vane.client();
    let mut served = 0;
    for key in 0..ROUND {
        let user = format!("user-{key}");
        let reply = client
            .send(
                http::Method::GET,
                "/",
                &[("x-user", &user)],
                bytes::Bytes::new(),
            )
            .await
            .expect("a reply");
        assert_eq!(reply.status, 200, "{}", reply.text());
        served += usize::from(reply.backend.as_deref() == Some(name));
    }
    served
}

/// How many of a round `name` served at the slow start's start (10 %), halfway (50 %) and
/// after it (all), with vane's clock moved by `clock` between rounds.
async fn rounds(vane: &Vane, clock: &ManualClock, name: &str) -> [usize; 3] {
    let mut served = [0; 3];
    for (round_number, shown) in [(0, Some(0.1)), (1, Some(0.5)), (2, None)] {
        assert_eq!(
            share_shown(vane, name).await.as_f64(),
            shown,
            "round {round_number}"
        );
        served[round_number] = round(vane, name).await;
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
    let policies = [
        ("", ""),
        ("round_robin", ""),
        ("least_conn", ""),
        ("p2c_ewma", "decay=200"),
        ("consistent_hash", "key=header:x-user"),
        ("canary", "share=100"),
        ("locality", "zone=a"),
    ];
    for (name, plugin_config) in policies {
        let folder = scratch_folder(&format!("slow-start-{name}"));
        let extra = if name.is_empty() {
            String::new()
        } else {
            policy(name, plugin_config)
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
        match name {
            "p2c_ewma" => {
                // It goes by latency, not by turns: held only to the requests it is offered,
                // a tenth and a half of 600.
                assert!(start <= 75, "{name:?}: {start} at 10 %");
                assert!(half <= 330, "{name:?}: {half} at 50 %");
                assert!(warm >= 60, "{name:?}: {warm} when warm");
            }
            "consistent_hash" => {
                // c's part of the ring, about a third of the keys, offered a tenth, then half.
                assert!(start <= 50, "{name:?}: {start} at 10 %");
                assert!((60..=140).contains(&half), "{name:?}: {half} at 50 %");
                assert!(warm >= 140, "{name:?}: {warm} when warm");
            }
            _ => {
                assert!((5..=50).contains(&start), "{name:?}: {start} at 10 %");
                assert!((60..=140).contains(&half), "{name:?}: {half} at 50 %");
                assert_eq!(warm, 200, "{name:?}: rotation is exact when warm");
            }
        }
        vane.assert_no_fallbacks();
        vane.stop().await;
    }
}

/// Sends `per_client` requests from each of 12 concurrent clients; answers how many `name`
/// served.
async fn concurrent(vane: &Vane, per_client: usize, name: &'static str) -> usize {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let client = vane.client();
        tasks.spawn(async move {
            let mut served = 0;
            for _ in 0..per_client {
                let reply = client.get("/").await.expect("a reply");
                assert_eq!(reply.status, 200);
                served += usize::from(reply.backend.as_deref() == Some(name));
            }
            served
        });
    }
    tasks.join_all().await.into_iter().sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_least_conn_ramps_a_joining_backend_too() {
    // Each request holds its backend 50 ms, so twelve clients keep about twelve in flight. An
    // idle backend would win every pick least-conn is allowed to give it: it is held to its
    // share of a warm backend's load as well as offered its share of the requests.
    let delay = Duration::from_millis(50);
    let [a, b, c] = [
        backend("a").delay(delay).start().await,
        backend("b").delay(delay).start().await,
        backend("c").delay(delay).start().await,
    ];
    let folder = scratch_folder("slow-start-under-load");
    let extra = policy("least_conn", "");
    let path = write_file(&folder, "vane.toml", config(&extra, &[&a, &b]));
    let clock = ManualClock::new();
    let vane = Vane::start_file_with_clock(&path, clock.clock())
        .await
        .unwrap();
    write_file(&folder, "vane.toml", config(&extra, &[&a, &b, &c]));
    vane.reloader().reload().await.unwrap();

    // 240 requests a round: a fair third is 80.
    let mut served = Vec::new();
    for _ in 0..3 {
        served.push(concurrent(&vane, 20, "c").await);
        clock.advance(Duration::from_secs(15));
    }
    println!("c served {served:?} of 240 at 10 %, 50 %, warm");
    assert!(served[0] <= 32, "{} at 10 %", served[0]);
    assert!(
        served[1] <= 64,
        "{} at 50 %: no more than 80 % of a fair third",
        served[1]
    );
    assert!(served[2] >= 60, "{} when warm", served[2]);
    vane.assert_no_fallbacks();
}
