//! The proxy: accepts HTTP/1.1 and h2c clients and forwards each request to the backend the
//! policy picks, streaming bodies both ways over pooled upstream connections.

mod body;
mod error;
mod forward;
mod headers;
mod request_body;
mod retry;
mod server;
mod upstream;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use arc_swap::ArcSwap;

pub use body::ProxyBody;
pub use error::ProxyError;
pub use retry::RetryBudget;
pub use server::serve;

use crate::backend::BackendSet;
use crate::balancer::Policy;
use crate::config::{Config, EjectionConfig, ProxyConfig};

/// What every request handler shares: the backend set and policy (each swappable as a whole),
/// the pool of connections to backends, the proxy settings, the retry budget and the request counter.
pub struct Shared {
    /// The current backend set.
    pub backends: ArcSwap<BackendSet>,
    /// The current balancing policy.
    pub policy: ArcSwap<Policy>,
    /// Timeouts and limits.
    pub config: ProxyConfig,
    /// When failed attempts eject a backend.
    pub ejection: EjectionConfig,
    /// Retries allowed, made and refused.
    pub retry_budget: RetryBudget,
    /// The sequence number of the next request.
    pub(crate) sequence: AtomicU64,
    pub(crate) upstream: upstream::Upstream,
}

impl Shared {
    /// Shared state for a proxy with the settings of `config`, these backends and this policy.
    pub fn new(config: &Config, backends: BackendSet, policy: Policy) -> Arc<Self> {
        Arc::new(Shared {
            backends: ArcSwap::from_pointee(backends),
            policy: ArcSwap::from_pointee(policy),
            upstream: upstream::Upstream::new(
                config.proxy.connect_timeout,
                config.proxy.upstream_idle_timeout,
            ),
            config: config.proxy,
            ejection: config.ejection,
            retry_budget: RetryBudget::new(config.retries),
            sequence: AtomicU64::new(0),
        })
    }
}
