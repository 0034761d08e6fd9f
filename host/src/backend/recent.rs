//! Recent requests and failures: how many a backend got in about the last ten seconds, so that a
//! failure-aware policy forgives a backend that recovered. Kept off the request path: a ticker
//! samples the totals once a second ([`crate::backend::BackendSet::sample_recent`]), and a
//! reader subtracts the oldest sample from the totals now.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// How often the totals are sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// How many samples are kept: the window is this many sampling periods long.
pub const SAMPLES: usize = 10;

/// The last [`SAMPLES`] samples of a backend's request and failure totals, a ring.
#[derive(Debug, Default)]
pub struct RecentWindow {
    requests: [AtomicU64; SAMPLES],
    failures: [AtomicU64; SAMPLES],
    /// How many samples were ever taken; the next one goes to `taken % SAMPLES`.
    taken: AtomicUsize,
}

impl RecentWindow {
    /// Records the totals now. Called by one ticker, once per [`SAMPLE_EVERY`].
    pub fn sample(&self, requests: u64, failures: u64) {
        let slot = self.taken.load(Ordering::Relaxed) % SAMPLES;
        self.requests[slot].store(requests, Ordering::Relaxed);
        self.failures[slot].store(failures, Ordering::Relaxed);
        self.taken.fetch_add(1, Ordering::Release);
    }

    /// `(requests, failures)` since the oldest sample kept, given the totals now: about the
    /// last ten seconds, or everything while the backend is younger than that (a new backend's
    /// totals start at zero).
    pub fn since_oldest(&self, requests: u64, failures: u64) -> (u64, u64) {
        let taken = self.taken.load(Ordering::Acquire);
        if taken < SAMPLES {
            return (requests, failures);
        }
        let oldest = taken % SAMPLES;
        let then = |samples: &[AtomicU64; SAMPLES]| samples[oldest].load(Ordering::Relaxed);
        (
            requests.saturating_sub(then(&self.requests)),
            failures.saturating_sub(then(&self.failures)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_everything_until_the_window_fills_then_only_the_window() {
        let window = RecentWindow::default();
        // One request a second, the first three failing.
        for second in 0..SAMPLES as u64 - 1 {
            window.sample(second, second.min(3));
        }
        assert_eq!(window.since_oldest(9, 3), (9, 3));
        window.sample(9, 3);
        // The oldest sample is second 0's (0 requests): the ten seconds since.
        assert_eq!(window.since_oldest(10, 3), (10, 3));
        for second in 10..20 {
            window.sample(second, 3);
        }
        // Ten seconds later the failures are out of the window.
        assert_eq!(window.since_oldest(20, 3), (10, 0));
    }
}
