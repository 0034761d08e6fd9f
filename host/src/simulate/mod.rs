//! `vane plugin test`: a plugin run offline against simulated backends, the plugin author's inner
//! loop. Time is virtual: requests arrive at a steady rate, each backend answers after its own
//! latency, and the live statistics the plugin sees (in-flight, totals, latency EWMA) come from
//! the same code that keeps them in the proxy. The plugin is loaded and called exactly as in
//! `vane run`, fallback and circuit breaker included.

mod html;
mod report;
mod scenario;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::backend::{Backend, BackendSet, InFlightGuard, Outcome, RECENT_SAMPLE_EVERY};
use crate::balancer::{FallbackReason, RequestInfo};
use crate::clock::Clock;
use crate::config::{BackendConfig, BackendProtocol};
use crate::policy::Policy;

pub use html::page as html_report;
pub use report::{KeyReport, Report, Share};
pub use scenario::Scenario;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct Simulation {
    /// Backends at the start.
    pub backends: usize,
    /// Requests to send.
    pub requests: u64,
    /// How the backends differ, and what changes during the run.
    pub scenario: Scenario,
    /// Headers every request carries.
    pub headers: HeaderMap,
    /// Requests in flight on average, at the base latency: the load level. `None` for one per
    /// backend at the start.
    pub concurrency: Option<usize>,
}

/// A simulated backend: its name, weight, latency and health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SimBackend {
    pub name: String,
    pub weight: u32,
    pub latency: Duration,
    pub healthy: bool,
    pub tags: Vec<String>,
    /// The share of its requests that fail, in percent: a 503 at first, or no answer at all
    /// at 100 % (as a dead backend still in rotation).
    pub fail_percent: u32,
}

/// One change to the backend set during the run, at a request number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    Add(SimBackend),
    Remove(String),
    /// The named backend passes or fails its health checks from now on.
    Health(String, bool),
    /// The named backend fails this percentage of its requests from now on.
    Fail(String, u32),
}

/// Runs `simulation` against `policy` (loaded for the scenario's first backend set, which
/// [`Simulation::first_set`] makes with `clock`) and reports what each backend got and how
/// picks went.
pub fn run(simulation: &Simulation, policy: &Policy, first: BackendSet, clock: &Clock) -> Report {
    let changes = simulation
        .scenario
        .changes(simulation.backends, simulation.requests);
    // Every backend the run has seen, in order of appearance.
    let mut known = simulation.scenario.backends(simulation.backends);
    let mut set = first;
    let concurrency = simulation.concurrency.unwrap_or(simulation.backends);
    let interval = arrival_interval(&simulation.scenario, concurrency);
    let mut in_flight: Vec<InFlight> = Vec::new();
    let mut pick_times = Vec::with_capacity(simulation.requests as usize);
    let mut served: Vec<(String, u64)> = Vec::new();
    let mut failed: Vec<(String, u64)> = Vec::new();
    let mut now = Duration::ZERO;
    let mut next_sample = RECENT_SAMPLE_EVERY;
    let mut keys = (simulation.scenario == Scenario::Keys).then(|| KeyMoves::new(&changes));
    let mut timeline = Timeline::new(simulation.requests);
    for sequence in 0..simulation.requests {
        now += interval;
        for (at, change) in &changes {
            if *at == sequence
                && let Some(next) = apply(&set, change, &mut known, clock)
            {
                set = next;
            }
        }
        finish_due(&mut in_flight, now, policy, &set);
        while next_sample <= now {
            set.sample_recent();
            next_sample += RECENT_SAMPLE_EVERY;
        }
        let key = sequence % scenario::KEYS;
        let keyed_headers = keys.as_ref().map(|_| keyed(&simulation.headers, key));
        let request = RequestInfo {
            sequence,
            method: &Method::GET,
            authority: "simulated",
            path: "/",
            client_ip: match keys {
                Some(_) => Ipv4Addr::new(10, 0, (key >> 8) as u8, key as u8).into(),
                None => Ipv4Addr::LOCALHOST.into(),
            },
            headers: keyed_headers.as_ref().unwrap_or(&simulation.headers),
        };
        let started = Instant::now();
        let ranked = policy.pick(&request, &set);
        pick_times.push(started.elapsed());
        let Some((index, backend)) = ranked
            .first()
            .and_then(|&i| Some((i, set.get(i as usize)?)))
        else {
            continue;
        };
        if let Some(keys) = &mut keys {
            keys.served(sequence, key, &backend.name);
        }
        timeline.served(sequence, &backend.name);
        match served.iter_mut().find(|(name, _)| *name == backend.name) {
            Some((_, count)) => *count += 1,
            None => served.push((backend.name.clone(), 1)),
        }
        let (latency, status) = known
            .iter()
            .find(|b| b.name == backend.name)
            .map_or((Duration::ZERO, 200), |b| answer(b, sequence));
        if status != 200 {
            match failed.iter_mut().find(|(name, _)| *name == backend.name) {
                Some((_, count)) => *count += 1,
                None => failed.push((backend.name.clone(), 1)),
            }
        }
        in_flight.push(InFlight {
            due: now + latency,
            latency,
            status,
            index,
            generation: set.generation(),
            guard: InFlightGuard::start(backend.clone()),
        });
    }
    finish_due(&mut in_flight, Duration::MAX, policy, &set);
    let mut report = Report::new(simulation, policy, &known, &served, &failed, pick_times);
    report.keys = keys.map(|keys| keys.summary());
    report.timeline = timeline;
    report.events = changes
        .iter()
        .map(|(at, change)| (*at, change.to_string()))
        .collect();
    report
}

/// `headers` with the `keys` scenario's key `key` added: `x-user: user-N`, `cookie: session=N`.
fn keyed(headers: &HeaderMap, key: u64) -> HeaderMap {
    let mut headers = headers.clone();
    let value = |text: String| HeaderValue::try_from(text).expect("digits make a header value");
    headers.insert("x-user", value(format!("user-{key}")));
    headers.insert(http::header::COOKIE, value(format!("session={key}")));
    headers
}

/// Where each key of the `keys` scenario was served before and after the backend left: how
/// often by each backend, so that a key's backend is the one that served it most (a policy
/// bounding loads sends a key elsewhere now and then without moving it).
struct KeyMoves {
    /// The request the backend leaves at, and its name.
    change: (u64, String),
    before: Vec<BTreeMap<String, u64>>,
    after: Vec<BTreeMap<String, u64>>,
}

impl KeyMoves {
    fn new(changes: &[(u64, Change)]) -> Self {
        let change = changes
            .iter()
            .find_map(|(at, change)| match change {
                Change::Remove(name) => Some((*at, name.clone())),
                _ => None,
            })
            .unwrap_or((u64::MAX, String::new()));
        KeyMoves {
            change,
            before: vec![BTreeMap::new(); scenario::KEYS as usize],
            after: vec![BTreeMap::new(); scenario::KEYS as usize],
        }
    }

    /// Request `sequence`, with key `key`, went to `backend`.
    fn served(&mut self, sequence: u64, key: u64, backend: &str) {
        let phase = if sequence < self.change.0 {
            &mut self.before
        } else {
            &mut self.after
        };
        *phase[key as usize].entry(backend.to_owned()).or_default() += 1;
    }

    fn summary(self) -> KeyReport {
        let most = |counts: BTreeMap<String, u64>| {
            counts
                .into_iter()
                .max_by_key(|(_, count)| *count)
                .map(|(name, _)| name)
        };
        let both: Vec<(String, String)> = self
            .before
            .into_iter()
            .zip(self.after)
            .filter_map(|(before, after)| Some((most(before)?, most(after)?)))
            .collect();
        let left = self.change.1;
        let moved = |from_left: bool| {
            both.iter()
                .filter(|(before, after)| before != after && (*before == left) == from_left)
                .count() as u64
        };
        KeyReport {
            keys: both.len() as u64,
            on_leaving: both.iter().filter(|(before, _)| *before == left).count() as u64,
            moved_from_leaving: moved(true),
            moved_others: moved(false),
            left,
        }
    }
}

impl Simulation {
    /// The backend set the run starts with, to load the plugin against.
    pub fn first_set(&self, clock: &Clock) -> BackendSet {
        let backends = self.scenario.backends(self.backends);
        let backends = backends
            .iter()
            .enumerate()
            .map(|(i, b)| Arc::new(sim_backend(b, i, clock)))
            .collect();
        BackendSet::new(1, backends)
    }

    /// Parses `NAME: VALUE` header arguments.
    pub fn parse_header(text: &str) -> Result<(HeaderName, HeaderValue), String> {
        let (name, value) = text
            .split_once(':')
            .ok_or_else(|| format!("{text:?} is not NAME: VALUE"))?;
        let name = HeaderName::try_from(name.trim()).map_err(|e| format!("{name:?}: {e}"))?;
        let value = HeaderValue::try_from(value.trim()).map_err(|e| format!("{value:?}: {e}"))?;
        Ok((name, value))
    }
}

/// A plugin failure: anything but declining, which is a valid answer.
pub fn is_plugin_failure(reason: FallbackReason) -> bool {
    reason != FallbackReason::Declined
}

/// A simulated request on its way: when it completes, after what latency, the backend it went
/// to (its index in the set of that generation), and its count.
struct InFlight {
    due: Duration,
    latency: Duration,
    /// The status it ends with: 200, 503, or 0 for no answer.
    status: u16,
    index: u32,
    generation: u64,
    guard: InFlightGuard,
}

/// Completes every simulated request due by `now`, feeding its latency to the statistics and,
/// if the plugin asked for feedback and `set` is still the set it went out in, its outcome to
/// the plugin's `observe` (at once, where the proxy gathers outcomes for a few milliseconds).
fn finish_due(in_flight: &mut Vec<InFlight>, now: Duration, policy: &Policy, set: &BackendSet) {
    let mut observed = false;
    in_flight.retain(|request| {
        if request.due > now {
            return true;
        }
        let stats = &request.guard.backend().stats;
        let outcome = match request.status {
            0 => Outcome::NoResponse,
            status => Outcome::Status(status),
        };
        stats.record_outcome(outcome, request.latency);
        if request.generation == set.generation() {
            observed |= policy.observe(set, request.index, request.status, request.latency);
        }
        false
    });
    if observed {
        policy.deliver_feedback(set);
    }
}

/// How `backend` answers the request numbered `sequence`: after its latency with a 200, or, for
/// its failing share, a 503 at once (a fifth of its latency), or nothing after its full latency
/// when it fails every request (a dead backend: the time a connection attempt or timeout takes).
fn answer(backend: &SimBackend, sequence: u64) -> (Duration, u16) {
    let fails = vane_plugin_kit::mix64(sequence ^ 0x5eed) % 100 < u64::from(backend.fail_percent);
    match (fails, backend.fail_percent) {
        (false, _) => (backend.latency, 200),
        (true, 100) => (backend.latency, 0),
        (true, _) => (backend.latency / 5, 503),
    }
}

/// A backend of the simulated set, at a made-up loopback address vane never connects to.
fn sim_backend(b: &SimBackend, index: usize, clock: &Clock) -> Backend {
    let config = BackendConfig {
        name: b.name.clone(),
        address: SocketAddr::from((Ipv4Addr::LOCALHOST, 10_000 + index as u16)),
        weight: b.weight,
        tags: b.tags.clone(),
        protocol: BackendProtocol::Http1,
        tls: None,
    };
    let backend = Backend::new(&config, None, clock);
    backend.health.set_healthy(b.healthy);
    backend
}

/// The set after `change` (`None` if the set stays, a backend's health having changed); a
/// backend that joins is added to `known`.
fn apply(
    set: &BackendSet,
    change: &Change,
    known: &mut Vec<SimBackend>,
    clock: &Clock,
) -> Option<BackendSet> {
    let mut backends: Vec<Arc<Backend>> = set.backends().to_vec();
    match change {
        Change::Add(b) => {
            known.push(b.clone());
            backends.push(Arc::new(sim_backend(b, backends.len(), clock)));
        }
        Change::Remove(name) => backends.retain(|b| b.name != *name),
        Change::Fail(name, percent) => {
            for backend in known.iter_mut().filter(|b| b.name == *name) {
                backend.fail_percent = *percent;
            }
            return None;
        }
        Change::Health(name, healthy) => {
            // The set stays; only the backend's health changes.
            for backend in set.backends().iter().filter(|b| b.name == *name) {
                backend.health.set_healthy(*healthy);
            }
            return None;
        }
    }
    Some(BackendSet::new(set.generation() + 1, backends))
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Add(backend) => write!(f, "{} joins", backend.name),
            Change::Remove(name) => write!(f, "{name} leaves"),
            Change::Health(name, true) => write!(f, "{name} passes its checks"),
            Change::Health(name, false) => write!(f, "{name} fails its checks"),
            Change::Fail(name, 0) => write!(f, "{name} recovers"),
            Change::Fail(name, 100) => write!(f, "{name} stops answering"),
            Change::Fail(name, percent) => write!(f, "{name} fails {percent} %"),
        }
    }
}

/// How many stretches of equal length a run's timeline has at most (a run of fewer requests
/// has one per request).
pub const TIMELINE_STRETCHES: usize = 50;

/// How the requests spread over the backends along the run: per stretch of equal length, the
/// requests each backend was sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timeline {
    requests: u64,
    /// How many stretches: [`TIMELINE_STRETCHES`], or the requests if fewer.
    pub stretches: usize,
    /// Each backend, in order of first request, and its requests per stretch.
    pub backends: Vec<(String, Vec<u64>)>,
}

impl Timeline {
    fn new(requests: u64) -> Self {
        Timeline {
            requests,
            stretches: TIMELINE_STRETCHES.min(usize::try_from(requests).unwrap_or(usize::MAX)),
            backends: Vec::new(),
        }
    }

    /// The stretch request `sequence` falls in.
    pub fn stretch_of(&self, sequence: u64) -> usize {
        let stretch = sequence as u128 * self.stretches as u128 / self.requests.max(1) as u128;
        (stretch as usize).min(self.stretches.saturating_sub(1))
    }

    /// The requests `backend` was sent in each stretch (none if it was sent none).
    pub fn counts(&self, backend: &str) -> Option<&[u64]> {
        self.backends
            .iter()
            .find(|(name, _)| name == backend)
            .map(|(_, counts)| counts.as_slice())
    }

    fn served(&mut self, sequence: u64, backend: &str) {
        let stretch = self.stretch_of(sequence);
        let counts = match self.backends.iter().position(|(name, _)| name == backend) {
            Some(index) => &mut self.backends[index].1,
            None => {
                self.backends
                    .push((backend.to_owned(), vec![0; self.stretches]));
                &mut self.backends.last_mut().expect("just pushed").1
            }
        };
        counts[stretch] += 1;
    }
}

/// Requests arrive at a steady rate, so that at the base latency about `concurrency` are in
/// flight.
fn arrival_interval(scenario: &Scenario, concurrency: usize) -> Duration {
    scenario.base_latency() / concurrency.max(1) as u32
}
