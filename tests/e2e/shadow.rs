//! Shadow policies: a candidate asked about live traffic and recorded, never used; shown in
//! `/policy`, `/metrics` and `vane shadow`; a broken one costs no request; promoted to active
//! with nothing dropped.

use std::path::Path;
use std::time::Duration;

use vane_e2e::backend::backend;
use vane_e2e::command::run_vane;
use vane_e2e::load::Flood;
use vane_e2e::plugins::plugin;
use vane_e2e::proxy::{config_for, policy};
use vane_e2e::{Backend, Vane};

use super::{counts, tally};

async fn three() -> [Backend; 3] {
    [
        backend("a").start().await,
        backend("b").start().await,
        backend("c").start().await,
    ]
}

/// Config text: the admin API, round-robin active, and the test plugin as the shadow with
/// `shadow_config` (`behave` picks the first eligible backend, `a`), then `extra` lines.
fn with_shadow(backends: &[&Backend], shadow_config: &str, extra: &str) -> String {
    shadow_at(backends, &plugin("misbehave"), shadow_config, extra)
}

/// Config text: the admin API, round-robin active, and the plugin at `shadow` as the shadow
/// with `shadow_config`, then `extra` lines.
fn shadow_at(backends: &[&Backend], shadow: &Path, shadow_config: &str, extra: &str) -> String {
    let shadow = format!(
        "admin = \"127.0.0.1:0\"\n{}[policy.shadow]\nplugin = {:?}\nconfig = {shadow_config:?}\n{extra}",
        policy("round_robin", ""),
        shadow.display().to_string(),
    );
    config_for(backends, &shadow)
}

/// Polls `/policy` until the shadow has settled `count` cases (compared, failed or skipped).
async fn settled(vane: &Vane, count: u64) -> serde_json::Value {
    let started = std::time::Instant::now();
    loop {
        let policy = vane.policy_json().await;
        let shadow = &policy["shadow"];
        let failed: u64 = shadow["failures"]
            .as_object()
            .unwrap()
            .values()
            .map(|n| n.as_u64().unwrap())
            .sum();
        let done =
            shadow["compared"].as_u64().unwrap() + failed + shadow["dropped"].as_u64().unwrap();
        if done >= count {
            return policy;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the shadow settled {done} of {count} cases: {shadow}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_is_asked_about_live_traffic_and_never_used() {
    let [a, b, c] = three().await;
    let vane = Vane::start(&with_shadow(&[&a, &b, &c], "behave", ""))
        .await
        .unwrap();
    // Traffic follows round-robin, the active policy, exactly.
    let served = tally(&vane.client(), 300).await;
    assert_eq!(served, counts(&[("a", 100), ("b", 100), ("c", 100)]));
    vane.assert_no_fallbacks();

    // The shadow would have sent all of it to a: it agreed on a third.
    let policy = settled(&vane, 300).await;
    let shadow = &policy["shadow"];
    println!("{shadow:#}");
    assert_eq!(shadow["name"], "misbehave");
    assert_eq!(shadow["sample_percent"], 100.0);
    assert_eq!(
        (shadow["sampled"].as_u64(), shadow["compared"].as_u64()),
        (Some(300), Some(300))
    );
    assert_eq!(shadow["agreed"], 100);
    let backend = |name: &str| {
        shadow["backends"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {shadow}"))
    };
    assert_eq!(
        (
            backend("a")["actual"].as_u64(),
            backend("a")["would_be"].as_u64()
        ),
        (Some(100), Some(300))
    );
    assert_eq!(
        (
            backend("b")["actual"].as_u64(),
            backend("b")["would_be"].as_u64()
        ),
        (Some(100), Some(0))
    );
    assert!(shadow["pick_us"]["mean"].as_f64().unwrap() > 0.0);

    let metrics = vane.metrics().await;
    assert_eq!(metrics["vane_shadow_agreed_total{}"], 100.0);
    assert_eq!(
        metrics["vane_shadow_backend_picks_total{backend=a,policy=shadow}"],
        300.0
    );
    assert_eq!(
        metrics["vane_shadow_backend_picks_total{backend=c,policy=active}"],
        100.0
    );

    // The CLI view, from the real binary.
    let admin = vane.admin.unwrap().to_string();
    let ran = tokio::task::spawn_blocking(move || run_vane(["shadow", "--admin", &admin]))
        .await
        .unwrap();
    assert!(ran.ok, "{}", ran.stderr);
    println!("{}", ran.stdout);
    assert!(
        ran.stdout
            .contains("300 compared: 100 agreed with round_robin (33.3%)"),
        "{}",
        ran.stdout
    );
    let row = |name: &str| {
        ran.stdout
            .lines()
            .find(|line| line.trim_start().starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no row {name} in {}", ran.stdout))
            .to_owned()
    };
    assert!(
        row("a").contains("100   33.3%") && row("a").contains("300  100.0%"),
        "{}",
        row("a")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sample_asks_about_that_share_of_requests() {
    let [a, b, c] = three().await;
    let vane = Vane::start(&with_shadow(
        &[&a, &b, &c],
        "behave",
        "sample_percent = 10\n",
    ))
    .await
    .unwrap();
    tally(&vane.client(), 2000).await;
    let policy = vane.policy_json().await;
    let sampled = policy["shadow"]["sampled"].as_u64().unwrap();
    println!("sampled {sampled} of 2000 at 10 %");
    assert!((140..=260).contains(&sampled), "{sampled} of 2000 sampled");
    settled(&vane, sampled).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_shadow_costs_no_request_and_is_counted() {
    let [a, b, c] = three().await;
    for broken in ["trap", "loop", "out-of-range"] {
        let vane = Vane::start(&with_shadow(&[&a, &b, &c], broken, ""))
            .await
            .unwrap();
        let served = tally(&vane.client(), 300).await;
        assert_eq!(
            served,
            counts(&[("a", 100), ("b", 100), ("c", 100)]),
            "{broken}"
        );
        vane.assert_no_fallbacks();
        let policy = settled(&vane, 300).await;
        let shadow = &policy["shadow"];
        println!("{broken}: {}", shadow["failures"]);
        assert_eq!(shadow["compared"], 0, "{broken}: {shadow}");
        let reason = match broken {
            "trap" => "trap",
            "loop" => "deadline",
            _ => "bad_index",
        };
        assert!(
            shadow["failures"][reason].as_u64().unwrap() >= 1,
            "{broken}: {shadow}"
        );
        // Its breaker stops asking it: the rest are skipped, not called.
        assert!(
            shadow["failures"]["circuit_open"].as_u64().unwrap() > 0,
            "{broken}: {shadow}"
        );
        vane.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promoting_the_shadow_swaps_it_in_with_nothing_dropped() {
    let [a, b, c] = three().await;
    let vane = Vane::start(&with_shadow(&[&a, &b, &c], "behave", ""))
        .await
        .unwrap();
    let flood = Flood::start(&vane, 4);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = vane.admin_post("/policy/promote").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"promoted\": true"), "{body}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let tally = flood.stop().await;
    assert_eq!(tally.failed(), 0, "{:?}", tally.statuses);
    // Round-robin served before the promotion, the shadow (all to a) after it.
    assert!(
        tally.served.get("b").copied().unwrap_or(0) > 0,
        "{:?}",
        tally.served
    );
    println!(
        "{} requests across the promotion: {:?}",
        tally.sent(),
        tally.served
    );

    let policy = vane.policy_json().await;
    assert_eq!(policy["plugin"]["name"], "misbehave");
    assert_eq!(policy["shadow"], serde_json::Value::Null);
    let served = super::tally(&vane.client(), 30).await;
    assert_eq!(served, counts(&[("a", 30)]), "the promoted policy serves");
    let (status, body) = vane.admin_post("/policy/promote").await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("no shadow policy to promote"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_that_cannot_load_keeps_vane_from_nothing() {
    let [a, b, c] = three().await;
    let folder = vane_e2e::files::scratch_folder("shadow-cannot-load");
    let garbage = vane_e2e::files::write_file(&folder, "garbage.wasm", b"not wasm at all");
    let text = shadow_at(&[&a, &b, &c], &garbage, "", "");
    let vane = Vane::start(&text).await.unwrap();
    let served = tally(&vane.client(), 30).await;
    assert_eq!(served, counts(&[("a", 10), ("b", 10), ("c", 10)]));
    let policy = vane.policy_json().await;
    let error = policy["shadow"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("garbage.wasm"), "{policy}");
    let (status, body) = vane.admin_post("/policy/promote").await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("could not be loaded"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_whose_file_changed_is_not_promoted_unseen() {
    let [a, b, c] = three().await;
    let folder = vane_e2e::files::scratch_folder("shadow-file-changed");
    let candidate = folder.join("candidate.wasm");
    std::fs::copy(plugin("misbehave"), &candidate).unwrap();
    let text = shadow_at(&[&a, &b, &c], &candidate, "", "");
    let vane = Vane::start(&text).await.unwrap();
    std::fs::copy(plugin("least_conn"), &candidate).unwrap();
    let (status, body) = vane.admin_post("/policy/promote").await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("changed since it was loaded"), "{body}");
    assert_eq!(vane.policy_json().await["plugin"]["name"], "round_robin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_that_learns_from_outcomes_hears_of_them() {
    let [a, b, c] = three().await;
    let text = shadow_at(&[&a, &b, &c], &plugin("p2c_ewma"), "", "");
    let vane = Vane::start(&text).await.unwrap();
    tally(&vane.client(), 100).await;
    let started = std::time::Instant::now();
    loop {
        let policy = vane.policy_json().await;
        let heard = policy["shadow"]["observe"]["outcomes_delivered"].as_u64();
        if heard == Some(100) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the shadow heard of {heard:?} outcomes: {}",
            policy["shadow"]
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        vane.policy_json().await["observe"],
        serde_json::Value::Null,
        "round-robin asked for none"
    );
}
