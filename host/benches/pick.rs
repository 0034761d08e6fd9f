//! The cost of one pick: the built-in round-robin vs the shipped plugins, at 3 to 256 backends.
//!
//! Needs the plugins built first: `bash scripts/build-plugins.sh`. Run with
//! `cargo bench -p vane --bench pick`.

#![allow(missing_docs)] // criterion_group! generates an undocumented function

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::{HeaderMap, Method};
use vane::backend::{Backend, BackendSet};
use vane::balancer::{Balancer, RequestInfo, RoundRobin};
use vane::clock::Clock;
use vane::config::{BackendConfig, BackendProtocol, BreakerConfig, PluginLimits, ShadowConfig};
use vane::plugin::{PluginBalancer, PluginEngine};
use vane::policy::Shadow;

const SIZES: [usize; 4] = [3, 16, 64, 256];

/// The shipped plugins, each with its config.
const PLUGINS: [(&str, &str); 6] = [
    ("round_robin", ""),
    ("least_conn", ""),
    ("p2c_ewma", ""),
    ("consistent_hash", ""),
    ("canary", "share=5"),
    ("locality", "zone=a"),
];

fn plugin_path(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/wasm32-wasip2/release")
        .join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run `bash scripts/build-plugins.sh`",
        path.display()
    );
    path
}

fn backends(count: usize, clock: &Clock) -> BackendSet {
    let backends = (0..count)
        .map(|i| {
            let config = BackendConfig {
                name: format!("b{i}"),
                address: format!("127.0.0.1:{}", 10_000 + i).parse().unwrap(),
                weight: 1 + (i % 3) as u32,
                // For the canary and locality plugins: zones a and b in turn, one in ten a canary.
                tags: [format!("zone={}", ["a", "b"][i % 2])]
                    .into_iter()
                    .chain((i % 10 == 0).then(|| "canary".to_owned()))
                    .collect(),
                protocol: BackendProtocol::Http1,
                tls: None,
            };
            Arc::new(Backend::new(&config, None, clock))
        })
        .collect();
    BackendSet::new(1, backends)
}

/// The request numbered `sequence`: `GET /users/42?page=2` from one client of 256 (for
/// consistent-hash's key), with `headers`.
fn request(sequence: u64, headers: &HeaderMap) -> RequestInfo<'_> {
    RequestInfo {
        sequence,
        method: &Method::GET,
        authority: "shop.example",
        path: "/users/42?page=2",
        client_ip: Ipv4Addr::from_bits(0xc000_0200 | (sequence as u32 & 0xff)).into(),
        headers,
    }
}

fn pick(c: &mut Criterion) {
    // WASI's host functions (clocks, streams) expect a tokio runtime around plugin calls.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _inside = runtime.enter();
    let engine = PluginEngine::new().unwrap();
    let clock = Clock::new();
    // A generous deadline: a pick preempted by the machine must not abort the measurement.
    let limits = PluginLimits {
        pick_timeout: std::time::Duration::from_millis(100),
        ..PluginLimits::default()
    };
    let headers = HeaderMap::new();
    let mut group = c.benchmark_group("pick");
    for size in SIZES {
        let set = backends(size, &clock);
        let mut contenders: Vec<(&str, Box<dyn Balancer>)> =
            vec![("builtin", Box::new(RoundRobin))];
        for (name, config) in PLUGINS {
            let plugin =
                PluginBalancer::load(&engine, &plugin_path(name), config, limits, &set, &clock)
                    .unwrap();
            contenders.push((name, Box::new(plugin)));
        }
        for (name, balancer) in &contenders {
            let mut sequence = 0u64;
            group.bench_with_input(BenchmarkId::new(*name, size), &set, |b, set| {
                b.iter(|| {
                    sequence += 1;
                    let request = request(sequence, &headers);
                    black_box(balancer.pick(&request, set, set.eligibility()).unwrap())
                })
            });
        }
    }
    group.finish();
    shadow_offer(c, &engine, &clock, limits);
}

/// What a shadow policy costs the request path: copying a sampled request's facts and the
/// states the candidate reads, and pushing them onto its queue (its own thread asks it).
fn shadow_offer(c: &mut Criterion, engine: &PluginEngine, clock: &Clock, limits: PluginLimits) {
    let headers = HeaderMap::new();
    let mut group = c.benchmark_group("shadow_offer");
    for size in SIZES {
        let set = Arc::new(backends(size, clock));
        let candidate =
            PluginBalancer::load(engine, &plugin_path("p2c_ewma"), "", limits, &set, clock)
                .unwrap();
        let config = ShadowConfig {
            plugin: plugin_path("p2c_ewma"),
            config: String::new(),
            sample_percent: 100.0,
        };
        let shadow = Shadow::start(candidate, &config, BreakerConfig::default(), clock).unwrap();
        let mut sequence = 0u64;
        // Timed in batches the queue holds, each left to drain untimed: the cost of a case
        // handed over, not of one dropped because the bench outruns the shadow's thread.
        group.bench_with_input(BenchmarkId::new("p2c_ewma", size), &set, |b, set| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let batch = left.min(256);
                    let started = Instant::now();
                    for _ in 0..batch {
                        sequence += 1;
                        let request = request(sequence, &headers);
                        shadow.offer(&request, set, set.eligibility_for(sequence), 0);
                    }
                    spent += started.elapsed();
                    left -= batch;
                    let stats = shadow.stats();
                    let settled = || {
                        let failed: u64 = stats.failures().iter().map(|(_, n)| n).sum();
                        stats.compared() + stats.dropped() + failed
                    };
                    while settled() < stats.sampled() {
                        std::thread::yield_now();
                    }
                }
                spent
            })
        });
    }
    group.finish();
}

criterion_group!(benches, pick);
criterion_main!(benches);
