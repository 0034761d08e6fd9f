//! Recent requests and failures: how many a backend got in about the last ten seconds, so that a
//! failure-aware policy forgives a backend that recovered. Kept off the request path: a ticker
//! samples the totals once a second ([`crate::backend::BackendSet::sample_recent`]), and a
//! reader subtracts the oldest sample from the totals now.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// How often the totals are sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// How many sampling periods the window spans.
pub const SAMPLES: usize = 10;

/// The ring's length: the window's samples, the newest, and one being written while a reader
/// reads the oldest.
const RING: usize = SAMPLES + 2;

/// The last samples of a backend's request and failure totals, a ring.
#[derive(Debug, Default)]
pub struct RecentWindow {
    requests: [AtomicU64; RING],
    failures: [AtomicU64; RING],
    /// How many samples were ever taken; the next one goes to `taken % RING`.
    taken: AtomicUsize,
}

impl RecentWindow {
    /// Records the totals now. Called by one ticker, once per [`SAMPLE_EVERY`].
    pub fn sample(&self, requests: u64, failures: u64) {
        let slot = self.taken.load(Ordering::Relaxed) % RING;
        self.requests[slot].store(requests, Ordering::Relaxed);
        self.failures[slot].store(failures, Ordering::Relaxed);
        self.taken.fetch_add(1, Ordering::Release);
    }

    /// `(requests, failures)` since the sample taken [`SAMPLES`] periods before the newest,
    /// given the totals now: the last 10 to 11 seconds, or everything while the backend is
    /// younger than that (a new backend's totals start at zero).
    pub fn since_oldest(&self, requests: u64, failures: u64) -> (u64, u64) {
        loop {
            let taken = self.taken.load(Ordering::Acquire);
            if taken <= SAMPLES {
                return (requests, failures);
            }
            let oldest = (taken - 1 - SAMPLES) % RING;
            let then = (
                self.requests[oldest].load(Ordering::Relaxed),
                self.failures[oldest].load(Ordering::Relaxed),
            );
            // The ticker writes that slot again only two samples later: if it has, read again.
            if self.taken.load(Ordering::Acquire) < taken + 2 {
                return (
                    requests.saturating_sub(then.0),
                    failures.saturating_sub(then.1),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_everything_until_the_window_fills_then_only_the_window() {
        let window = RecentWindow::default();
        // One request a second, the first three failing; a sample at each second's end.
        for second in 1..=SAMPLES as u64 {
            window.sample(second, second.min(3));
        }
        assert_eq!(window.since_oldest(10, 3), (10, 3));
        window.sample(11, 3);
        // Now the oldest sample kept is second 1's (1 request, 1 failure).
        assert_eq!(window.since_oldest(11, 3), (10, 2));
        for second in 12..=21 {
            window.sample(second, 3);
        }
        // Ten seconds later the failures are out of the window.
        assert_eq!(window.since_oldest(21, 3), (10, 0));
    }
}
