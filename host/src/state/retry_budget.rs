//! The retry budget, after Envoy's and Finagle's: a retry is refused only when retries in
//! flight are past a share of the requests in flight (never fewer than a floor, as Envoy's)
//! *and* retries of late are past the same share of the requests of late (as Finagle's and
//! linkerd's budgets, over the last 10 to 20 s). When every backend fails, retries are soon
//! past that share and cannot multiply the load on them; when one backend dies with many
//! requests in flight on it, they are all retried at once, as retries are otherwise rare.
//! A request that reached no backend is sent on without taking from the budget.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::clock::{Clock, Millis};
use crate::config::RetryConfig;

/// How long a window of "late" requests and retries lasts: the share is taken over the current
/// window and the one before it, so over the last 10 to 20 seconds.
const WINDOW: Millis = 10_000;

/// Counts requests and retries in flight and of late, and the retries made and refused.
#[derive(Debug)]
pub struct RetryBudget {
    config: RetryConfig,
    clock: Clock,
    active_requests: AtomicU32,
    active_retries: AtomicU32,
    requests: AtomicU64,
    retries: AtomicU64,
    exhausted: AtomicU64,
    /// The totals when the previous window began, and when the current one began (read only
    /// when a retry is over the in-flight share, which is rare).
    windows: Mutex<Windows>,
}

/// Where the previous and the current window of late requests and retries began.
#[derive(Debug, Default)]
struct Windows {
    /// When the current window began.
    current_since: Millis,
    /// The totals (requests, retries) when the current window began.
    current: (u64, u64),
    /// The totals when the previous window began.
    previous: (u64, u64),
}

/// Counts one request as in flight until dropped.
#[derive(Debug)]
pub(crate) struct ActiveRequest<'a>(&'a RetryBudget);

/// Counts one retry as in flight until dropped.
#[derive(Debug)]
pub(crate) struct ActiveRetry<'a>(&'a RetryBudget);

impl RetryBudget {
    /// A budget with these settings and nothing in flight, keeping time by `clock`.
    pub fn new(config: RetryConfig, clock: Clock) -> Self {
        let current_since = clock.now();
        RetryBudget {
            config,
            clock,
            active_requests: AtomicU32::new(0),
            active_retries: AtomicU32::new(0),
            requests: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            exhausted: AtomicU64::new(0),
            windows: Mutex::new(Windows {
                current_since,
                ..Windows::default()
            }),
        }
    }

    /// Further attempts allowed after a request's first.
    pub fn max_retries(&self) -> u32 {
        self.config.max_retries
    }

    /// Retries made since start.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Retries refused because the budget was spent.
    pub fn exhausted(&self) -> u64 {
        self.exhausted.load(Ordering::Relaxed)
    }

    /// Counts a request in flight, until the guard drops.
    pub(crate) fn start_request(&self) -> ActiveRequest<'_> {
        self.active_requests.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        ActiveRequest(self)
    }

    /// Counts a retry that takes nothing from the budget: a request that reached no backend
    /// (its connection was refused or timed out), sent to the next one.
    pub(crate) fn count_reroute(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes a retry from the budget, or counts the refusal and answers `None`.
    pub(crate) fn try_retry(&self) -> Option<ActiveRetry<'_>> {
        let requests = self.active_requests.load(Ordering::Relaxed);
        let share = (f64::from(requests) * self.config.budget_percent / 100.0) as u32;
        let allowed = share.max(self.config.min_retry_concurrency);
        let before = self.active_retries.fetch_add(1, Ordering::Relaxed);
        if before >= allowed && !self.rare_of_late() {
            self.active_retries.fetch_sub(1, Ordering::Relaxed);
            self.exhausted.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.retries.fetch_add(1, Ordering::Relaxed);
        Some(ActiveRetry(self))
    }

    /// Whether one more retry keeps the retries of late (this window and the one before)
    /// within `budget_percent` of the requests of late.
    fn rare_of_late(&self) -> bool {
        let now = self.clock.now();
        let mut windows = self.windows.lock().unwrap_or_else(|err| err.into_inner());
        // Read under the lock: the totals only grow, so none kept in `windows` is past them.
        let totals = (
            self.requests.load(Ordering::Relaxed),
            self.retries.load(Ordering::Relaxed),
        );
        let elapsed = now.saturating_sub(windows.current_since);
        if elapsed >= WINDOW {
            windows.previous = if elapsed < 2 * WINDOW {
                windows.current
            } else {
                // Nobody looked for two windows or more (retries past the in-flight share are
                // rare): what came since is taken as spread evenly over that time.
                let span = WINDOW + elapsed % WINDOW;
                let since = |total: u64, then: u64| total - (total - then) * span / elapsed;
                (
                    since(totals.0, windows.current.0),
                    since(totals.1, windows.current.1),
                )
            };
            windows.current = totals;
            windows.current_since = now - elapsed % WINDOW;
        }
        let requests = totals.0 - windows.previous.0;
        let retries = totals.1 - windows.previous.1;
        (retries + 1) as f64 <= requests as f64 * self.config.budget_percent / 100.0
    }
}

impl Drop for ActiveRequest<'_> {
    fn drop(&mut self) {
        self.0.active_requests.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for ActiveRetry<'_> {
    fn drop(&mut self) {
        self.0.active_retries.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::clock::ManualClock;

    fn budget(percent: f64, floor: u32) -> RetryBudget {
        budget_on(percent, floor, Clock::new())
    }

    fn budget_on(percent: f64, floor: u32, clock: Clock) -> RetryBudget {
        let config = RetryConfig {
            max_retries: 2,
            budget_percent: percent,
            min_retry_concurrency: floor,
        };
        RetryBudget::new(config, clock)
    }

    #[test]
    fn the_floor_allows_a_few_retries_at_any_load() {
        let budget = budget(20.0, 2);
        let _request = budget.start_request();
        let first = budget.try_retry();
        let second = budget.try_retry();
        assert!(first.is_some() && second.is_some());
        assert!(budget.try_retry().is_none());
        drop(first);
        assert!(
            budget.try_retry().is_some(),
            "a finished retry frees its slot"
        );
        assert_eq!((budget.retries(), budget.exhausted()), (3, 1));
    }

    #[test]
    fn the_share_grows_with_requests_in_flight() {
        let budget = budget(20.0, 0);
        let requests: Vec<_> = (0..10).map(|_| budget.start_request()).collect();
        let retries: Vec<_> = (0..5).filter_map(|_| budget.try_retry()).collect();
        assert_eq!(retries.len(), 2, "20% of 10 requests");
        drop(requests);
        drop(retries);
        assert!(
            budget.try_retry().is_none(),
            "no requests, no floor: no retries"
        );
    }

    #[test]
    fn a_burst_past_the_share_in_flight_passes_while_retries_are_rare_of_late() {
        let budget = budget(20.0, 2);
        for _ in 0..100 {
            drop(budget.start_request());
        }
        // A backend dies with 16 requests in flight on it: all 16 are retried at once.
        let requests: Vec<_> = (0..16).map(|_| budget.start_request()).collect();
        let retries: Vec<_> = (0..16).filter_map(|_| budget.try_retry()).collect();
        assert_eq!(
            retries.len(),
            16,
            "16 retries of 116 requests are within 20%"
        );
        // Past 20% of late, only the share in flight (3 of 16) and the floor (2) count.
        let more: Vec<_> = (0..16).filter_map(|_| budget.try_retry()).collect();
        assert_eq!(more.len(), 7, "up to 23 retries of late");
        assert!(budget.try_retry().is_none());
        drop(requests);
    }

    #[test]
    fn requests_of_late_count_however_long_since_the_last_look() {
        let time = ManualClock::new();
        let budget = budget_on(20.0, 0, time.clock());
        // 300 requests over 30 s, and no retry meanwhile: about 100 of them in the last 10 to
        // 20 s, whose 20 % allow 20 retries.
        for _ in 0..300 {
            drop(budget.start_request());
        }
        time.advance(Duration::from_millis(3 * WINDOW));
        let retries: Vec<_> = (0..30).filter_map(|_| budget.try_retry()).collect();
        assert_eq!(retries.len(), 20);
    }

    #[test]
    fn retries_of_late_are_forgotten_after_two_windows() {
        let time = ManualClock::new();
        let budget = budget_on(20.0, 0, time.clock());
        for _ in 0..10 {
            drop(budget.start_request());
        }
        let _request = budget.start_request();
        let spent: Vec<_> = (0..5).filter_map(|_| budget.try_retry()).collect();
        assert_eq!(spent.len(), 2, "20% of 11 requests");
        drop(spent);
        // The next window still remembers them.
        time.advance(Duration::from_millis(WINDOW));
        assert!(budget.try_retry().is_none());
        // Two windows on, only requests made since count, and there are none.
        time.advance(Duration::from_millis(WINDOW));
        assert!(budget.try_retry().is_none());
        for _ in 0..5 {
            drop(budget.start_request());
        }
        assert!(budget.try_retry().is_some(), "one retry of 5 requests");
        assert!(budget.try_retry().is_none());
    }
}
