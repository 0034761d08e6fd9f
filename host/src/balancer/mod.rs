//! The balancing seam: a synchronous [`Balancer`] that ranks backends for one request, and the
//! reasons an answer can be unusable.
//!
//! Implemented by the built-in [`RoundRobin`] and by the WebAssembly plugin
//! ([`crate::plugin::PluginBalancer`]); [`crate::policy::Policy`] puts the active one in front
//! of the built-in fallback, so a request always gets an answer whatever the plugin does.

mod reason;
mod round_robin;

use std::net::IpAddr;
use std::time::Duration;

use http::{HeaderMap, Method};

use crate::backend::{BackendSet, Eligibility};

pub use reason::FallbackReason;
pub use round_robin::RoundRobin;

/// What one [`Balancer::deliver`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Outcomes the plugin heard of for the first time.
    pub outcomes: usize,
    /// Whether the plugin was called at all (if not, nothing was learned of it).
    pub called: bool,
}

/// How many backends a pick ranks at most: the first choice plus spares for retries.
pub const MAX_RANKED: usize = 3;

/// Backend indices into the [`BackendSet`], first choice first; up to [`MAX_RANKED`] are kept
/// inline, so that the built-in's ranking allocates nothing (a plugin's answer comes from
/// wasmtime as a `Vec`, whose buffer is kept only if it is longer).
pub type Ranked = smallvec::SmallVec<[u32; MAX_RANKED]>;

/// The facts about a request that a balancer may use, borrowed from the request.
#[derive(Debug, Clone, Copy)]
pub struct RequestInfo<'a> {
    /// Increments on every request across the whole process.
    pub sequence: u64,
    /// The request method.
    pub method: &'a Method,
    /// The authority the client asked for (Host or `:authority`); empty if none.
    pub authority: &'a str,
    /// The path and query.
    pub path: &'a str,
    /// The client's address.
    pub client_ip: IpAddr,
    /// All request headers; a balancer reads only those it needs.
    pub headers: &'a HeaderMap,
}

/// Ranks the backends of a set for one request.
pub trait Balancer: Send + Sync {
    /// Ranks backends for `request`, first choice first, among those `eligibility` allows. An
    /// error, an empty answer, an index out of range or a first choice that is not eligible are
    /// all handled by [`crate::policy::Policy`].
    fn pick(
        &self,
        request: &RequestInfo<'_>,
        set: &BackendSet,
        eligibility: Eligibility,
    ) -> Result<Ranked, FallbackReason>;

    /// Whether [`Balancer::observe`] should be called after each response.
    fn wants_feedback(&self) -> bool {
        false
    }

    /// Queues the outcome of a request sent to backend `index` of `set` (status 0: no
    /// response), for [`Balancer::deliver`] to hand over later: it never calls the plugin, so
    /// the client does not wait for it. Answers whether it was queued (not dropped).
    fn observe(&self, set: &BackendSet, index: u32, status: u16, latency: Duration) -> bool {
        let _ = (set, index, status, latency);
        false
    }

    /// Hands the queued outcomes that belong to `set` to the plugin (dropping those of an older
    /// set), and to any of its instances that has not heard of earlier ones; answers what it
    /// did, or why a call failed.
    fn deliver(&self, set: &BackendSet) -> Result<Delivered, FallbackReason> {
        let _ = set;
        Ok(Delivered::default())
    }

    /// Outcomes dropped before the plugin heard of them: the queue was full (the plugin fell
    /// behind), or they belonged to a set replaced since.
    fn outcomes_dropped(&self) -> u64 {
        0
    }

    /// Log lines from the plugin (its `log` calls, stdout and stderr): (logged, dropped by the
    /// rate limit).
    fn log_lines(&self) -> (u64, u64) {
        (0, 0)
    }

    /// The linear memory the plugin's instances hold now, in bytes.
    fn memory_bytes(&self) -> u64 {
        0
    }

    /// Whether the plugin takes `set` as a reload would hand it over: a new instance is
    /// configured for it, and its refusal or failure says why not. Always, for the built-in.
    fn accepts(&self, _set: &BackendSet) -> Result<(), crate::plugin::PluginError> {
        Ok(())
    }
}
