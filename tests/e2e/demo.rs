//! `vane demo`'s parts: its backends fail when asked to, so a failure-aware policy can be watched,
//! and its config carries the plugin's config string and limits.

use std::net::SocketAddr;
use std::time::Duration;

use vane::config::{PluginLimits, PolicyConfig};
use vane_e2e::Client;
use vane_e2e::plugins::plugin;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_backends_fail_when_asked_and_the_demo_takes_the_plugins_settings() {
    let backends = vane::demo::start_backends(3).await.unwrap();
    let policy = PolicyConfig {
        config: "decay=200".to_owned(),
        limits: PluginLimits {
            pick_timeout: Duration::from_millis(5),
            ..PluginLimits::default()
        },
        ..PolicyConfig::for_plugin(plugin("p2c_ewma"))
    };
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let config = vane::demo::config(any, any, policy, backends);
    assert_eq!(config.policy.as_ref().unwrap().config, "decay=200");
    let running = vane::app::start(&config).await.unwrap();
    let client = Client::new(running.proxy_address);

    // `fail=demo-2`: demo-2 answers 503 to every such request, the others 200.
    let mut demo_2 = 0;
    for _ in 0..30 {
        let reply = client.get("/?fail=demo-2").await.unwrap();
        let failed = reply.status == 503;
        assert_eq!(
            failed,
            reply.backend.as_deref() == Some("demo-2"),
            "{reply:?}"
        );
        demo_2 += usize::from(failed);
    }
    assert!(demo_2 > 0, "demo-2 never served");
    // `fail=0.5`: any backend, about half the time.
    let mut failed = 0;
    for _ in 0..200 {
        failed += usize::from(client.get("/?fail=0.5").await.unwrap().status == 503);
    }
    assert!(
        (60..=140).contains(&failed),
        "{failed} of 200 failed at 0.5"
    );
    running.shutdown().await;
}
