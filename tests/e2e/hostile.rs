//! Hostile plugins under load, each beside its well-behaved twin: two vanes in a process of
//! their own (the test runs again alone, so that resident memory is theirs and not the rest of
//! the suite's, and one such run at a time), one running the violation and one the twin, loaded at the same time so the machine's noise hits
//! both alike. Every client request must be answered 200 by a real backend, the violation must
//! be counted under its reason in `/metrics`, the circuit breaker must open where the plugin is
//! broken (so a looping plugin does not cost every request its deadline), the added p99 stays
//! under 20 ms, memory stays bounded, and the twin is never replaced. vane's clock stands still
//! in these runs, so what the breaker and the log budget do does not depend on the machine.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use vane::clock::ManualClock;
use vane_e2e::alone::ran_alone;
use vane_e2e::backend::backend;
use vane_e2e::files::{scratch_folder, write_file};
use vane_e2e::load::{Flood, Tally};
use vane_e2e::plugins::plugin;
use vane_e2e::proxy::config_for;
use vane_e2e::{Backend, Vane};

/// The pick deadline in these runs. A deadline counts the CPU time of the call's thread, so
/// the twins are not cut off when the loaded machine preempts them (it was 100 ms when
/// deadlines were wall-clock time, and a preempted twin passed 20 ms doing nothing wrong). 25
/// ms leaves room for what the host does within a call on a debug build (the flooding plugin's
/// 100 KB of stdout a pick once took more than 10 ms), and a loop's five calls before the
/// breaker opens take 125 ms of CPU.
const PICK_TIMEOUT: Duration = Duration::from_millis(25);

/// The most a violation may add to p99 over its twin: a few requests that wait out a deadline
/// before the breaker opens are well under 1 % of [`MIN_REQUESTS`], so p99 must not see them.
const P99_MARGIN: Duration = Duration::from_millis(20);

/// How long each vane is loaded at least, and by how many clients.
const LOAD_TIME: Duration = Duration::from_millis(1500);
const CLIENTS: usize = 4;

/// The fewest requests each vane is loaded with, however slow the machine: the handful of
/// requests that wait out a deadline before the breaker opens must stay well under 1 %, so
/// that p99 compares the two vanes' ordinary requests.
const MIN_REQUESTS: usize = 2000;

/// How long a vane is loaded at most while it has not had [`MIN_REQUESTS`]: only a guard
/// against a hang, far beyond what the slowest run took beside two busy loops (about 25 s).
const MAX_LOAD_TIME: Duration = Duration::from_secs(180);

/// The memory cap of each plugin instance in these runs: low, so a plugin growing without end
/// reaches it well within the pick deadline even on a loaded machine.
const MEMORY_LIMIT: &str = "8MiB";

/// The most the resident memory of a hostile run's own process (two vanes, their backends and
/// clients) may grow: a few instances at the cap at once, and nothing that accumulates.
const MAX_RSS_GROWTH: f64 = 96.0 * 1024.0 * 1024.0;

/// A config for vane with the misbehave plugin in `mode`, and an admin listener.
fn config(backends: &[&Backend], mode: &str) -> String {
    let extra = format!(
        "admin = \"127.0.0.1:0\"\n[policy]\nplugin = {:?}\nconfig = {mode:?}\n\
         pick_timeout = \"{}ms\"\nconfigure_timeout = \"500ms\"\nmemory_limit = {MEMORY_LIMIT:?}\n",
        plugin("misbehave").display().to_string(),
        PICK_TIMEOUT.as_millis(),
    );
    config_for(backends, &extra)
}

/// What one loaded vane saw.
struct Run {
    mode: String,
    tally: Tally,
    metrics: HashMap<String, f64>,
    rss_growth: f64,
    /// From just before vane started to the last scrape of its metrics.
    lifetime: Duration,
}

impl Run {
    fn metric(&self, key: &str) -> f64 {
        *self
            .metrics
            .get(key)
            .unwrap_or_else(|| panic!("{}: no sample {key}", self.mode))
    }

    fn fallbacks(&self, reason: &str) -> f64 {
        self.metric(&format!("vane_plugin_fallbacks_total{{reason={reason}}}"))
    }

    /// Picks served by the built-in round-robin instead of the plugin, for any reason.
    fn all_fallbacks(&self) -> f64 {
        self.metrics
            .iter()
            .filter(|(key, _)| key.starts_with("vane_plugin_fallbacks"))
            .map(|(_, value)| value)
            .sum()
    }

    fn breaker_openings(&self) -> f64 {
        self.metric("vane_plugin_breaker_transitions_total{state=open}")
    }

    /// Every request got a 200 from one of the backends.
    fn assert_all_served(&self) {
        let tally = &self.tally;
        assert!(
            tally.sent() >= MIN_REQUESTS,
            "{}: only {} sent in {:?}",
            self.mode,
            tally.sent(),
            self.lifetime
        );
        assert_eq!(tally.failed(), 0, "{}: {:?}", self.mode, tally.statuses);
        let served: usize = tally.served.values().sum();
        assert_eq!(served, tally.sent(), "{}: {:?}", self.mode, tally.served);
    }

    fn report(&self) {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let fallbacks: Vec<String> = self
            .metrics
            .iter()
            .filter(|(key, value)| key.starts_with("vane_plugin_fallbacks") && **value > 0.0)
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        println!(
            "{:<28} sent {:>5} in {:.1} s, failed {}, p50 {:.2} ms, p99 {:.2} ms, \
             rss +{:.1} MiB, breaker openings {}, {}",
            self.mode,
            self.tally.sent(),
            self.lifetime.as_secs_f64(),
            self.tally.failed(),
            ms(self.tally.latency_quantile(0.5)),
            ms(self.tally.latency_quantile(0.99)),
            self.rss_growth / 1048576.0,
            self.breaker_openings(),
            fallbacks.join(" "),
        );
    }
}

/// Starts three backends and a vane with the plugin in `mode`, lets `prepare` change it, then
/// loads it for [`LOAD_TIME`] and at least [`MIN_REQUESTS`].
///
/// vane's clock stands still for the whole run: a breaker that opens stays open, and the log
/// budget's window never turns, however long the machine takes.
async fn run(mode: &str, prepare: impl FnOnce(&Vane)) -> Run {
    let a = backend("a").start().await;
    let b = backend("b").start().await;
    let c = backend("c").start().await;
    let started = Instant::now();
    let config = config(&[&a, &b, &c], mode);
    let vane = Vane::start_with_clock(&config, ManualClock::new().clock())
        .await
        .unwrap_or_else(|err| panic!("{mode}: {err:#}"));
    prepare(&vane);
    let rss = |metrics: &HashMap<String, f64>| metrics["process_resident_memory_bytes{}"];
    let before = rss(&vane.metrics().await);
    let flood = Flood::start(&vane, CLIENTS);
    let loading = Instant::now();
    tokio::time::sleep(LOAD_TIME).await;
    while flood.sent() < MIN_REQUESTS && loading.elapsed() < MAX_LOAD_TIME {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let tally = flood.stop().await;
    let metrics = vane.metrics().await;
    let lifetime = started.elapsed();
    vane.stop().await;
    Run {
        mode: mode.to_owned(),
        rss_growth: rss(&metrics) - before,
        tally,
        metrics,
        lifetime,
    }
}

/// How the violation must show.
struct Expect {
    /// The fallback reason it is counted under.
    reason: &'static str,
    /// Whether it fails often enough in a row to open the breaker.
    opens_breaker: bool,
    /// The backend the twin picks for every request (the first eligible one).
    twin_picks: &'static str,
}

/// Runs `violation` and `twin` side by side and checks both.
async fn pair(violation: &str, twin: &str, expect: Expect, prepare: fn(&Vane)) -> (Run, Run) {
    let (bad, good) = tokio::join!(run(violation, prepare), run(twin, prepare));
    bad.report();
    good.report();

    bad.assert_all_served();
    assert!(
        bad.fallbacks(expect.reason) >= 1.0,
        "{violation}: not counted as {}",
        expect.reason
    );
    if expect.opens_breaker {
        assert!(
            bad.breaker_openings() >= 1.0,
            "{violation}: breaker stayed closed"
        );
        assert!(
            bad.fallbacks("circuit_open") >= 1.0,
            "{violation}: no request skipped it"
        );
    } else {
        assert_eq!(bad.breaker_openings(), 0.0, "{violation}: breaker opened");
    }
    assert!(
        bad.rss_growth < MAX_RSS_GROWTH,
        "{violation}: resident memory grew {} MiB",
        bad.rss_growth / 1048576.0
    );

    good.assert_all_served();
    assert_eq!(
        good.all_fallbacks(),
        0.0,
        "{twin}: the well-behaved twin fell back"
    );
    assert_eq!(good.breaker_openings(), 0.0, "{twin}: breaker opened");
    assert_eq!(
        good.tally.served.keys().collect::<Vec<_>>(),
        [expect.twin_picks],
        "{twin}: {:?}",
        good.tally.served
    );

    assert_p99_close(&bad, &good);
    (bad, good)
}

/// The violation's p99 is within [`P99_MARGIN`] of its twin's.
fn assert_p99_close(bad: &Run, good: &Run) {
    let p99 = |run: &Run| run.tally.latency_quantile(0.99);
    assert!(
        p99(bad) < p99(good) + P99_MARGIN,
        "{}: p99 {:?} against {:?} for {}",
        bad.mode,
        p99(bad),
        p99(good),
        good.mode
    );
}

fn as_started(_: &Vane) {}

/// The first backend leaves rotation, as a failed health check would do.
fn first_backend_down(vane: &Vane) {
    vane.state().backends().backends()[0]
        .health
        .set_healthy(false);
}

const BREAKS: Expect = Expect {
    reason: "trap",
    opens_breaker: true,
    twin_picks: "a",
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_looping_in_pick_costs_a_few_requests_their_deadline_then_is_skipped() {
    if ran_alone() {
        return;
    }
    let expect = Expect {
        reason: "deadline",
        ..BREAKS
    };
    let (bad, _) = pair("loop", "busy:100000", expect, as_started).await;
    // Without the breaker every request would wait out the deadline; with it, only the five
    // calls that open it (and those already under way), and each half-open trial do (none
    // here, as vane's clock stands still).
    let deadlines = bad.fallbacks("deadline");
    let trials = bad.metric("vane_plugin_breaker_transitions_total{state=half_open}");
    let bound = 5.0 + (CLIENTS - 1) as f64 + trials;
    assert!(deadlines <= bound, "{deadlines} deadlines, {trials} trials");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_growing_memory_without_end_hits_its_cap() {
    if ran_alone() {
        return;
    }
    let expect = Expect {
        reason: "memory",
        ..BREAKS
    };
    // The twin holds half the cap.
    pair("grow", "hold:4", expect, as_started).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_panicking_on_its_first_call_is_replaced_and_skipped() {
    if ran_alone() {
        return;
    }
    pair("panic-first", "behave", BREAKS, as_started).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_panicking_on_every_tenth_call_serves_the_other_nine() {
    if ran_alone() {
        return;
    }
    let expect = Expect {
        opens_breaker: false,
        ..BREAKS
    };
    let (bad, _) = pair("panic-every:10", "behave", expect, as_started).await;
    // Each instance answers nine picks, traps on the tenth and is replaced.
    let traps = bad.fallbacks("trap");
    let answered = bad.metric("vane_plugin_picks_total{}");
    let ratio = answered / traps;
    assert!(
        (8.0..=10.0).contains(&ratio),
        "{answered} answered, {traps} traps"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_answering_out_of_range_is_skipped() {
    if ran_alone() {
        return;
    }
    let expect = Expect {
        reason: "bad_index",
        ..BREAKS
    };
    pair("out-of-range", "behave", expect, as_started).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_declines_is_served_around_but_not_skipped() {
    if ran_alone() {
        return;
    }
    // Declining is an answer, not a failure: the breaker stays closed.
    let expect = Expect {
        reason: "declined",
        opens_breaker: false,
        ..BREAKS
    };
    pair("decline", "behave", expect, as_started).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_picking_a_backend_out_of_rotation_is_overruled() {
    if ran_alone() {
        return;
    }
    let expect = Expect {
        reason: "ineligible",
        opens_breaker: false,
        twin_picks: "b",
    };
    let (bad, _) = pair("pick-first", "behave", expect, first_backend_down).await;
    assert!(
        !bad.tally.served.contains_key("a"),
        "{:?}",
        bad.tally.served
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_sleeping_on_a_wasi_clock_is_abandoned_at_once() {
    if ran_alone() {
        return;
    }
    let expect = Expect {
        reason: "deadline",
        ..BREAKS
    };
    pair("sleep", "clock", expect, as_started).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_calling_exit_traps_and_vane_keeps_running() {
    if ran_alone() {
        return;
    }
    pair("exit", "behave", BREAKS, as_started).await;
}

/// Writing megabytes to stdout neither fails a pick nor floods the log: lines beyond the
/// plugin's budget of 20 a second are dropped and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_flooding_stdout_is_rate_limited() {
    if ran_alone() {
        return;
    }
    let (flood, print) = tokio::join!(run("flood:100000", as_started), run("print", as_started));
    let lines_per_pick = 100.0;
    flood.report();
    print.report();
    for run in [&flood, &print] {
        run.assert_all_served();
        assert_eq!(
            run.tally.served.keys().collect::<Vec<_>>(),
            ["a"],
            "{}: the plugin's own picks",
            run.mode
        );
        let logged = run.metric("vane_plugin_log_lines_total{outcome=logged}");
        // vane's clock stands still, so the whole run is one budget window of 20 lines.
        assert!(
            logged <= 20.0,
            "{}: {logged} lines logged in one window",
            run.mode
        );
    }
    let dropped = flood.metric("vane_plugin_log_lines_total{outcome=dropped}");
    // Everything past the budget is dropped, and nothing accumulates.
    assert!(
        dropped >= lines_per_pick * flood.tally.sent() as f64 * 0.9,
        "{dropped} dropped"
    );
    assert!(flood.rss_growth < MAX_RSS_GROWTH);
}

/// A plugin that reaches for files, the environment, its arguments, stdin and the network gets
/// nothing: no preopened folder, no variables or arguments, an empty stdin, and a connect that
/// never reaches the listener it names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_reaching_for_files_env_and_network_gets_nothing() {
    if ran_alone() {
        return;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    let acceptor = tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    let mode = format!("capabilities:{target}");
    let (reaching, behaving) = tokio::join!(run(&mode, as_started), run("behave", as_started));
    reaching.report();
    behaving.report();
    for run in [&reaching, &behaving] {
        run.assert_all_served();
        // The plugin picks b if anything worked, a if nothing did.
        assert_eq!(
            run.tally.served.keys().collect::<Vec<_>>(),
            ["a"],
            "{}: {:?}",
            run.mode,
            run.tally.served
        );
        assert_eq!(run.breaker_openings(), 0.0);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 0, "the plugin connected");
    acceptor.abort();
}

/// A plugin that never returns from `configure` is refused at start and by a reload, where
/// the old plugin keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_looping_in_configure_is_refused_at_start_and_at_reload() {
    let a = backend("a").start().await;
    let refused = Vane::start(&config(&[&a], "loop-configure")).await;
    let err = format!("{:#}", refused.err().expect("vane refused the plugin"));
    assert!(err.contains("deadline"), "{err}");

    let path = write_file(
        &scratch_folder("loop-configure"),
        "vane.toml",
        config(&[&a], "behave"),
    );
    let vane = Vane::start_file(&path).await.unwrap();
    std::fs::write(&path, config(&[&a], "loop-configure")).unwrap();
    let flood = Flood::start(&vane, CLIENTS);
    let (status, body) = vane.admin_post("/reload").await;
    let tally = flood.stop().await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("deadline"), "{body}");
    assert_eq!(tally.failed(), 0, "{:?}", tally.statuses);
    assert_eq!(tally.served.keys().collect::<Vec<_>>(), ["a"]);
    let policy = vane.policy_json().await;
    assert_eq!(policy["breaker"], "closed");
    vane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_looping_in_observe_costs_no_client_anything_and_is_stopped() {
    if ran_alone() {
        return;
    }
    let (bad, good) = tokio::join!(run("loop-observe", as_started), run("learn", as_started));
    bad.report();
    good.report();
    for run in [&bad, &good] {
        run.assert_all_served();
        // Picks go on as ever: observe failing is no pick's failure.
        assert_eq!(run.all_fallbacks(), 0.0, "{}: picks fell back", run.mode);
        assert_eq!(run.tally.served.keys().collect::<Vec<_>>(), ["a"]);
    }
    let observe_deadlines = "vane_plugin_observe_failures_total{reason=deadline}";
    assert!(bad.metric(observe_deadlines) >= 1.0, "never counted");
    // Its own breaker stops the calls; vane's clock stands still, so it stays open.
    assert_eq!(
        bad.metric("vane_plugin_observe_breaker_state{state=open}"),
        1.0
    );
    assert_eq!(good.metric(observe_deadlines), 0.0);
    assert!(good.metric("vane_plugin_observe_outcomes_total{outcome=delivered}") >= 1.0);
    assert_p99_close(&bad, &good);
}
