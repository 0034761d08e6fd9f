//! Feedback for a plugin that learns from outcomes (`needs.feedback`): each response's outcome
//! is queued by the plugin runtime as it arrives, and handed to the plugin's `observe` in
//! batches by a task of its own ([`crate::state::deliver_feedback`]), so no client waits for
//! it. A plugin whose `observe` keeps failing stops being asked by a breaker of its own, which
//! successful picks do not reset; failures are counted by reason for `/policy` and `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::breaker::{Admission, Breaker, BreakerState};
use crate::backend::BackendSet;
use crate::balancer::{Balancer, FallbackReason};
use crate::clock::Clock;
use crate::config::BreakerConfig;
use crate::log_budget::LogBudget;

/// At most one warning about a failed `observe` per this interval.
const LOG_INTERVAL: Duration = Duration::from_secs(1);

/// The ways an `observe` call fails, in the order [`Feedback::failures`] counts them.
pub const OBSERVE_FAILURES: [FallbackReason; 3] = [
    FallbackReason::Trap,
    FallbackReason::Deadline,
    FallbackReason::Memory,
];

/// What became of the outcomes meant for the plugin's `observe`.
#[derive(Debug)]
pub struct Feedback {
    breaker: Breaker,
    /// Outcomes the plugin received.
    delivered: AtomicU64,
    /// `observe` calls that failed, by reason, in the order of [`OBSERVE_FAILURES`].
    failures: [AtomicU64; OBSERVE_FAILURES.len()],
    warnings: LogBudget,
}

impl Feedback {
    /// Nothing delivered yet; the breaker is set by `breaker` and timed by `clock`.
    pub(super) fn new(breaker: BreakerConfig, clock: &Clock) -> Self {
        Feedback {
            breaker: Breaker::new(breaker, clock.clone()).for_observe(),
            delivered: AtomicU64::new(0),
            failures: Default::default(),
            warnings: LogBudget::new(1, LOG_INTERVAL, clock.clone()),
        }
    }

    /// The breaker of the plugin's `observe` calls.
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// Outcomes the plugin received through `observe`.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Failed `observe` calls for each reason of [`OBSERVE_FAILURES`].
    pub fn failures(&self) -> [(FallbackReason, u64); OBSERVE_FAILURES.len()] {
        std::array::from_fn(|slot| {
            let count = self.failures[slot].load(Ordering::Relaxed);
            (OBSERVE_FAILURES[slot], count)
        })
    }

    /// Queues the outcome with `plugin` unless this breaker is open; answers whether the queue
    /// was empty before (then the caller wakes the delivery task).
    pub(super) fn queue(
        &self,
        plugin: &dyn Balancer,
        set: &BackendSet,
        index: u32,
        status: u16,
        latency: Duration,
    ) -> bool {
        self.breaker.state() != BreakerState::Open && plugin.observe(set, index, status, latency)
    }

    /// Hands what `plugin` (named `name`) has queued to its `observe`, if its breaker admits
    /// the call, and counts what happened.
    pub(super) fn deliver(&self, name: &str, plugin: &dyn Balancer, set: &BackendSet) {
        let admission = self.breaker.admit(name);
        if admission == Admission::Skip {
            return;
        }
        match plugin.deliver(set) {
            Ok(0) => {}
            Ok(count) => {
                self.breaker.succeeded(admission, name);
                self.delivered.fetch_add(count as u64, Ordering::Relaxed);
            }
            Err(reason) => {
                // A fresh instance whose `configure` refused is not `observe` failing; the
                // picks count it.
                let Some(slot) = OBSERVE_FAILURES.iter().position(|r| *r == reason) else {
                    return;
                };
                self.breaker.failed(admission, name);
                let total = self.failures[slot].fetch_add(1, Ordering::Relaxed) + 1;
                if self.warnings.allow() {
                    tracing::warn!(
                        plugin = name,
                        reason = reason.label(),
                        total,
                        "{reason} in observe; those outcomes are lost"
                    );
                }
            }
        }
    }
}
