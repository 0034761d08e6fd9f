//! Why a plugin's answer was not used, and how often: counted per reason, logged rate-limited.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::log_budget::LogBudget;

/// Why a request went through the built-in round-robin instead of the plugin's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FallbackReason {
    /// The plugin trapped (panic, unreachable, bad memory access, failed to instantiate).
    #[error("the plugin trapped")]
    Trap,
    /// The call ran past its deadline.
    #[error("the plugin ran past its deadline")]
    Deadline,
    /// The plugin tried to grow its memory past the cap.
    #[error("the plugin hit its memory cap")]
    Memory,
    /// The plugin answered no backend.
    #[error("the plugin declined to pick")]
    Declined,
    /// The plugin answered an index past the last backend.
    #[error("the plugin picked an index out of range")]
    BadIndex,
    /// The plugin's first choice may not receive traffic (unhealthy or ejected).
    #[error("the plugin picked a backend that is not eligible")]
    Ineligible,
    /// The plugin was not called: its circuit breaker is open after repeated failures.
    #[error("the plugin's circuit breaker is open")]
    CircuitOpen,
}

impl FallbackReason {
    /// Every reason, in the order of [`FallbackCounts::snapshot`].
    pub const ALL: [FallbackReason; 7] = [
        FallbackReason::Trap,
        FallbackReason::Deadline,
        FallbackReason::Memory,
        FallbackReason::Declined,
        FallbackReason::BadIndex,
        FallbackReason::Ineligible,
        FallbackReason::CircuitOpen,
    ];

    /// The reason's label in logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            FallbackReason::Trap => "trap",
            FallbackReason::Deadline => "deadline",
            FallbackReason::Memory => "memory",
            FallbackReason::Declined => "declined",
            FallbackReason::BadIndex => "bad_index",
            FallbackReason::Ineligible => "ineligible",
            FallbackReason::CircuitOpen => "circuit_open",
        }
    }

    /// Whether the plugin is broken rather than choosing not to answer: a trap, the deadline,
    /// the memory cap or an index out of range. These count toward its circuit breaker;
    /// declining, or naming a backend that just left rotation, do not.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            FallbackReason::Trap
                | FallbackReason::Deadline
                | FallbackReason::Memory
                | FallbackReason::BadIndex
        )
    }
}

/// At most one fallback warning per this interval, so a failing plugin cannot flood the log.
const LOG_INTERVAL: Duration = Duration::from_secs(1);

/// Fallback counters by reason, with a rate limit for the warning each one logs.
#[derive(Debug)]
pub struct FallbackCounts {
    counts: [AtomicU64; FallbackReason::ALL.len()],
    warnings: LogBudget,
}

impl Default for FallbackCounts {
    fn default() -> Self {
        FallbackCounts {
            counts: Default::default(),
            warnings: LogBudget::new(1, LOG_INTERVAL),
        }
    }
}

impl FallbackCounts {
    /// Counts one fallback, and logs it unless another was logged within the last second.
    /// Requests skipped by an open breaker are not logged one by one: the breaker logs opening.
    pub fn record(&self, plugin: &str, reason: FallbackReason) {
        let total = self.counts[reason as usize].fetch_add(1, Ordering::Relaxed) + 1;
        if reason != FallbackReason::CircuitOpen && self.warnings.allow() {
            tracing::warn!(
                plugin,
                reason = reason.label(),
                total,
                "{reason}; served by the built-in round-robin"
            );
        }
    }

    /// The count for each reason, in the order of [`FallbackReason::ALL`].
    pub fn snapshot(&self) -> [(FallbackReason, u64); FallbackReason::ALL.len()] {
        FallbackReason::ALL
            .map(|reason| (reason, self.counts[reason as usize].load(Ordering::Relaxed)))
    }

    /// The count for one reason.
    pub fn get(&self, reason: FallbackReason) -> u64 {
        self.counts[reason as usize].load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_reason_apart() {
        let counts = FallbackCounts::default();
        counts.record("p", FallbackReason::Trap);
        counts.record("p", FallbackReason::Trap);
        counts.record("p", FallbackReason::BadIndex);
        assert_eq!(counts.get(FallbackReason::Trap), 2);
        assert_eq!(counts.get(FallbackReason::BadIndex), 1);
        assert_eq!(counts.get(FallbackReason::Declined), 0);
        assert_eq!(counts.snapshot()[0], (FallbackReason::Trap, 2));
    }
}
