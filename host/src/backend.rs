//! The backend set: each backend's fixed facts and live statistics, shared as one snapshot.
//!
//! Statistics are atomics updated on the request path without locks. In-flight requests are
//! counted by an [`InFlightGuard`], released when the response body ends or is dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use http::uri::Authority;
use vane_plugin_kit::WeightedSchedule;

/// The weight of a backend's newest latency sample in the moving average: 1/8, as TCP's
/// smoothed round-trip time (RFC 6298 §2), quick to follow a change without jumping on one outlier.
const EWMA_SHIFT: u32 = 3;

/// One backend: where it is, how much traffic it should take, and what it has done so far.
#[derive(Debug)]
pub struct Backend {
    /// The name from the config file, unique within the set.
    pub name: String,
    /// Where vane connects.
    pub address: SocketAddr,
    /// Relative capacity, at least 1.
    pub weight: u32,
    /// Free-form labels from the config file, handed to the plugin.
    pub tags: Vec<String>,
    /// `address` as a URI authority, built once for every forwarded request.
    pub(crate) authority: Authority,
    /// Live statistics.
    pub stats: BackendStats,
}

impl Backend {
    /// A backend with fresh statistics; it starts healthy.
    pub fn new(name: String, address: SocketAddr, weight: u32, tags: Vec<String>) -> Self {
        let authority = Authority::try_from(address.to_string())
            .expect("a socket address is always a valid URI authority");
        Backend {
            name,
            address,
            weight: weight.max(1),
            tags,
            authority,
            stats: BackendStats::default(),
        }
    }
}

/// A backend's live statistics, updated by the proxy and read by the balancer.
#[derive(Debug)]
pub struct BackendStats {
    healthy: AtomicBool,
    in_flight: AtomicU32,
    requests: AtomicU64,
    failures: AtomicU64,
    latency_ewma_us: AtomicU32,
}

impl Default for BackendStats {
    fn default() -> Self {
        BackendStats {
            healthy: AtomicBool::new(true),
            in_flight: AtomicU32::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            latency_ewma_us: AtomicU32::new(0),
        }
    }
}

impl BackendStats {
    /// Whether the backend may receive traffic.
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Marks the backend as able, or not, to receive traffic.
    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Relaxed);
    }

    /// Requests sent whose response has not finished.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Requests sent since the backend joined the set.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Requests that failed: no connection, timeout, broken off, or a 5xx answer.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// The moving average of the time to response headers, in microseconds (0 before any).
    pub fn latency_ewma_us(&self) -> u32 {
        self.latency_ewma_us.load(Ordering::Relaxed)
    }

    /// Counts one failed request.
    pub fn record_failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Folds one time-to-headers sample into the moving average.
    pub fn record_latency(&self, latency: Duration) {
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

/// An immutable snapshot of the backend set, replaced whole when the set changes.
#[derive(Debug)]
pub struct BackendSet {
    generation: u64,
    backends: Vec<Arc<Backend>>,
    schedule: WeightedSchedule,
}

impl BackendSet {
    /// A set of these backends, in this order; `generation` must change whenever the set does.
    pub fn new(generation: u64, backends: Vec<Arc<Backend>>) -> Self {
        let weights: Vec<u32> = backends.iter().map(|b| b.weight).collect();
        BackendSet {
            generation,
            schedule: WeightedSchedule::new(&weights),
            backends,
        }
    }

    /// Identifies this version of the set; plugins are reconfigured when it changes.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The backends, in the order the balancer sees them.
    pub fn backends(&self) -> &[Arc<Backend>] {
        &self.backends
    }

    /// The backend at `index`, if any.
    pub fn get(&self, index: usize) -> Option<&Arc<Backend>> {
        self.backends.get(index)
    }

    /// The number of backends.
    pub fn len(&self) -> usize {
        self.backends.len()
    }

    /// Whether the set has no backends.
    pub fn is_empty(&self) -> bool {
        self.backends.is_empty()
    }

    /// One cycle of smooth weighted round-robin over this set's weights.
    pub fn schedule(&self) -> &WeightedSchedule {
        &self.schedule
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend() -> Arc<Backend> {
        Arc::new(Backend::new(
            "a".into(),
            "127.0.0.1:1".parse().unwrap(),
            0,
            vec![],
        ))
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
}
