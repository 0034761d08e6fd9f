//! A lock-free budget of log lines per time window, so a failing or chatty plugin cannot flood
//! the log or slow the proxy with formatting.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::{Clock, Millis};

/// Allows up to `lines` log lines per `window`; further ones are refused until the window turns.
/// Approximate under contention (a line more or less at a window's edge), never blocking.
#[derive(Debug)]
pub struct LogBudget {
    lines: u32,
    window_ms: Millis,
    clock: Clock,
    window_start_ms: AtomicU64,
    used: AtomicU32,
    allowed_total: AtomicU64,
    refused_total: AtomicU64,
}

impl LogBudget {
    /// A budget of `lines` per `window`, timed by `clock`.
    pub fn new(lines: u32, window: Duration, clock: Clock) -> Self {
        LogBudget {
            lines,
            window_ms: window.as_millis().max(1) as Millis,
            clock,
            window_start_ms: AtomicU64::new(0),
            used: AtomicU32::new(0),
            allowed_total: AtomicU64::new(0),
            refused_total: AtomicU64::new(0),
        }
    }

    /// Whether one more line may be logged now; counts it if so.
    pub fn allow(&self) -> bool {
        let now_ms = self.clock.now();
        let start = self.window_start_ms.load(Ordering::Relaxed);
        if now_ms.saturating_sub(start) >= self.window_ms
            && self
                .window_start_ms
                .compare_exchange(start, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.used.store(0, Ordering::Relaxed);
        }
        let allowed = self.used.fetch_add(1, Ordering::Relaxed) < self.lines;
        let total = if allowed {
            &self.allowed_total
        } else {
            &self.refused_total
        };
        total.fetch_add(1, Ordering::Relaxed);
        allowed
    }

    /// Lines allowed and lines refused since the budget was made.
    pub fn totals(&self) -> (u64, u64) {
        (
            self.allowed_total.load(Ordering::Relaxed),
            self.refused_total.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::clock::ManualClock;

    #[test]
    fn allows_the_budget_in_each_window_then_refuses() {
        let hand = ManualClock::new();
        let budget = LogBudget::new(3, Duration::from_secs(1), hand.clock());
        let allowed = (0..10).filter(|_| budget.allow()).count();
        assert_eq!(allowed, 3);
        assert_eq!(budget.totals(), (3, 7));

        hand.advance(Duration::from_millis(999));
        assert!(!budget.allow(), "the window has not turned");
        hand.advance(Duration::from_millis(1));
        let allowed = (0..10).filter(|_| budget.allow()).count();
        assert_eq!(allowed, 3, "a new window, a new budget");
        assert_eq!(budget.totals(), (6, 15));
    }
}
