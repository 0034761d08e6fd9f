//! The admin API: `/metrics` parses as Prometheus text and its counters match the traffic
//! sent; `/backends` and `/policy` describe what is running; `/ready` says whether a backend is
//! in rotation and `/live` always answers.

use vane_e2e::Vane;
use vane_e2e::backend::backend;
use vane_e2e::plugins::plugin;
use vane_e2e::proxy::{config_for, policy, samples};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_match_the_traffic_sent() {
    let ok = backend("ok").start().await;
    let missing = backend("missing").status(404).start().await;
    let extra = format!("admin = \"127.0.0.1:0\"\n{}", policy("round_robin", ""));
    let vane = Vane::start(&config_for(&[&ok, &missing], &extra))
        .await
        .unwrap();
    for _ in 0..40 {
        vane.client().get("/").await.unwrap();
    }
    let (status, text) = vane.admin_get("/metrics").await;
    assert_eq!(status, 200);
    let found = samples(&text);
    let get = |key: &str| {
        *found
            .get(key)
            .unwrap_or_else(|| panic!("no sample {key} in:\n{text}"))
    };
    assert_eq!(
        get("vane_backend_requests_total{backend=ok,class=2xx}"),
        20.0
    );
    assert_eq!(
        get("vane_backend_requests_total{backend=missing,class=4xx}"),
        20.0
    );
    assert_eq!(
        get("vane_backend_requests_total{backend=ok,class=error}"),
        0.0
    );
    assert_eq!(get("vane_backend_response_seconds{backend=ok}"), 20.0);
    assert_eq!(get("vane_backend_in_flight{backend=ok}"), 0.0);
    assert_eq!(get("vane_backend_healthy{backend=missing}"), 1.0);
    assert_eq!(get("vane_backend_ejected{backend=missing}"), 0.0);
    assert_eq!(get("vane_backend_ejections_total{backend=ok}"), 0.0);
    assert_eq!(get("vane_retries_total{}"), 0.0);
    assert_eq!(get("vane_retry_budget_exhausted_total{}"), 0.0);
    assert_eq!(get("vane_plugin_picks_total{}"), 40.0);
    assert_eq!(get("vane_plugin_fallbacks_total{reason=trap}"), 0.0);
    assert_eq!(get("vane_plugin_pick_seconds{}"), 40.0);
    assert_eq!(get("vane_panic_routing{}"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backends_and_policy_describe_what_is_running() {
    let a = backend("a").start().await;
    let extra = format!("admin = \"127.0.0.1:0\"\n{}", policy("least_conn", ""));
    let vane = Vane::start(&config_for(&[&a], &extra)).await.unwrap();
    vane.client().get("/").await.unwrap();

    let backends = vane.backends_json().await;
    let first = &backends["backends"][0];
    assert_eq!(first["name"], "a");
    assert_eq!(first["address"], a.address.to_string());
    assert_eq!(first["weight"], 1);
    assert_eq!(first["healthy"], true);
    assert_eq!(first["ejected_until"], serde_json::Value::Null);
    assert_eq!(first["requests"], 1);
    assert_eq!(first["in_flight"], 0);
    assert!(first["latency_ewma_us"].as_u64().unwrap() > 0, "{first}");

    let (status, body) = vane.admin_get("/policy").await;
    assert_eq!(status, 200);
    let policy: serde_json::Value = serde_json::from_str(&body).unwrap();
    let path = plugin("least_conn");
    assert_eq!(policy["plugin"]["path"], path.display().to_string());
    let sha = policy["plugin"]["sha256"].as_str().unwrap();
    assert_eq!(sha.len(), 64, "{policy}");
    let sum = std::process::Command::new("sha256sum")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&sum.stdout).starts_with(sha),
        "{policy}"
    );
    assert!(
        policy["plugin"]["loaded_at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert_eq!(policy["picks_answered"], 1);
    assert_eq!(policy["fallbacks"]["trap"], 0);

    assert_eq!(vane.admin_get("/nope").await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_says_whether_a_backend_is_in_rotation_and_live_always_answers() {
    let (a, b) = (backend("a").start().await, backend("b").start().await);
    let vane = Vane::start(&config_for(&[&a, &b], "admin = \"127.0.0.1:0\"\n"))
        .await
        .unwrap();
    assert_eq!(vane.admin_get("/live").await.0, 200);
    let (status, body) = vane.admin_get("/ready").await;
    assert_eq!(status, 200, "{body}");
    // One backend out: still ready. Both out: not ready, and it says why.
    let backends = vane.state().backends();
    backends.backends()[0].health.set_healthy(false);
    assert_eq!(vane.admin_get("/ready").await.0, 200);
    backends.backends()[1].health.set_healthy(false);
    let (status, body) = vane.admin_get("/ready").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("no backend in rotation"), "{body}");
    assert_eq!(vane.admin_get("/live").await.0, 200);
    backends.backends()[1].health.set_healthy(true);
    assert_eq!(vane.admin_get("/ready").await.0, 200);
    vane.stop().await;
}
