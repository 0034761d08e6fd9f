//! Plugin deadlines on a busy machine: a pick's budget is its own CPU time, so a plugin that
//! did nothing wrong is not cut off when the OS preempts it, while a loop is still stopped.
//! The machine is made busy on purpose, with twice as many spinning threads as it has cores,
//! at the default `pick_timeout` of 1 ms.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use vane::balancer::FallbackReason;
use vane_e2e::alone::ran_alone;
use vane_e2e::backend::backend;
use vane_e2e::plugins::plugin;
use vane_e2e::proxy::config_for;
use vane_e2e::{Backend, Vane};

use super::tally;

/// Threads spinning until dropped: twice the machine's cores.
struct Hogs {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Hogs {
    fn start() -> Hogs {
        let stop = Arc::new(AtomicBool::new(false));
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let threads = (0..2 * cores)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::hint::black_box(0u64);
                    }
                })
            })
            .collect();
        Hogs { stop, threads }
    }
}

impl Drop for Hogs {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// A `[policy]` table for the plugin `name` with `config`, at the default deadline of 1 ms.
fn policy_at_1ms(name: &str, config: &str) -> String {
    format!(
        "[policy]\nplugin = {:?}\nconfig = {config:?}\npick_timeout = \"1ms\"\n",
        plugin(name).display().to_string()
    )
}

async fn three() -> [Backend; 3] {
    [
        backend("a").start().await,
        backend("b").start().await,
        backend("c").start().await,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_machine_costs_a_well_behaved_plugin_no_deadline() {
    // In a process of its own, one such run at a time, so its spinning threads and the hostile
    // runs' load do not meet.
    if ran_alone() {
        return;
    }
    let [a, b, c] = three().await;
    let _hogs = Hogs::start();
    // `busy:100000` does about 0.2-0.4 ms of arithmetic per pick: within its 1 ms of CPU, but
    // preempted by the spinning threads, many of its picks take longer than that on the clock.
    let plugins = [
        ("misbehave", "busy:100000", 300),
        ("round_robin", "", 100),
        ("least_conn", "", 100),
        ("p2c_ewma", "", 100),
        ("consistent_hash", "", 100),
        ("canary", "share=5", 100),
        ("locality", "zone=a", 100),
    ];
    for (name, config, requests) in plugins {
        let vane = Vane::start(&config_for(&[&a, &b, &c], &policy_at_1ms(name, config)))
            .await
            .unwrap();
        let started = Instant::now();
        let served = tally(&vane.client(), requests).await;
        println!(
            "{name} {config}: {requests} requests in {:?} beside the spinning threads: {served:?}",
            started.elapsed()
        );
        assert_eq!(served.values().sum::<usize>(), requests);
        assert_eq!(
            vane.fallbacks(FallbackReason::Deadline),
            0,
            "{name}: a deadline fallback for a plugin that stayed within its CPU budget"
        );
        vane.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looping_plugin_is_still_stopped_on_a_busy_machine() {
    if ran_alone() {
        return;
    }
    let [a, b, c] = three().await;
    let _hogs = Hogs::start();
    let vane = Vane::start(&config_for(
        &[&a, &b, &c],
        &policy_at_1ms("misbehave", "loop"),
    ))
    .await
    .unwrap();
    // Each pick that loops is stopped after its 1 ms of CPU time, or 20 ms on the clock, then
    // the breaker stops calling it; every request is served by the built-in round-robin.
    let started = Instant::now();
    let served = tally(&vane.client(), 30).await;
    let took = started.elapsed();
    println!("30 requests beside a looping plugin and the spinning threads: {took:?}");
    assert_eq!(served.values().sum::<usize>(), 30);
    assert!(vane.fallbacks(FallbackReason::Deadline) >= 1);
    // Shown, not asserted: how long its calls took on the clock (on a loaded machine a loop may
    // reach the 21 ms wall-clock bound before its 1 ms of CPU; the unit tests weigh the CPU).
    let picks = vane.state().policy().picks().duration().snapshot();
    let mean = picks.sum_seconds / picks.count.max(1) as f64;
    println!(
        "{} calls into the plugin, {:.1} ms each on average",
        picks.count,
        mean * 1000.0
    );
    // Five loops at most 20 ms each before the breaker opens: far under this, however busy.
    assert!(took < Duration::from_secs(10), "{took:?}");
}
