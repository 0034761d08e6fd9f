//! The shadow policy: a candidate plugin asked about a sample of the requests with the same
//! facts the active policy was given, off the request path; its answers are recorded, never
//! used. Operators see how often it agrees with the active policy, where it would have sent
//! traffic against where traffic went, its pick time and its failures, before promoting it.
//!
//! On the request path a sampled request costs a copy of its facts (the states the candidate
//! reads, the request's target and, if the candidate reads headers, its headers) and a push
//! onto a bounded queue; nothing waits. A thread of the shadow's own asks the candidate and
//! records the answer. A full queue drops the case (counted), a failing candidate is stopped by
//! a breaker of its own: a broken shadow costs the clients nothing.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{HeaderMap, Method};

use super::breaker::{Admission, Breaker};
use super::feedback::Feedback;
use crate::backend::{BackendSet, Eligibility};
use crate::balancer::{Balancer, FallbackReason, RequestInfo};
use crate::clock::Clock;
use crate::config::{BreakerConfig, ShadowConfig};
use crate::histogram::{Histogram, PICK_BUCKETS_US};
use crate::log_budget::LogBudget;
use crate::plugin::{PluginBalancer, PluginInfo, Snapshot};

/// Sampled requests waiting for the shadow's thread; more are dropped.
const QUEUE: usize = 1024;

/// One part in a million: the unit of the sample.
const MILLION: u64 = 1_000_000;

/// The candidate policy, its sample, and what it answered.
pub struct Shadow {
    info: PluginInfo,
    /// The share of requests asked about, in millionths.
    sample: u64,
    sample_percent: f64,
    shared: Arc<Shared>,
    cases: SyncSender<Case>,
}

/// What the request path and the shadow's thread share.
struct Shared {
    name: String,
    plugin: PluginBalancer,
    breaker: Breaker,
    stats: ShadowStats,
    warnings: LogBudget,
    /// Cases on the queue: checked before a case is built, so a full queue costs nothing.
    queued: AtomicUsize,
    /// Whether outcomes are being handed to the candidate's `observe` now.
    delivering: AtomicBool,
    /// Outcomes for the candidate's `observe`, if it learns from them: what it would know if
    /// it were active.
    feedback: Feedback,
}

/// What the shadow did: cases sampled and dropped, answers compared and agreed, its pick time,
/// its failures by reason, and each backend's share, actual and would-be.
#[derive(Debug)]
pub struct ShadowStats {
    sampled: AtomicU64,
    dropped: AtomicU64,
    compared: AtomicU64,
    agreed: AtomicU64,
    picks: Histogram,
    failures: [AtomicU64; FallbackReason::ALL.len()],
    /// By backend name: requests the active policy sent there, and answers the shadow gave it,
    /// over the compared cases.
    shares: Mutex<BTreeMap<String, BackendShares>>,
}

/// One backend's part of the compared cases.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackendShares {
    /// Cases the active policy sent to it.
    pub actual: u64,
    /// Cases the shadow would have sent to it.
    pub would_be: u64,
}

/// One sampled request: its facts, the states the shadow reads, and the active policy's choice.
struct Case {
    sequence: u64,
    method: Method,
    authority: String,
    path: String,
    client_ip: IpAddr,
    headers: HeaderMap,
    set: Arc<BackendSet>,
    snapshot: Snapshot,
    chosen: u32,
}

impl Shadow {
    /// Runs `plugin` (loaded from `config`'s file) as a shadow, with a breaker set by `breaker`
    /// and timed by `clock`; starts its thread, which ends when the shadow is dropped.
    pub fn start(
        plugin: PluginBalancer,
        config: &ShadowConfig,
        breaker: BreakerConfig,
        clock: &Clock,
    ) -> std::io::Result<Shadow> {
        let info = plugin.info();
        let shared = Arc::new(Shared {
            name: format!("{} (shadow)", info.name),
            plugin,
            breaker: Breaker::new(breaker, clock.clone()).for_shadow(),
            stats: ShadowStats::default(),
            warnings: LogBudget::new(1, Duration::from_secs(1), clock.clone()),
            queued: AtomicUsize::new(0),
            delivering: AtomicBool::new(false),
            feedback: Feedback::new(breaker, clock),
        });
        let (cases, queue) = std::sync::mpsc::sync_channel(QUEUE);
        // WASI's host functions (clocks, streams) expect a tokio runtime around plugin calls.
        let runtime = tokio::runtime::Handle::try_current().ok();
        let worker = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("vane-shadow".to_owned())
            .stack_size(crate::plugin::CALLER_STACK_SIZE)
            .spawn(move || {
                let _inside = runtime.as_ref().map(|runtime| runtime.enter());
                worker.serve(&queue);
            })?;
        Ok(Shadow {
            info,
            sample: (config.sample_percent * (MILLION / 100) as f64).round() as u64,
            sample_percent: config.sample_percent,
            shared,
            cases,
        })
    }

    /// The candidate plugin: name, file, hash and load time.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// The share of requests it is asked about, in percent.
    pub fn sample_percent(&self) -> f64 {
        self.sample_percent
    }

    /// What it answered so far.
    pub fn stats(&self) -> &ShadowStats {
        &self.shared.stats
    }

    /// Its breaker.
    pub fn breaker(&self) -> &Breaker {
        &self.shared.breaker
    }

    /// If `request` is in the sample, hands its facts (read from `set` as `eligibility`, the
    /// active policy's, allows) and the active policy's choice `chosen` to the shadow's thread.
    /// Never waits: a full queue drops the case.
    pub fn offer(
        &self,
        request: &RequestInfo<'_>,
        set: &Arc<BackendSet>,
        eligibility: Eligibility,
        chosen: u32,
    ) {
        if vane_plugin_kit::mix64(request.sequence) % MILLION >= self.sample {
            return;
        }
        let shared = &self.shared;
        let stats = &shared.stats;
        stats.sampled.fetch_add(1, Ordering::Relaxed);
        if shared.queued.load(Ordering::Relaxed) >= QUEUE {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let plugin = &shared.plugin;
        let case = Case {
            sequence: request.sequence,
            method: request.method.clone(),
            authority: request.authority.to_owned(),
            path: request.path.to_owned(),
            client_ip: request.client_ip,
            headers: if plugin.reads_headers() {
                request.headers.clone()
            } else {
                HeaderMap::new()
            },
            set: Arc::clone(set),
            snapshot: plugin.snapshot(set, eligibility),
            chosen,
        };
        shared.queued.fetch_add(1, Ordering::Relaxed);
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.cases.try_send(case)
        {
            shared.queued.fetch_sub(1, Ordering::Relaxed);
            stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether the candidate asked to hear how requests ended.
    pub fn wants_feedback(&self) -> bool {
        self.shared.plugin.wants_feedback()
    }

    /// What became of the outcomes meant for the candidate's `observe`.
    pub fn feedback(&self) -> &Feedback {
        &self.shared.feedback
    }

    /// Queues how a request to backend `index` of `set` went for the candidate's `observe`, if
    /// it learns from outcomes; answers whether it was queued.
    pub(super) fn observe(
        &self,
        set: &BackendSet,
        index: u32,
        status: u16,
        latency: Duration,
    ) -> bool {
        let shared = &self.shared;
        self.wants_feedback()
            && shared
                .feedback
                .queue(&shared.plugin, set, index, status, latency)
    }

    /// Hands the outcomes queued for `set` to the candidate's `observe`, unless a delivery is
    /// under way already (a slow candidate is skipped, never waited for). Blocking.
    pub fn deliver_feedback(&self, set: &BackendSet) {
        let shared = &self.shared;
        if !self.wants_feedback() || shared.delivering.swap(true, Ordering::Acquire) {
            return;
        }
        shared.feedback.deliver(&shared.name, &shared.plugin, set);
        shared.delivering.store(false, Ordering::Release);
    }

    /// Outcomes the candidate did not hear of: it fell behind, or its `observe` breaker was
    /// cooling down.
    pub fn outcomes_dropped(&self) -> u64 {
        self.shared.plugin.outcomes_dropped() + self.shared.feedback.refused()
    }
}

impl Shared {
    /// Asks the shadow about each case until the shadow is dropped. A panic in the host while
    /// asking is logged and counted as a trap; the thread goes on.
    fn serve(&self, queue: &Receiver<Case>) {
        while let Ok(case) = queue.recv() {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            let admission = self.breaker.admit(&self.name);
            if admission == Admission::Skip {
                self.stats.count_failure(FallbackReason::CircuitOpen);
                continue;
            }
            let asked = std::panic::catch_unwind(AssertUnwindSafe(|| self.ask(&case, admission)));
            if asked.is_err() {
                // Counted as a failure, so a trial that panicked does not leave the breaker
                // half open for good.
                self.breaker.failed(admission, &self.name);
                self.stats.count_failure(FallbackReason::Trap);
                if self.warnings.allow() {
                    tracing::error!(plugin = %self.name, "asking the shadow panicked; going on");
                }
            }
        }
    }

    /// Asks the shadow about one case, admitted by its breaker as `admission`, and records its
    /// answer.
    fn ask(&self, case: &Case, admission: Admission) {
        let stats = &self.stats;
        let request = RequestInfo {
            sequence: case.sequence,
            method: &case.method,
            authority: &case.authority,
            path: &case.path,
            client_ip: case.client_ip,
            headers: &case.headers,
        };
        let started = Instant::now();
        let answer = self
            .plugin
            .pick_snapshot(&request, &case.set, &case.snapshot);
        stats.picks.record(started.elapsed());
        let Some(answer) = answer else {
            // Configured for this set, it reads other columns than were copied for it.
            self.breaker.abandon_trial(admission);
            stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let first = answer.and_then(|mut ranked| {
            // The check the active policy's answers pass, against the states it was given.
            super::fallback::checked_by(&mut ranked, case.set.len(), |i| case.snapshot.eligible(i))
                .map(|()| ranked[0])
        });
        match first {
            Ok(first) => {
                self.breaker.succeeded(admission, &self.name);
                stats.compare(&case.set, case.chosen, first);
            }
            Err(reason) => {
                if reason.is_failure() {
                    self.breaker.failed(admission, &self.name);
                } else {
                    self.breaker.succeeded(admission, &self.name);
                }
                stats.count_failure(reason);
                if reason.is_failure() && self.warnings.allow() {
                    tracing::warn!(
                        plugin = %self.name,
                        reason = reason.label(),
                        "the shadow could not answer; recorded, no request affected"
                    );
                }
            }
        }
    }
}

impl Default for ShadowStats {
    fn default() -> Self {
        ShadowStats {
            sampled: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            compared: AtomicU64::new(0),
            agreed: AtomicU64::new(0),
            picks: Histogram::new(PICK_BUCKETS_US),
            failures: Default::default(),
            shares: Mutex::new(BTreeMap::new()),
        }
    }
}

impl ShadowStats {
    /// Requests sampled for the shadow.
    pub fn sampled(&self) -> u64 {
        self.sampled.load(Ordering::Relaxed)
    }

    /// Sampled requests never asked about: the queue was full, or the candidate, configured
    /// for the set in force, reads other columns than were copied for it.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Cases the shadow answered usably, compared with the active policy's choice.
    pub fn compared(&self) -> u64 {
        self.compared.load(Ordering::Relaxed)
    }

    /// Of those, the ones where its first choice was the active policy's.
    pub fn agreed(&self) -> u64 {
        self.agreed.load(Ordering::Relaxed)
    }

    /// The duration of every call made to the shadow.
    pub fn picks(&self) -> &Histogram {
        &self.picks
    }

    /// Cases it did not answer usably, by reason (declining included), in the order of
    /// [`FallbackReason::ALL`].
    pub fn failures(&self) -> [(FallbackReason, u64); FallbackReason::ALL.len()] {
        FallbackReason::ALL.map(|reason| {
            (
                reason,
                self.failures[reason as usize].load(Ordering::Relaxed),
            )
        })
    }

    /// Each backend's part of the compared cases, by name.
    pub fn shares(&self) -> BTreeMap<String, BackendShares> {
        lock(&self.shares).clone()
    }

    fn count_failure(&self, reason: FallbackReason) {
        self.failures[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Records a case the active policy sent to `chosen` and the shadow to `first`.
    fn compare(&self, set: &BackendSet, chosen: u32, first: u32) {
        self.compared.fetch_add(1, Ordering::Relaxed);
        if chosen == first {
            self.agreed.fetch_add(1, Ordering::Relaxed);
        }
        let name = |index: u32| set.get(index as usize).map(|b| b.name.clone());
        let mut shares = lock(&self.shares);
        if let Some(name) = name(chosen) {
            shares.entry(name).or_default().actual += 1;
        }
        if let Some(name) = name(first) {
            shares.entry(name).or_default().would_be += 1;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
