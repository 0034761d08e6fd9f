//! The retry budget, after Envoy's: retries in flight may be at most a share of the requests in
//! flight (never fewer than a floor), so that when every backend fails, retries cannot multiply
//! the load on them. A request that reached no backend is sent on without taking from it.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::config::RetryConfig;

/// Counts requests and retries in flight, and the retries made and refused.
#[derive(Debug)]
pub struct RetryBudget {
    config: RetryConfig,
    active_requests: AtomicU32,
    active_retries: AtomicU32,
    retries: AtomicU64,
    exhausted: AtomicU64,
}

/// Counts one request as in flight until dropped.
#[derive(Debug)]
pub(crate) struct ActiveRequest<'a>(&'a RetryBudget);

/// Counts one retry as in flight until dropped.
#[derive(Debug)]
pub(crate) struct ActiveRetry<'a>(&'a RetryBudget);

impl RetryBudget {
    /// A budget with these settings and nothing in flight.
    pub fn new(config: RetryConfig) -> Self {
        RetryBudget {
            config,
            active_requests: AtomicU32::new(0),
            active_retries: AtomicU32::new(0),
            retries: AtomicU64::new(0),
            exhausted: AtomicU64::new(0),
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
        if before >= allowed {
            self.active_retries.fetch_sub(1, Ordering::Relaxed);
            self.exhausted.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.retries.fetch_add(1, Ordering::Relaxed);
        Some(ActiveRetry(self))
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
    use super::*;

    fn budget(percent: f64, floor: u32) -> RetryBudget {
        RetryBudget::new(RetryConfig {
            max_retries: 2,
            budget_percent: percent,
            min_retry_concurrency: floor,
        })
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
}
