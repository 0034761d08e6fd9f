//! The soak: the real `vane` binary for a long run (20 minutes by default) under steady load,
//! while backends die and come back, the plugin is swapped among round-robin, least-conn and a
//! misbehaving one, the config is reloaded and health flaps. Every minute it reports requests,
//! failures, p50/p99, vane's resident memory, open file descriptors and runtime tasks; at the
//! end it fails if an idempotent request failed or if memory, descriptors or tasks kept growing.
//! Run by `scripts/soak.sh`, which builds what it needs.
//!
//!   soak [--minutes N] [--clients N] [--vane PATH]

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use vane_e2e::backend::{Backend, backend};
use vane_e2e::client::Client;
use vane_e2e::plugins::plugin;
use vane_e2e::proxy::samples;

/// The backends behind vane; one of them is down at almost any time.
const BACKENDS: usize = 4;
/// How often a backend is killed, and how long it stays dead.
const KILL_EVERY: Duration = Duration::from_secs(3);
const DEAD_FOR: Duration = Duration::from_millis(1500);
/// How often the plugin is swapped (by rewriting the config and reloading).
const SWAP_EVERY: Duration = Duration::from_secs(10);
/// How often a backend's health check starts failing, and for how long.
const FLAP_EVERY: Duration = Duration::from_secs(5);
const UNHEALTHY_FOR: Duration = Duration::from_secs(3);
/// The policies swapped in, in turn: the plugin and its config string.
const POLICIES: [(&str, &str); 3] = [
    ("round_robin", ""),
    ("least_conn", ""),
    ("misbehave", "panic-every:50"),
];

/// What the clients saw: each minute's latencies and failures, and every failure's reason
/// (whether the request was idempotent, then the status and vane's reason, or the client's
/// error) with its count.
#[derive(Default)]
struct Outcomes {
    minutes: BTreeMap<usize, (Vec<Duration>, usize)>,
    failures: BTreeMap<(bool, String), usize>,
    sent: usize,
    idempotent: usize,
}

/// What one minute looked like from outside vane.
#[derive(Debug, Default, Clone)]
struct Minute {
    sent: usize,
    failed: usize,
    p50: Duration,
    p99: Duration,
    rss_mib: f64,
    fds: usize,
    tasks: f64,
}

struct Args {
    minutes: usize,
    clients: usize,
    vane: PathBuf,
}

fn args() -> Args {
    let mut args = Args {
        minutes: 20,
        clients: 16,
        vane: vane_e2e::plugins::target_dir().join("release/vane"),
    };
    let mut given = std::env::args().skip(1);
    while let Some(flag) = given.next() {
        let value = given
            .next()
            .unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--minutes" => args.minutes = value.parse().expect("--minutes N"),
            "--clients" => args.clients = value.parse().expect("--clients N"),
            "--vane" => args.vane = PathBuf::from(value),
            other => panic!("unknown flag {other}; use --minutes, --clients, --vane"),
        }
    }
    args
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = args();
    let dir = std::env::temp_dir().join(format!("vane-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    let mut backends = Vec::new();
    for index in 0..BACKENDS {
        backends.push(backend(&format!("b{index}")).start().await);
    }
    let addresses: Vec<SocketAddr> = backends.iter().map(|b| b.address).collect();
    let backends = Arc::new(Mutex::new(backends));
    let (listen, admin) = (free_port(), free_port());
    let config_path = dir.join("vane.toml");
    std::fs::write(&config_path, config(listen, admin, &addresses, 0)).expect("write the config");
    let mut vane = Command::new(&args.vane)
        .arg("run")
        .arg("--config")
        .arg(&config_path)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("vane.log")).expect("a log file"))
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start {}: {err}", args.vane.display()));
    wait_until_serving(admin, &dir.join("vane.log")).await;
    println!(
        "soak: vane pid {} on {listen}, {} clients, {} minutes, log in {}",
        vane.id(),
        args.clients,
        args.minutes,
        dir.display()
    );

    let start = Instant::now();
    let running = Arc::new(AtomicBool::new(true));
    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..args.clients {
        tasks.spawn(load(
            listen,
            client,
            start,
            running.clone(),
            outcomes.clone(),
        ));
    }
    tasks.spawn(kill_backends(backends.clone(), running.clone()));
    tasks.spawn(flap_health(backends.clone(), running.clone()));
    tasks.spawn(swap_policies(
        listen,
        admin,
        addresses.clone(),
        config_path.clone(),
        running.clone(),
    ));

    let mut minutes = Vec::new();
    for minute in 0..args.minutes {
        let end = start + Duration::from_secs(60 * (minute as u64 + 1));
        tokio::time::sleep_until(end.into()).await;
        let seen = report(minute, &outcomes, admin, vane.id()).await;
        println!(
            "minute {:>2}: {:>7} sent, {:>4} failed, p50 {:>6.2} ms, p99 {:>6.2} ms, rss {:>6.1} MiB, {:>4} fds, {:>5} tasks",
            minute + 1,
            seen.sent,
            seen.failed,
            ms(seen.p50),
            ms(seen.p99),
            seen.rss_mib,
            seen.fds,
            seen.tasks
        );
        minutes.push(seen);
    }
    running.store(false, Ordering::SeqCst);
    while tasks.join_next().await.is_some() {}
    print_counters(admin).await;
    stop(&mut vane);
    let verdict = verdict(&minutes, &outcomes.lock().expect("outcomes"));
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(problems) = verdict {
        eprintln!("soak FAILED:\n{problems}");
        std::process::exit(1);
    }
    println!("soak passed");
}

/// A loopback port free now.
fn free_port() -> SocketAddr {
    let listener = StdListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("an address")
}

/// The config: health checks every 500 ms, the policy `POLICIES[policy]`, weights that change
/// with it so that each reload changes the set.
fn config(listen: SocketAddr, admin: SocketAddr, backends: &[SocketAddr], policy: usize) -> String {
    let (name, plugin_config) = POLICIES[policy % POLICIES.len()];
    let mut text = format!(
        "listen = \"{listen}\"\nadmin = \"{admin}\"\n\n[policy]\nplugin = {:?}\nconfig = {plugin_config:?}\n\n\
         [health]\ninterval = \"500ms\"\ntimeout = \"400ms\"\nunhealthy_threshold = 2\nhealthy_threshold = 1\n",
        plugin(name).display().to_string()
    );
    for (index, address) in backends.iter().enumerate() {
        let weight = 1 + (index + policy) % 3;
        text.push_str(&format!(
            "\n[[backends]]\nname = \"b{index}\"\naddress = \"{address}\"\nweight = {weight}\n"
        ));
    }
    text
}

async fn wait_until_serving(admin: SocketAddr, log: &Path) {
    let client = Client::new(admin);
    for _ in 0..300 {
        if client
            .get("/metrics")
            .await
            .is_ok_and(|reply| reply.status == 200)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("vane did not start: see {}", log.display());
}

/// One client: GETs (idempotent) and, one in ten, a POST with a body, as fast as it can.
async fn load(
    listen: SocketAddr,
    client: usize,
    start: Instant,
    running: Arc<AtomicBool>,
    outcomes: Arc<Mutex<Outcomes>>,
) {
    let http = Client::new(listen);
    let mut count = 0usize;
    while running.load(Ordering::SeqCst) {
        count += 1;
        let idempotent = !(count + client).is_multiple_of(10);
        let sent = Instant::now();
        let reply = if idempotent {
            http.get("/").await
        } else {
            http.send(Method::POST, "/echo", &[], Bytes::from_static(b"soak"))
                .await
        };
        let failure = match reply {
            Ok(reply) if reply.status.is_success() => None,
            Ok(reply) => Some(format!("{} {}", reply.status.as_u16(), reply.text().trim())),
            Err(err) => Some(format!("no answer: {err:#}")),
        };
        let latency = sent.elapsed();
        let minute = (sent - start).as_secs() as usize / 60;
        let mut outcomes = outcomes.lock().expect("outcomes");
        outcomes.sent += 1;
        outcomes.idempotent += usize::from(idempotent);
        let (latencies, failed) = outcomes.minutes.entry(minute).or_default();
        latencies.push(latency);
        if let Some(failure) = failure {
            *failed += 1;
            *outcomes.failures.entry((idempotent, failure)).or_default() += 1;
        }
    }
}

/// Kills one backend after another (its listener and connections close at once, as when its
/// process dies), and brings it back where it was.
async fn kill_backends(backends: Arc<Mutex<Vec<Backend>>>, running: Arc<AtomicBool>) {
    let mut next = 0;
    while running.load(Ordering::SeqCst) {
        tokio::time::sleep(KILL_EVERY).await;
        let address = {
            let backends = backends.lock().expect("backends");
            backends[next].stop();
            backends[next].address
        };
        tokio::time::sleep(DEAD_FOR).await;
        let revived = backend(&format!("b{next}")).start_on(address).await;
        backends.lock().expect("backends")[next] = revived;
        next = (next + 1) % BACKENDS;
    }
}

/// Makes one backend after another fail its health checks for a while.
async fn flap_health(backends: Arc<Mutex<Vec<Backend>>>, running: Arc<AtomicBool>) {
    let mut next = 1;
    while running.load(Ordering::SeqCst) {
        tokio::time::sleep(FLAP_EVERY).await;
        backends.lock().expect("backends")[next].set_healthy(false);
        tokio::time::sleep(UNHEALTHY_FOR).await;
        backends.lock().expect("backends")[next].set_healthy(true);
        next = (next + 1) % BACKENDS;
    }
}

/// Swaps the policy by rewriting the config and asking for a reload, every [`SWAP_EVERY`].
async fn swap_policies(
    listen: SocketAddr,
    admin: SocketAddr,
    addresses: Vec<SocketAddr>,
    path: PathBuf,
    running: Arc<AtomicBool>,
) {
    let client = Client::new(admin);
    let mut policy = 0;
    while running.load(Ordering::SeqCst) {
        tokio::time::sleep(SWAP_EVERY).await;
        policy += 1;
        std::fs::write(&path, config(listen, admin, &addresses, policy))
            .expect("rewrite the config");
        match client
            .send(Method::POST, "/reload", &[], Bytes::new())
            .await
        {
            Ok(reply) if reply.status == 200 => {}
            Ok(reply) => eprintln!("reload refused: {} {}", reply.status, reply.text()),
            Err(err) => eprintln!("reload failed: {err:#}"),
        }
    }
}

/// This minute's figures: outcomes from outside, memory and tasks from `/metrics`, descriptors
/// from /proc.
async fn report(minute: usize, outcomes: &Mutex<Outcomes>, admin: SocketAddr, pid: u32) -> Minute {
    let (mut latencies, failed) = outcomes
        .lock()
        .expect("outcomes")
        .minutes
        .remove(&minute)
        .unwrap_or_default();
    let mut seen = Minute {
        sent: latencies.len(),
        failed,
        ..Minute::default()
    };
    latencies.sort_unstable();
    let quantile = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    seen.p50 = quantile(0.5);
    seen.p99 = quantile(0.99);
    if let Ok(reply) = Client::new(admin).get("/metrics").await {
        let metrics = samples(&reply.text());
        seen.rss_mib = metrics
            .get("process_resident_memory_bytes{}")
            .copied()
            .unwrap_or_default()
            / (1024.0 * 1024.0);
        seen.tasks = metrics
            .get("vane_runtime_tasks{}")
            .copied()
            .unwrap_or_default();
    }
    seen.fds = std::fs::read_dir(Path::new("/proc").join(pid.to_string()).join("fd"))
        .map(|entries| entries.count())
        .unwrap_or_default();
    seen
}

/// Prints what vane counted of the churn: retries, ejections, fallbacks, reloads.
async fn print_counters(admin: SocketAddr) {
    let Ok(reply) = Client::new(admin).get("/metrics").await else {
        return;
    };
    let mut counted: Vec<(String, f64)> = samples(&reply.text())
        .into_iter()
        .filter(|(key, value)| {
            *value > 0.0
                && [
                    "retr",
                    "ejections",
                    "fallbacks",
                    "reloads",
                    "client_faults",
                    "evicted",
                ]
                .iter()
                .any(|part| key.contains(part))
        })
        .collect();
    counted.sort_by(|a, b| a.0.cmp(&b.0));
    println!("\nvane counted:");
    for (key, value) in counted {
        println!("  {key} {value}");
    }
}

/// Stops vane as systemd would: SIGTERM, then waits for it to drain and exit.
fn stop(vane: &mut Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(vane.id().to_string())
        .status();
    let _ = vane.wait();
}

/// A figure that must not grow: its name, how to read it, and how much growth is allowed (a
/// factor and a slack).
type Growth = (&'static str, fn(&Minute) -> f64, f64, f64);

/// Passes when no idempotent request failed and memory, descriptors and tasks did not grow from
/// the first minutes (after warm-up) to the last ones; otherwise says what went wrong.
fn verdict(minutes: &[Minute], outcomes: &Outcomes) -> Result<(), String> {
    let mut problems = Vec::new();
    println!(
        "\n{} requests ({} idempotent GETs, the rest POSTs with a body)",
        outcomes.sent, outcomes.idempotent
    );
    for ((idempotent, reason), count) in &outcomes.failures {
        let kind = if *idempotent { "GET" } else { "POST" };
        println!("  failed {kind}: {count} x {reason}");
        if *idempotent {
            problems.push(format!("{count} idempotent requests failed: {reason}"));
        }
    }
    if minutes.len() >= 6 {
        let early = &minutes[1..3];
        let late = &minutes[minutes.len() - 2..];
        let max =
            |part: &[Minute], value: fn(&Minute) -> f64| part.iter().map(value).fold(0.0, f64::max);
        let checks: [Growth; 3] = [
            ("resident memory (MiB)", |m| m.rss_mib, 1.25, 16.0),
            ("open file descriptors", |m| m.fds as f64, 1.0, 64.0),
            ("runtime tasks", |m| m.tasks, 1.0, 64.0),
        ];
        for (what, value, factor, slack) in checks {
            let (before, after) = (max(early, value), max(late, value));
            println!("  {what}: {before:.1} in minutes 2-3, {after:.1} in the last two");
            if after > before * factor + slack {
                problems.push(format!("{what} grew from {before:.1} to {after:.1}"));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
