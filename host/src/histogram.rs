//! A fixed-bucket histogram of durations, recorded lock-free on the hot path and read whole at
//! scrape time for Prometheus.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bucket bounds for request latency, in microseconds: 250 µs to 10 s, the usual Prometheus
/// spread widened downwards because a loopback backend answers in well under a millisecond.
pub const REQUEST_BUCKETS_US: &[u64] = &[
    250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];

/// Bucket bounds for one plugin pick, in microseconds: a pick should take about a microsecond,
/// and the deadline caps it at 100 ms.
pub const PICK_BUCKETS_US: &[u64] = &[
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 10_000, 100_000,
];

/// Counts of durations per bucket, with their sum; every field an atomic.
#[derive(Debug)]
pub struct Histogram {
    bounds_us: &'static [u64],
    /// One count per bound, then one for everything above the last bound.
    counts: Box<[AtomicU64]>,
    sum_us: AtomicU64,
}

/// A histogram as read at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// Each bucket's upper bound in seconds, with the count in it (above the previous bound,
    /// at or below this one); the last bound, [`f64::MAX`], stands for `+Inf`. This is the
    /// shape prometheus-client's encoder takes; it writes the cumulative counts.
    pub buckets: Vec<(f64, u64)>,
    /// The sum of all recorded durations, in seconds.
    pub sum_seconds: f64,
    /// How many durations were recorded.
    pub count: u64,
}

impl Histogram {
    /// An empty histogram with these bucket bounds (microseconds, ascending).
    pub fn new(bounds_us: &'static [u64]) -> Self {
        Histogram {
            bounds_us,
            counts: (0..=bounds_us.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_us: AtomicU64::new(0),
        }
    }

    /// Records one duration.
    pub fn record(&self, duration: Duration) {
        let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        let bucket = self.bounds_us.partition_point(|&bound| bound < micros);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(micros, Ordering::Relaxed);
    }

    /// The buckets, sum and count.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let buckets: Vec<(f64, u64)> = self
            .counts
            .iter()
            .enumerate()
            .map(|(index, count)| {
                let bound = self
                    .bounds_us
                    .get(index)
                    .map_or(f64::MAX, |&us| us as f64 / 1e6);
                (bound, count.load(Ordering::Relaxed))
            })
            .collect();
        HistogramSnapshot {
            count: buckets.iter().map(|(_, count)| count).sum(),
            buckets,
            sum_seconds: self.sum_us.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

impl HistogramSnapshot {
    /// The upper bound, in seconds, of the bucket holding the `quantile` (0 to 1) of the
    /// durations: what that share of them took at most. `None` if nothing was recorded or it
    /// lies above the last bound.
    pub fn quantile_at_most(&self, quantile: f64) -> Option<f64> {
        let rank = (quantile * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for &(bound, count) in &self.buckets {
            seen += count;
            if seen >= rank && self.count > 0 {
                return (bound != f64::MAX).then_some(bound);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive_and_the_last_bucket_takes_the_rest() {
        let histogram = Histogram::new(&[10, 100]);
        for micros in [5, 10, 11, 100, 5_000] {
            histogram.record(Duration::from_micros(micros));
        }
        let snapshot = histogram.snapshot();
        assert_eq!(
            snapshot.buckets,
            vec![(0.00001, 2), (0.0001, 2), (f64::MAX, 1)]
        );
        assert_eq!(snapshot.count, 5);
        assert!((snapshot.sum_seconds - 0.005126).abs() < 1e-9);
        assert_eq!(snapshot.quantile_at_most(0.4), Some(0.00001));
        assert_eq!(snapshot.quantile_at_most(0.8), Some(0.0001));
        assert_eq!(snapshot.quantile_at_most(1.0), None, "above the last bound");
        assert_eq!(Histogram::new(&[10]).snapshot().quantile_at_most(0.5), None);
    }
}
