//! The locality plugin: requests stay in vane's zone while its backends are up and not loaded
//! past `spill-at`, go to another zone when they are down, and come back with them.

use std::collections::BTreeMap;
use std::time::Duration;

use vane_e2e::backend::backend;
use vane_e2e::proxy::policy;
use vane_e2e::{Backend, Vane, wait_until};

use super::tally;

/// Config text: `extra`, the locality plugin set by `config`, then `backends` with their zone
/// tags.
fn config(extra: &str, config: &str, backends: &[(&Backend, &str)]) -> String {
    let mut text = format!(
        "listen = \"127.0.0.1:0\"\n{extra}{}",
        policy("locality", config)
    );
    for (backend, zone) in backends {
        text.push_str(&backend.toml(1));
        text.push_str(&format!("tags = [\"zone={zone}\"]\n"));
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_stay_in_the_zone_until_its_backends_are_down() {
    let [a1, a2, b1, b2] = [
        backend("a1").start().await,
        backend("a2").start().await,
        backend("b1").start().await,
        backend("b2").start().await,
    ];
    let health = "[health]\npath = \"/healthz\"\ninterval = \"300ms\"\ntimeout = \"300ms\"\n\
                  unhealthy_threshold = 1\nhealthy_threshold = 1\n";
    let zones = [(&a1, "a"), (&a2, "a"), (&b1, "b"), (&b2, "b")];
    let vane = Vane::start(&config(health, "zone=a", &zones))
        .await
        .unwrap();
    let served = tally(&vane.client(), 100).await;
    assert_eq!(
        served,
        BTreeMap::from([("a1".into(), 50), ("a2".into(), 50)])
    );

    let in_rotation = |name: &str| {
        let set = vane.state().backends();
        set.backends()
            .iter()
            .find(|backend| backend.name == name)
            .is_some_and(|backend| backend.in_rotation())
    };
    a1.set_healthy(false);
    wait_until("a1 leaves", || !in_rotation("a1")).await;
    let served = tally(&vane.client(), 40).await;
    assert_eq!(served, BTreeMap::from([("a2".into(), 40)]), "a2 is left");

    a2.set_healthy(false);
    wait_until("a2 leaves", || !in_rotation("a2")).await;
    let served = tally(&vane.client(), 40).await;
    assert_eq!(
        served,
        BTreeMap::from([("b1".into(), 20), ("b2".into(), 20)]),
        "zone a is down"
    );

    a1.set_healthy(true);
    a2.set_healthy(true);
    wait_until("zone a is back", || in_rotation("a1") && in_rotation("a2")).await;
    let served = tally(&vane.client(), 40).await;
    assert_eq!(
        served,
        BTreeMap::from([("a1".into(), 20), ("a2".into(), 20)])
    );
    vane.assert_no_fallbacks();
}

/// Sends `rounds` requests from each of 12 concurrent clients; counts who served them.
async fn under_load(vane: &Vane, rounds: usize) -> BTreeMap<String, usize> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let client = vane.client();
        tasks.spawn(async move {
            let mut served = Vec::new();
            for _ in 0..rounds {
                let reply = client.get("/").await.expect("a reply");
                assert_eq!(reply.status, 200);
                served.push(reply.backend.expect("served by a backend"));
            }
            served
        });
    }
    let mut counts = BTreeMap::new();
    for name in tasks.join_all().await.into_iter().flatten() {
        *counts.entry(name).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loaded_zone_spills_past_spill_at_and_not_before() {
    // Each request holds its backend 200 ms, so twelve clients keep about twelve in flight:
    // more than the local two hold at spill-at=2.
    let delay = Duration::from_millis(200);
    let [a1, a2, b1] = [
        backend("a1").delay(delay).start().await,
        backend("a2").delay(delay).start().await,
        backend("b1").delay(delay).start().await,
    ];
    let zones = [(&a1, "a"), (&a2, "a"), (&b1, "b")];
    for (setting, spills) in [("spill-at=2", true), ("spill-at=off", false), ("", false)] {
        let vane = Vane::start(&config("", &format!("zone=a {setting}"), &zones))
            .await
            .unwrap();
        let counts = under_load(&vane, 6).await;
        println!("{setting:?}: {counts:?}");
        let remote = counts.get("b1").copied().unwrap_or(0);
        assert_eq!(counts.values().sum::<usize>(), 72);
        if spills {
            // Past 2 each on the local two, a request spills while b1 holds fewer than the
            // least loaded of them: about a third spills.
            assert!(remote >= 12, "{setting}: {remote} of 72 spilled");
        } else {
            // spill-at is 16 by default: two local backends hold all twelve.
            assert_eq!(remote, 0, "{setting}: {remote} of 72 spilled");
        }
        vane.assert_no_fallbacks();
        vane.stop().await;
    }
}
