//! A backend's live statistics, updated without locks on the request path, and the in-flight
//! guard that counts a request until its response body ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use super::Backend;
use super::recent::RecentWindow;
use crate::histogram::{Histogram, REQUEST_BUCKETS_US};

/// The weight of a backend's newest latency sample in the moving average: 1/8, as TCP's
/// smoothed round-trip time (RFC 6298 §2), quick to follow a change without jumping on one outlier.
const EWMA_SHIFT: u32 = 3;

/// The outcome of one attempt, as counted in metrics: the status class, or no response at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A response with this status code.
    Status(u16),
    /// No response: no connection, a timeout, or the connection broke off before the headers.
    NoResponse,
}

impl Outcome {
    /// Every class label, in the order of [`BackendStats::outcomes`].
    pub const LABELS: [&'static str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "error"];

    fn slot(self) -> usize {
        match self {
            Outcome::Status(status @ 100..=599) => usize::from(status / 100 - 1),
            // A status outside 100..=599 cannot come from hyper; count it with the errors.
            Outcome::Status(_) | Outcome::NoResponse => 5,
        }
    }
}

/// A backend's live statistics, updated by the proxy and read by the balancer and the admin API.
#[derive(Debug)]
pub struct BackendStats {
    in_flight: AtomicU32,
    requests: AtomicU64,
    failures: AtomicU64,
    latency_ewma_us: AtomicU32,
    outcomes: [AtomicU64; Outcome::LABELS.len()],
    latency: Histogram,
    recent: RecentWindow,
}

impl Default for BackendStats {
    fn default() -> Self {
        BackendStats {
            in_flight: AtomicU32::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            latency_ewma_us: AtomicU32::new(0),
            outcomes: Default::default(),
            latency: Histogram::new(REQUEST_BUCKETS_US),
            recent: RecentWindow::default(),
        }
    }
}

impl BackendStats {
    /// Requests sent whose response has not finished.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Requests sent since the backend joined the set (every attempt, retries included).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Requests that failed: no connection, timeout, broken off, or a 5xx answer.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// `(requests, failures)` in about the last ten seconds: the totals now less those sampled
    /// about ten seconds ago (see [`BackendStats::sample_recent`]).
    pub fn recent(&self) -> (u64, u64) {
        self.recent.since_oldest(self.requests(), self.failures())
    }

    /// Samples the totals for [`BackendStats::recent`]; once a second, by one ticker.
    pub fn sample_recent(&self) {
        self.recent.sample(self.requests(), self.failures());
    }

    /// The moving average of the time to response headers, in microseconds (0 before any).
    pub fn latency_ewma_us(&self) -> u32 {
        self.latency_ewma_us.load(Ordering::Relaxed)
    }

    /// Attempts by outcome, in the order of [`Outcome::LABELS`].
    pub fn outcomes(&self) -> [u64; Outcome::LABELS.len()] {
        std::array::from_fn(|slot| self.outcomes[slot].load(Ordering::Relaxed))
    }

    /// The distribution of the time to response headers.
    pub fn latency(&self) -> &Histogram {
        &self.latency
    }

    /// Counts one failed request.
    pub fn record_failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts the outcome of one attempt; a response also feeds the latency figures.
    pub fn record_outcome(&self, outcome: Outcome, latency: Duration) {
        self.outcomes[outcome.slot()].fetch_add(1, Ordering::Relaxed);
        match outcome {
            Outcome::Status(status) => {
                self.record_latency(latency);
                if status >= 500 {
                    self.record_failure();
                }
            }
            Outcome::NoResponse => self.record_failure(),
        }
    }

    /// Folds one time-to-headers sample into the moving average and the histogram.
    pub fn record_latency(&self, latency: Duration) {
        self.latency.record(latency);
        let sample = u32::try_from(latency.as_micros())
            .unwrap_or(u32::MAX)
            .max(1);
        let _ = self
            .latency_ewma_us
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(if old == 0 {
                    sample
                } else {
                    let old = i64::from(old);
                    (old + ((i64::from(sample) - old) >> EWMA_SHIFT)).max(1) as u32
                })
            });
    }
}

/// Counts one request as in flight on a backend until dropped.
#[derive(Debug)]
pub struct InFlightGuard {
    backend: Arc<Backend>,
}

impl InFlightGuard {
    /// Starts a request on `backend`: counts it in `requests` and `in_flight`.
    pub fn start(backend: Arc<Backend>) -> Self {
        backend.stats.requests.fetch_add(1, Ordering::Relaxed);
        backend.stats.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlightGuard { backend }
    }

    /// The backend this request went to.
    pub fn backend(&self) -> &Arc<Backend> {
        &self.backend
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.backend.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend() -> Arc<Backend> {
        crate::backend::test_set(&[0]).backends()[0].clone()
    }

    #[test]
    fn guard_counts_in_flight_until_dropped() {
        let b = backend();
        let guard = InFlightGuard::start(b.clone());
        let second = InFlightGuard::start(b.clone());
        assert_eq!((b.stats.in_flight(), b.stats.requests()), (2, 2));
        drop(guard);
        drop(second);
        assert_eq!((b.stats.in_flight(), b.stats.requests()), (0, 2));
        assert_eq!(b.weight, 1, "weight 0 is raised to 1");
    }

    #[test]
    fn latency_ewma_starts_at_first_sample_then_moves_an_eighth() {
        let b = backend();
        b.stats.record_latency(Duration::from_micros(800));
        assert_eq!(b.stats.latency_ewma_us(), 800);
        b.stats.record_latency(Duration::from_micros(1600));
        assert_eq!(b.stats.latency_ewma_us(), 900);
        b.stats.record_latency(Duration::from_micros(100));
        assert_eq!(b.stats.latency_ewma_us(), 800);
    }

    #[test]
    fn outcomes_are_counted_by_class_and_failures_include_5xx() {
        let b = backend();
        let ms = Duration::from_millis(1);
        for outcome in [200, 204, 302, 404, 503].map(Outcome::Status) {
            b.stats.record_outcome(outcome, ms);
        }
        b.stats.record_outcome(Outcome::NoResponse, ms);
        assert_eq!(b.stats.outcomes(), [0, 2, 1, 1, 1, 1]);
        assert_eq!(b.stats.failures(), 2);
        assert_eq!(b.stats.latency().snapshot().count, 5);
    }
}
