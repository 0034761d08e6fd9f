//! vane's end-to-end tests: real backends on loopback, vane, and plugins built from this repo.
//! One binary, a module per topic.

mod admin;
mod admin_auth;
mod backend_protocols;
mod balancing;
mod busy_machine;
mod canary;
mod cli;
mod connections;
mod consistent_hash;
mod dashboard;
mod demo;
mod discovery;
mod errors;
mod examples;
mod failover;
mod fallback;
mod feedback;
mod floods;
mod forwarding;
mod grafana;
mod grpc;
mod h2_floods;
mod hostile;
mod http1;
mod kubernetes;
mod locality;
mod misfits;
mod plugin_load;
mod plugin_memory;
mod plugin_new;
mod plugin_test;
mod pooling;
mod reload;
mod runtime_api;
mod shadow;
mod shipping;
mod shutdown;
mod signals;
mod slow_start;
mod smuggling;
mod tls;
mod websocket;

use std::collections::BTreeMap;

use vane_e2e::Client;

/// Sends `count` sequential GETs and counts which backend served each; every one must be a 200.
async fn tally(client: &Client, count: usize) -> BTreeMap<String, usize> {
    let mut served = BTreeMap::new();
    for _ in 0..count {
        let reply = client.get("/").await.expect("a reply");
        assert_eq!(reply.status, 200, "{}", reply.text());
        let backend = reply.backend.expect("served by a backend");
        *served.entry(backend).or_default() += 1;
    }
    served
}

/// The map `{name: count}` written out, for comparing tallies.
fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs
        .iter()
        .map(|(name, n)| (name.to_string(), *n))
        .collect()
}
