//! Feedback for a plugin that learns from outcomes (`needs.feedback`): each response's outcome
//! is queued by the plugin runtime as it arrives, and handed to the plugin's `observe` in
//! batches by a task of its own ([`crate::state::deliver_feedback`]), so no client waits for
//! it. A plugin whose `observe` keeps failing stops being asked by a breaker of its own, which
//! successful picks do not reset; failures are counted by reason for `/policy` and `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::breaker::{Admission, Breaker};
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
    /// Outcomes the plugin heard of.
    delivered: AtomicU64,
    /// Outcomes not queued because the breaker was cooling down.
    refused: AtomicU64,
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
            refused: AtomicU64::new(0),
            failures: Default::default(),
            warnings: LogBudget::new(1, LOG_INTERVAL, clock.clone()),
        }
    }

    /// The breaker of the plugin's `observe` calls.
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// Outcomes the plugin heard of through `observe` (each counted once, however many of its
    /// instances heard of it).
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Outcomes dropped while the breaker cooled down.
    pub(super) fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Failed `observe` calls for each reason of [`OBSERVE_FAILURES`].
    pub fn failures(&self) -> [(FallbackReason, u64); OBSERVE_FAILURES.len()] {
        std::array::from_fn(|slot| {
            let count = self.failures[slot].load(Ordering::Relaxed);
            (OBSERVE_FAILURES[slot], count)
        })
    }

    /// Queues the outcome with `plugin` unless this breaker is cooling down (once the cool-down
    /// is over, the next outcome queued wakes the delivery that tries the plugin again);
    /// answers whether it was queued.
    pub(super) fn queue(
        &self,
        plugin: &dyn Balancer,
        set: &BackendSet,
        index: u32,
        status: u16,
        latency: Duration,
    ) -> bool {
        if self.breaker.cooling_down() {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        plugin.observe(set, index, status, latency)
    }

    /// Hands what `plugin` (named `name`) has queued to its `observe`, if its breaker admits
    /// the call, and counts what happened.
    pub(super) fn deliver(&self, name: &str, plugin: &dyn Balancer, set: &BackendSet) {
        let admission = self.breaker.admit(name);
        if admission == Admission::Skip {
            return;
        }
        match plugin.deliver(set) {
            Ok(delivered) => {
                self.delivered
                    .fetch_add(delivered.outcomes as u64, Ordering::Relaxed);
                if delivered.called {
                    self.breaker.succeeded(admission, name);
                } else {
                    // Nothing to hand over: a trial learned nothing, so the next call is one.
                    self.breaker.abandon_trial(admission);
                }
            }
            Err(reason) => {
                // A fresh instance whose `configure` refused is not `observe` failing; the
                // picks count it.
                let Some(slot) = OBSERVE_FAILURES.iter().position(|r| *r == reason) else {
                    self.breaker.abandon_trial(admission);
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;
    use crate::backend::test_set;
    use crate::balancer::{Delivered, Ranked, RequestInfo};
    use crate::clock::ManualClock;
    use crate::policy::BreakerState;

    /// A plugin whose `observe` fails while `broken`; it counts what it was handed.
    #[derive(Default)]
    struct Observer {
        broken: AtomicBool,
        queued: AtomicU64,
        handed: AtomicU64,
    }

    impl Balancer for Observer {
        fn pick(
            &self,
            _: &RequestInfo<'_>,
            _: &BackendSet,
            _: crate::backend::Eligibility,
        ) -> Result<Ranked, FallbackReason> {
            Ok(Ranked::from_slice(&[0]))
        }

        fn wants_feedback(&self) -> bool {
            true
        }

        fn observe(&self, _: &BackendSet, _: u32, _: u16, _: Duration) -> bool {
            self.queued.fetch_add(1, Ordering::Relaxed);
            true
        }

        fn deliver(&self, _: &BackendSet) -> Result<Delivered, FallbackReason> {
            if self.broken.load(Ordering::Relaxed) {
                return Err(FallbackReason::Deadline);
            }
            let queued = self.queued.swap(0, Ordering::Relaxed);
            self.handed.fetch_add(queued, Ordering::Relaxed);
            Ok(Delivered {
                outcomes: queued as usize,
                called: queued > 0,
            })
        }
    }

    #[test]
    fn a_failing_observe_opens_its_breaker_and_is_tried_again_after_the_cool_down() {
        let hand = ManualClock::new();
        let config = BreakerConfig {
            failures: 2,
            cool_down: Duration::from_secs(1),
        };
        let feedback = Feedback::new(config, &hand.clock());
        let plugin = Observer::default();
        let set = test_set(&[1, 1]);
        let outcome = |feedback: &Feedback| feedback.queue(&plugin, &set, 0, 200, Duration::ZERO);

        plugin.broken.store(true, Ordering::Relaxed);
        for _ in 0..2 {
            assert!(outcome(&feedback));
            feedback.deliver("p", &plugin, &set);
        }
        assert_eq!(feedback.breaker().state(), BreakerState::Open);
        assert_eq!(feedback.failures()[1], (FallbackReason::Deadline, 2));
        // While it cools down, outcomes are not even queued, and nothing is called.
        assert!(!outcome(&feedback));
        assert_eq!(feedback.refused(), 1);
        assert_eq!(plugin.queued.load(Ordering::Relaxed), 2);
        feedback.deliver("p", &plugin, &set);
        assert_eq!(feedback.failures()[1], (FallbackReason::Deadline, 2));

        // After the cool-down a delivery with nothing to hand over leaves the trial to the
        // next one, which closes the breaker when the plugin takes what was kept.
        hand.advance(Duration::from_secs(1));
        let idle = Observer::default();
        feedback.deliver("p", &idle, &set);
        assert_eq!(feedback.breaker().state(), BreakerState::Open);
        plugin.broken.store(false, Ordering::Relaxed);
        assert!(outcome(&feedback));
        feedback.deliver("p", &plugin, &set);
        assert_eq!(feedback.breaker().state(), BreakerState::Closed);
        assert_eq!(feedback.delivered(), 3);
        assert_eq!(plugin.handed.load(Ordering::Relaxed), 3);
    }
}
