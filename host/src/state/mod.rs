//! What the proxy, the health checks, the admin API and reloads share: the live backend set and
//! policy (each replaced whole, read without locks), the retry budget every request draws on,
//! the count of client connections, and the clock. Readers load snapshots; only a reload swaps
//! new ones in.

mod client_connections;
mod retry_budget;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::{ArcSwap, Guard};
use tokio::sync::Notify;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

pub use client_connections::{ClientConnections, ClientFault, OpenConnection};
pub use retry_budget::RetryBudget;

use crate::backend::{BackendSet, RECENT_SAMPLE_EVERY, RECENT_SAMPLES};
use crate::clock::Clock;
use crate::config::RetryConfig;
use crate::policy::{Policy, Shadow};

/// The live state of one vane.
pub struct State {
    backends: ArcSwap<BackendSet>,
    policy: ArcSwap<Policy>,
    retry_budget: RetryBudget,
    client_connections: ClientConnections,
    clock: Clock,
    /// Wakes [`deliver_feedback`] for outcomes queued for the plugin's `observe`.
    feedback_queued: Notify,
    /// Whether a delivery is due: set by the first outcome queued after a delivery began, so
    /// that each later one costs one load.
    feedback_due: AtomicBool,
    /// Whether vane is shutting down: `GET /ready` answers 503 from then on.
    shutting_down: AtomicBool,
}

impl State {
    /// State serving `backends` with `policy`, retrying as `retries` allows, timed by `clock`.
    pub fn new(
        backends: BackendSet,
        policy: Policy,
        retries: RetryConfig,
        clock: Clock,
    ) -> Arc<Self> {
        Arc::new(State {
            backends: ArcSwap::from_pointee(backends),
            policy: ArcSwap::from_pointee(policy),
            retry_budget: RetryBudget::new(retries, clock.clone()),
            client_connections: ClientConnections::default(),
            clock,
            feedback_queued: Notify::new(),
            feedback_due: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
        })
    }

    /// The client connections open and refused.
    pub fn client_connections(&self) -> &ClientConnections {
        &self.client_connections
    }

    /// The backend set in force, for a short look (a status page, one probe round).
    pub fn backends(&self) -> Guard<Arc<BackendSet>> {
        self.backends.load()
    }

    /// The backend set in force, to hold for as long as a request needs it.
    pub fn hold_backends(&self) -> Arc<BackendSet> {
        self.backends.load_full()
    }

    /// The policy in force.
    pub fn policy(&self) -> Guard<Arc<Policy>> {
        self.policy.load()
    }

    /// The policy in force, to hold while a new one is admitted.
    pub fn hold_policy(&self) -> Arc<Policy> {
        self.policy.load_full()
    }

    /// Retries allowed, made and refused.
    pub fn retry_budget(&self) -> &RetryBudget {
        &self.retry_budget
    }

    /// Queues how a request to backend `index` of `set` went for the plugin's `observe`, if
    /// it asked and `set` is still the set in force (else the plugin has been configured for
    /// another), and makes sure [`deliver_feedback`] comes for it.
    pub fn observe(&self, set: &BackendSet, index: u32, status: u16, latency: Duration) {
        // Queued first, then the flag: a delivery that cleared the flag before this load takes
        // the outcome, or this call sees the flag clear and wakes the next one.
        if self.backends().generation() == set.generation()
            && self.policy().observe(set, index, status, latency)
            && !self.feedback_due.load(Ordering::SeqCst)
            && !self.feedback_due.swap(true, Ordering::SeqCst)
        {
            self.feedback_queued.notify_one();
        }
    }

    /// The clock every part of this vane keeps time by.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Marks vane as shutting down, so that it no longer says it is ready and HTTP/1 clients
    /// are told to close their connections after their requests.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
        self.client_connections.close_after_requests();
    }

    /// Why vane should not be sent new requests, if it should not: it is shutting down, or no
    /// backend is in rotation. `None` when it is ready.
    pub fn not_ready(&self) -> Option<&'static str> {
        if self.shutting_down.load(Ordering::Relaxed) {
            Some("shutting down")
        } else if !self.backends().backends().iter().any(|b| b.in_rotation()) {
            Some("no backend in rotation")
        } else {
            None
        }
    }

    /// Puts a new backend set in force with the policy in force, which configures itself for it
    /// (a change of backends' TLS files).
    pub(crate) fn swap_backends(&self, backends: BackendSet) {
        self.backends.store(Arc::new(backends));
    }

    /// Puts a new policy in force, and a new backend set if there is one. Requests already under
    /// way keep the snapshots they loaded; a plugin meeting a set it was not configured for
    /// configures itself again.
    pub(crate) fn swap(&self, backends: Option<BackendSet>, policy: Policy) {
        if let Some(backends) = backends {
            self.backends.store(Arc::new(backends));
        }
        self.policy.store(Arc::new(policy));
    }
}

/// Samples the recent counts of the backend set in force once per [`RECENT_SAMPLE_EVERY`] of
/// vane's clock (see [`crate::backend::BackendStats::recent`]), until `stop`. It looks once per
/// [`RECENT_SAMPLE_EVERY`] and takes one sample for each period the clock moved since, so a test
/// that moves a manual clock moves the window with it.
pub async fn sample_recent(state: Arc<State>, stop: CancellationToken) {
    let period = RECENT_SAMPLE_EVERY.as_millis() as u64;
    let periods = || state.clock().now() / period;
    let mut sampled = periods();
    let mut ticks = tokio::time::interval(RECENT_SAMPLE_EVERY);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = stop.cancelled() => return,
        }
        let now = periods();
        // After a long pause, enough samples of the totals now to empty the window.
        let due = now.saturating_sub(sampled).min(RECENT_SAMPLES as u64 + 1);
        sampled = now;
        let set = state.backends();
        for _ in 0..due {
            set.sample_recent();
        }
    }
}

/// How long outcomes gather after the first one is queued before they go to the plugin's
/// `observe` together: a plugin learns within this much, in at most this many calls a second.
pub const FEEDBACK_GATHER: Duration = Duration::from_millis(5);

/// How often outcomes are delivered without being woken: so that an instance that was busy
/// at the last delivery hears of it even if no outcome follows.
pub const FEEDBACK_CATCH_UP: Duration = Duration::from_secs(1);

/// Hands the queued outcomes to the plugin's `observe` in batches, each on tokio's blocking
/// threads so that a slow or broken `observe` holds up no client, until `stop`.
pub async fn deliver_feedback(state: Arc<State>, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = state.feedback_queued.notified() => {
                tokio::time::sleep(FEEDBACK_GATHER).await;
            }
            () = tokio::time::sleep(FEEDBACK_CATCH_UP) => {}
            () = stop.cancelled() => return,
        }
        state.feedback_due.store(false, Ordering::SeqCst);
        let policy = state.hold_policy();
        if !policy.delivers_feedback() {
            continue;
        }
        let set = state.hold_backends();
        if policy.shadow().is_some_and(Shadow::wants_feedback) {
            // Not waited for: the shadow skips a round while its last delivery is under way.
            let (policy, set) = (policy.clone(), set.clone());
            tokio::task::spawn_blocking(move || {
                if let Some(shadow) = policy.shadow() {
                    shadow.deliver_feedback(&set);
                }
            });
        }
        let delivered = tokio::task::spawn_blocking(move || policy.deliver_feedback(&set));
        if delivered.await.is_err() {
            tracing::error!("delivering outcomes to the plugin panicked");
        }
    }
}
