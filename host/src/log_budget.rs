//! A lock-free budget of log lines per time window, so a failing or chatty plugin cannot flood
//! the log or slow the proxy with formatting.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Allows up to `lines` log lines per `window`; further ones are refused until the window turns.
/// Approximate under contention (a line more or less at a window's edge), never blocking.
#[derive(Debug)]
pub struct LogBudget {
    lines: u32,
    window_ms: u64,
    epoch: Instant,
    window_start_ms: AtomicU64,
    used: AtomicU32,
    allowed_total: AtomicU64,
    refused_total: AtomicU64,
}

impl LogBudget {
    /// A budget of `lines` per `window`.
    pub fn new(lines: u32, window: Duration) -> Self {
        LogBudget {
            lines,
            window_ms: window.as_millis().max(1) as u64,
            epoch: Instant::now(),
            window_start_ms: AtomicU64::new(0),
            used: AtomicU32::new(0),
            allowed_total: AtomicU64::new(0),
            refused_total: AtomicU64::new(0),
        }
    }

    /// Whether one more line may be logged now; counts it if so.
    pub fn allow(&self) -> bool {
        let now_ms = self.epoch.elapsed().as_millis() as u64;
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

    #[test]
    fn allows_the_budget_then_refuses() {
        let budget = LogBudget::new(3, Duration::from_secs(60));
        let allowed = (0..10).filter(|_| budget.allow()).count();
        assert_eq!(allowed, 3);
        assert_eq!(budget.totals(), (3, 7));
    }

    #[test]
    fn allows_again_once_the_window_turns() {
        let budget = LogBudget::new(1, Duration::from_millis(50));
        assert!(budget.allow());
        std::thread::sleep(Duration::from_millis(60));
        assert!(budget.allow());
    }
}
