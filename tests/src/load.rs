//! Steady load for tests that change things under traffic: clients sending GETs as fast as
//! they can until stopped, then a tally of statuses and of the backends that served.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::Vane;

/// Clients sending GETs to one vane until [`Flood::stop`].
pub struct Flood {
    stop: Arc<AtomicBool>,
    replies: Arc<AtomicUsize>,
    clients: JoinSet<Vec<Reply>>,
}

/// One request's outcome: status (0 for none), the backend that served, when it was sent and
/// how long it took.
type Reply = (u16, Option<String>, Instant, Duration);

/// What a flood saw.
#[derive(Default, Clone)]
pub struct Tally {
    /// Replies by status; 0 counts requests that got no reply at all.
    pub statuses: BTreeMap<u16, usize>,
    /// 200 replies by the backend that served them.
    pub served: BTreeMap<String, usize>,
    /// How long each request took, from sending to the whole reply, in sorted order.
    pub latencies: Vec<Duration>,
    /// When each request served by a backend was sent, and by which backend.
    sent_to: Vec<(Instant, String)>,
}

impl std::fmt::Debug for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tally")
            .field("statuses", &self.statuses)
            .field("served", &self.served)
            .field("p50", &self.latency_quantile(0.5))
            .field("p99", &self.latency_quantile(0.99))
            .finish()
    }
}

impl Tally {
    /// Requests sent.
    pub fn sent(&self) -> usize {
        self.statuses.values().sum()
    }

    /// Requests that did not get a 200.
    pub fn failed(&self) -> usize {
        self.sent() - self.statuses.get(&200).copied().unwrap_or(0)
    }

    /// The latency that `quantile` (0..=1) of the requests did not exceed.
    pub fn latency_quantile(&self, quantile: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = (quantile * self.latencies.len() as f64).ceil() as usize;
        self.latencies[rank.clamp(1, self.latencies.len()) - 1]
    }

    /// 200 replies from `backend` to requests sent after `moment`.
    pub fn served_by_since(&self, backend: &str, moment: Instant) -> usize {
        self.sent_to
            .iter()
            .filter(|(sent, by)| *sent > moment && by == backend)
            .count()
    }

    /// The share of the 200 replies served by `backend`.
    pub fn share(&self, backend: &str) -> f64 {
        let total: usize = self.served.values().sum();
        self.served.get(backend).copied().unwrap_or(0) as f64 / total.max(1) as f64
    }
}

impl Flood {
    /// Starts `clients` clients, each with its own keep-alive connection pool.
    pub fn start(vane: &Vane, clients: usize) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let replies = Arc::new(AtomicUsize::new(0));
        let mut tasks = JoinSet::new();
        for _ in 0..clients {
            let client = vane.client();
            let stop = stop.clone();
            let count = replies.clone();
            tasks.spawn(async move {
                let mut replies = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let started = Instant::now();
                    let (status, backend) = match client.get("/").await {
                        Ok(reply) => (reply.status.as_u16(), reply.backend),
                        Err(_) => (0, None),
                    };
                    replies.push((status, backend, started, started.elapsed()));
                    count.fetch_add(1, Ordering::Relaxed);
                }
                replies
            });
        }
        Flood {
            stop,
            replies,
            clients: tasks,
        }
    }

    /// Requests finished so far (answered or failed).
    pub fn sent(&self) -> usize {
        self.replies.load(Ordering::Relaxed)
    }

    /// Stops the clients once their requests in flight are answered, and tallies.
    pub async fn stop(self) -> Tally {
        self.stop.store(true, Ordering::SeqCst);
        let mut tally = Tally::default();
        for (status, backend, sent, latency) in self.clients.join_all().await.into_iter().flatten()
        {
            *tally.statuses.entry(status).or_default() += 1;
            if let (200, Some(backend)) = (status, backend) {
                *tally.served.entry(backend.clone()).or_default() += 1;
                tally.sent_to.push((sent, backend));
            }
            tally.latencies.push(latency);
        }
        tally.latencies.sort_unstable();
        tally
    }
}
