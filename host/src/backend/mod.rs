//! The backend set: each backend's fixed facts, live statistics and health, shared as one
//! snapshot, and which of its backends may receive a request.
//!
//! Statistics and health are atomics updated on the request path without locks. In-flight
//! requests are counted by an [`InFlightGuard`], released when the response body ends or is
//! dropped. A failed attempt may eject a backend (passive detection); the ejection ends by
//! itself once its cool-down has passed.

mod health;
mod recent;
mod slow_start;
mod stats;

use std::net::SocketAddr;
use std::sync::Arc;

use http::uri::Authority;
use vane_plugin_kit::WeightedSchedule;

pub use health::{AttemptVerdict, BackendHealth, Transition};
pub use recent::{SAMPLE_EVERY as RECENT_SAMPLE_EVERY, SAMPLES as RECENT_SAMPLES};
pub use slow_start::FULL_SHARE;
pub use stats::{BackendStats, InFlightGuard, Outcome};

use crate::clock::{Clock, Millis};
use crate::config::{BackendConfig, BackendProtocol, Config, EjectionConfig};
use crate::tls::{ClientTls, TlsError};

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
    /// The protocol requests travel in.
    pub protocol: BackendProtocol,
    /// How vane connects over TLS, if the backend takes TLS.
    pub tls: Option<Arc<ClientTls>>,
    /// `address` as a URI authority, built once for every forwarded request.
    pub(crate) authority: Authority,
    /// A hash of the name, telling warming backends apart in slow start's offers.
    salt: u64,
    /// Live statistics; kept across a reload that changes only the weight or tags.
    pub stats: Arc<BackendStats>,
    /// Active health and passive ejection; kept across a reload like the statistics.
    pub health: Arc<BackendHealth>,
}

impl Backend {
    /// The backend `config` describes, reached over `tls` if it takes TLS (see
    /// [`load_tls`]), with fresh statistics; it starts healthy, and its ejections are timed by
    /// `clock`.
    pub fn new(config: &BackendConfig, tls: Option<Arc<ClientTls>>, clock: &Clock) -> Self {
        let authority = Authority::try_from(config.address.to_string())
            .expect("a socket address is always a valid URI authority");
        Backend {
            name: config.name.clone(),
            address: config.address,
            weight: config.weight.max(1),
            tags: config.tags.clone(),
            protocol: config.protocol,
            tls,
            authority,
            salt: vane_plugin_kit::hash64(config.name.as_bytes()),
            stats: Arc::default(),
            health: Arc::new(BackendHealth::new(clock.clone())),
        }
    }

    /// The same backend (name, address, statistics and health) with the weight, tags, protocol
    /// and TLS of `config` (whose name and address are this backend's).
    pub fn updated(&self, config: &BackendConfig, tls: Option<Arc<ClientTls>>) -> Self {
        Backend {
            name: self.name.clone(),
            address: self.address,
            weight: config.weight.max(1),
            tags: config.tags.clone(),
            protocol: config.protocol,
            tls,
            authority: self.authority.clone(),
            salt: self.salt,
            stats: self.stats.clone(),
            health: self.health.clone(),
        }
    }

    /// Whether the backend takes traffic: healthy by its checks, not ejected, not draining.
    pub fn in_rotation(&self) -> bool {
        self.health.healthy() && !self.health.ejected() && !self.health.draining()
    }

    /// Records one attempt on this backend, one of `set`, for passive ejection (Envoy's outlier
    /// detection): the failure that completes a streak ejects it for a cool-down unless
    /// `max_percent` of the set is ejected already, the first attempt after the cool-down puts
    /// it back, and both are logged.
    pub fn record_attempt(&self, ok: bool, config: &EjectionConfig, set: &BackendSet) {
        let may_eject = || set.ejected() < set.ejection_cap(config);
        let verdict = self.health.record_attempt(ok, config, may_eject);
        if verdict.restored {
            tracing::info!(
                backend = %self.name,
                address = %self.address,
                "ejection over; the backend is tried again"
            );
        }
        if let Some(cool_down) = verdict.ejected {
            tracing::warn!(
                backend = %self.name,
                address = %self.address,
                failures = config.consecutive_failures,
                cool_down = %humantime::format_duration(cool_down),
                "ejected after consecutive failures"
            );
        }
    }
}

/// A backend's TLS files could not be used.
#[derive(Debug, thiserror::Error)]
#[error("backend {backend}: {error}")]
pub struct BackendTlsError {
    /// The backend's name.
    pub backend: String,
    /// What is wrong, naming the file (part of the message, not a source of its own).
    pub error: TlsError,
}

/// Reads the TLS files of the backend `config` describes, if it takes TLS.
pub fn load_tls(config: &BackendConfig) -> Result<Option<Arc<ClientTls>>, BackendTlsError> {
    let Some(tls) = &config.tls else {
        return Ok(None);
    };
    ClientTls::load(tls, config.address, config.protocol)
        .map(|loaded| Some(Arc::new(loaded)))
        .map_err(|error| BackendTlsError {
            backend: config.name.clone(),
            error,
        })
}

/// The generation of the next set made to replace another: one counter for the whole
/// process, so that a set never shares its generation with another one, not even with a
/// candidate that was refused (a plugin instance configured for that one must not take itself
/// as configured for the next).
pub fn next_generation() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(2);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// An immutable snapshot of the backend set, replaced whole when the set changes.
#[derive(Debug)]
pub struct BackendSet {
    generation: u64,
    backends: Vec<Arc<Backend>>,
    schedule: WeightedSchedule,
    /// The slow start window, in milliseconds; 0 for none.
    slow_start: Millis,
}

impl BackendSet {
    /// The backends `config` lists, in its order, as generation 1, with their TLS files read;
    /// their ejections are timed by `clock`.
    pub fn from_config(config: &Config, clock: &Clock) -> Result<Self, BackendTlsError> {
        BackendSet::from_backends(&config.backends, config.slow_start, clock)
    }

    /// `backends`, in this order, as generation 1 with a slow start of `slow_start`, their TLS
    /// files read; their ejections are timed by `clock`.
    pub fn from_backends(
        backends: &[BackendConfig],
        slow_start: std::time::Duration,
        clock: &Clock,
    ) -> Result<Self, BackendTlsError> {
        let backends = backends
            .iter()
            .map(|backend| Ok(Arc::new(Backend::new(backend, load_tls(backend)?, clock))))
            .collect::<Result<_, BackendTlsError>>()?;
        Ok(BackendSet::new(1, backends).with_slow_start(slow_start))
    }

    /// A set of these backends, in this order; `generation` must change whenever the set does.
    pub fn new(generation: u64, backends: Vec<Arc<Backend>>) -> Self {
        let weights: Vec<u32> = backends.iter().map(|b| b.weight).collect();
        BackendSet {
            generation,
            schedule: WeightedSchedule::new(&weights),
            backends,
            slow_start: 0,
        }
    }

    /// The same set, with a slow start of `window` (none if zero): a backend that joins or
    /// returns to rotation is offered a share of the requests that grows over the window.
    pub fn with_slow_start(mut self, window: std::time::Duration) -> Self {
        self.slow_start = Millis::try_from(window.as_millis()).unwrap_or(Millis::MAX);
        self
    }

    /// The slow start window (zero if none).
    pub fn slow_start(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.slow_start)
    }

    /// Identifies this version of the set; plugins are reconfigured when it changes.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The backends, in the order the balancer sees them.
    pub fn backends(&self) -> &[Arc<Backend>] {
        &self.backends
    }

    /// Samples every backend's totals for its recent counts ([`BackendStats::recent`]); once
    /// per [`RECENT_SAMPLE_EVERY`].
    pub fn sample_recent(&self) {
        for backend in &self.backends {
            backend.stats.sample_recent();
        }
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

    /// How many of its backends are ejected now.
    pub fn ejected(&self) -> usize {
        self.backends.iter().filter(|b| b.health.ejected()).count()
    }

    /// The most of its backends passive ejection may hold out at once: `max_percent` of them,
    /// and always one.
    pub fn ejection_cap(&self, config: &EjectionConfig) -> usize {
        (self.backends.len() * config.max_percent as usize / 100).max(1)
    }

    /// Which backends are in rotation now, whatever the request: the targets of a retry.
    pub fn eligibility(&self) -> Eligibility {
        Eligibility {
            panic: !self.backends.iter().any(|b| b.in_rotation()),
            slow_start: None,
        }
    }

    /// Which backends may receive the request numbered `sequence`: those in rotation, a warming
    /// one (slow start) only if the request is among the share it is offered and it holds fewer
    /// requests than that share of a warm backend's load. While no backend in rotation is warm,
    /// slow start is set aside: there is no one else to take the turns. With slow start on, one
    /// pass over the set (reading the clock only for warming backends).
    pub fn eligibility_for(&self, sequence: u64) -> Eligibility {
        if self.slow_start == 0 {
            return self.eligibility();
        }
        let (mut in_rotation, mut warming) = (false, false);
        let (mut warm_in_flight, mut warm_weight) = (0, 0);
        for backend in self.backends.iter().filter(|b| b.in_rotation()) {
            in_rotation = true;
            if backend.health.warm_share(self.slow_start).is_some() {
                warming = true;
            } else {
                warm_in_flight += u64::from(backend.stats.in_flight());
                warm_weight += u64::from(backend.weight);
            }
        }
        Eligibility {
            panic: !in_rotation,
            slow_start: (warming && warm_weight > 0).then_some(Offer {
                window: self.slow_start,
                sequence,
                warm_in_flight,
                warm_weight,
            }),
        }
    }

    /// The share of requests `backend` (one of this set) is offered while warming up, in
    /// thousandths; `None` once warm, out of rotation, or without slow start.
    pub fn warm_share(&self, backend: &Backend) -> Option<u32> {
        // Out of rotation it is offered nothing; the ramp shows once it is back.
        backend
            .in_rotation()
            .then(|| backend.health.warm_share(self.slow_start))?
    }
}

/// Which backends of a set may receive a request: those in rotation, or, when none is, all of
/// them but those being drained ("panic routing", as Envoy's panic threshold): a health check
/// that is wrong everywhere, or a brief outage of every backend, must not turn into refusing
/// every request, and a backend that is really down answers a connection attempt at once, so
/// the retry moves on. A drained backend is an operator's word, and is kept to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Eligibility {
    panic: bool,
    /// Slow start's offers to warming backends, for one request.
    slow_start: Option<Offer>,
}

/// Slow start in force for the request numbered `sequence`, with the warm backends' load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Offer {
    window: Millis,
    sequence: u64,
    /// Requests in flight on the warm backends in rotation, and their weights' sum.
    warm_in_flight: u64,
    warm_weight: u64,
}

/// Bit 0 of a backend's state bits in `pick`: it may receive this request.
pub const STATE_ELIGIBLE: u64 = 1;
/// Bit 1 of a backend's state bits: it is warming up (slow start), offered only a share of
/// requests, which bits 16 to 25 give in thousandths.
pub const STATE_WARMING: u64 = 2;
/// Where the warming share starts in a backend's state bits.
pub const STATE_SHARE_SHIFT: u32 = 16;

impl Eligibility {
    /// Whether `backend` may receive the request.
    pub fn allows(self, backend: &Backend) -> bool {
        self.state_bits(backend) & STATE_ELIGIBLE != 0
    }

    /// Whether a policy's answer naming `backend` is one it may give: [`Eligibility::allows`],
    /// except that a warming backend's load is not weighed again. Requests started since its
    /// state bits were written may have filled its room; the policy saw it free.
    pub fn admits_answer(self, backend: &Backend) -> bool {
        self.bits(backend, false) & STATE_ELIGIBLE != 0
    }

    /// `backend`'s state bits as `pick` gets them (see `wit/`): whether it may receive the
    /// request and, if it is warming up, that it is and its share.
    pub fn state_bits(self, backend: &Backend) -> u64 {
        self.bits(backend, true)
    }

    /// Appends the state bits of each of `backends` to `states`, as [`Eligibility::state_bits`]
    /// gives them. Outside panic routing and with no slow-start offer in force (nearly always),
    /// a backend's bits say only whether it is in rotation, and the loop reads just that.
    pub fn push_state_bits(self, backends: &[Arc<Backend>], states: &mut Vec<u64>) {
        if self.panic || self.slow_start.is_some() {
            states.extend(backends.iter().map(|backend| self.state_bits(backend)));
        } else {
            let bits = |backend: &Arc<Backend>| u64::from(backend.in_rotation()) * STATE_ELIGIBLE;
            states.extend(backends.iter().map(bits));
        }
    }

    /// The state bits, weighing a warming backend's load against its room if `weigh_load`.
    fn bits(self, backend: &Backend, weigh_load: bool) -> u64 {
        if self.panic {
            return u64::from(!backend.health.draining()) * STATE_ELIGIBLE;
        }
        if !backend.in_rotation() {
            return 0;
        }
        let Some(offer) = self.slow_start else {
            return STATE_ELIGIBLE;
        };
        match backend.health.warm_share(offer.window) {
            None => STATE_ELIGIBLE,
            Some(share) => {
                let offered = slow_start::offered(offer.sequence, backend.salt, share)
                    && (!weigh_load
                        || slow_start::has_room(
                            u64::from(backend.stats.in_flight()),
                            u64::from(backend.weight),
                            share,
                            offer.warm_in_flight,
                            offer.warm_weight,
                        ));
                (u64::from(offered) * STATE_ELIGIBLE)
                    | STATE_WARMING
                    | (u64::from(share) << STATE_SHARE_SHIFT)
            }
        }
    }

    /// Whether no backend is in rotation, so every backend not being drained is eligible.
    pub fn is_panic(self) -> bool {
        self.panic
    }
}

/// A set of backends on made-up loopback addresses with these weights, named `b0`, `b1`...,
/// for unit tests.
#[cfg(any(test, fuzzing))]
pub(crate) fn test_set(weights: &[u32]) -> BackendSet {
    let clock = Clock::new();
    let backends = weights
        .iter()
        .enumerate()
        .map(|(i, &weight)| {
            let config = BackendConfig {
                name: format!("b{i}"),
                address: SocketAddr::from(([127, 0, 0, 1], 9000 + i as u16)),
                weight,
                tags: Vec::new(),
                protocol: BackendProtocol::Http1,
                tls: None,
            };
            Arc::new(Backend::new(&config, None, &clock))
        })
        .collect();
    BackendSet::new(1, backends)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_backends_in_rotation_are_eligible_until_none_is() {
        let set = test_set(&[1, 1]);
        let [a, b] = [&set.backends()[0], &set.backends()[1]];
        a.health.set_healthy(false);
        let eligibility = set.eligibility();
        assert!(!eligibility.is_panic());
        assert!(!eligibility.allows(a) && eligibility.allows(b));

        b.health.set_healthy(false);
        let eligibility = set.eligibility();
        assert!(eligibility.is_panic());
        assert!(eligibility.allows(a) && eligibility.allows(b));
    }

    /// A set of `count` backends with a 10-second slow start, on a clock the test moves.
    fn slow_start_set(count: usize) -> (crate::clock::ManualClock, BackendSet) {
        let clock = crate::clock::ManualClock::new();
        let config = |i: usize| BackendConfig {
            name: format!("b{i}"),
            address: SocketAddr::from(([127, 0, 0, 1], 9000)),
            weight: 1,
            tags: Vec::new(),
            protocol: BackendProtocol::Http1,
            tls: None,
        };
        let backends: Vec<Arc<Backend>> = (0..count)
            .map(|i| Arc::new(Backend::new(&config(i), None, &clock.clock())))
            .collect();
        let set = BackendSet::new(1, backends).with_slow_start(std::time::Duration::from_secs(10));
        (clock, set)
    }

    #[test]
    fn a_warming_backend_is_offered_its_share_unless_no_backend_is_warm() {
        let (clock, set) = slow_start_set(2);
        let [a, b] = [&set.backends()[0], &set.backends()[1]];
        let offered = |backend: &Backend| {
            (0..1000)
                .filter(|&s| set.eligibility_for(s).allows(backend))
                .count()
        };
        assert_eq!((offered(a), offered(b)), (1000, 1000), "both warm");

        // b returns: 10 % at first, half at 5 s, all at 10 s; a is always offered.
        b.health.set_healthy(false);
        b.health.set_healthy(true);
        let share = offered(b);
        assert!((70..130).contains(&share), "{share} of 1000 at 10 %");
        assert_eq!(
            set.eligibility_for(3).state_bits(b) >> STATE_SHARE_SHIFT,
            100
        );
        assert_ne!(set.eligibility_for(3).state_bits(b) & STATE_WARMING, 0);
        clock.advance(std::time::Duration::from_secs(5));
        let share = offered(b);
        assert!((440..560).contains(&share), "{share} of 1000 at 50 %");
        assert_eq!(offered(a), 1000);

        // With a out, b is all there is: slow start stands aside.
        a.health.set_healthy(false);
        assert_eq!(offered(b), 1000);
        a.health.set_healthy(true);
        clock.advance(std::time::Duration::from_secs(5));
        assert_eq!(set.warm_share(b), None);
        assert_eq!(set.eligibility_for(3).state_bits(b), STATE_ELIGIBLE);
        // a came back too, at 5 s: it warms now while b is warm.
        assert_eq!(set.warm_share(a), Some(500));
    }

    #[test]
    fn the_state_bits_pushed_in_one_pass_are_each_backends_bits() {
        let (clock, set) = slow_start_set(5);
        let backends = set.backends();
        // Written after what the list already holds, one per backend, as `state_bits` gives.
        let agree = |eligibility: Eligibility| {
            let mut pushed = vec![7];
            eligibility.push_state_bits(backends, &mut pushed);
            let each = backends.iter().map(|b| eligibility.state_bits(b));
            assert_eq!(pushed, [7].into_iter().chain(each).collect::<Vec<_>>());
            pushed
        };
        assert_eq!(agree(set.eligibility_for(1)), [7, 1, 1, 1, 1, 1]);

        // One unhealthy, one drained, one ejected, one warming up.
        backends[1].health.set_healthy(false);
        backends[2].health.set_draining(true);
        let config = EjectionConfig::default();
        for _ in 0..5 {
            backends[3].record_attempt(false, &config, &set);
        }
        backends[4].health.set_healthy(false);
        backends[4].health.set_healthy(true);
        clock.advance(std::time::Duration::from_secs(5));
        for sequence in 0..50 {
            let bits = agree(set.eligibility_for(sequence));
            assert_eq!(bits[1..5], [1, 0, 0, 0]);
            assert_ne!(bits[5] & STATE_WARMING, 0, "the fifth warms up");
        }
        agree(set.eligibility());

        // None in rotation: panic routing, all but the drained one.
        backends[0].health.set_healthy(false);
        backends[4].health.set_healthy(false);
        assert!(set.eligibility_for(1).is_panic());
        assert_eq!(agree(set.eligibility_for(1)), [7, 1, 1, 0, 1, 1]);
    }

    #[test]
    fn passive_ejection_holds_out_at_most_max_percent_of_the_set() {
        let fail_five_times = |set: &BackendSet, index: usize, config: &EjectionConfig| {
            for _ in 0..5 {
                set.backends()[index].record_attempt(false, config, set);
            }
        };
        // 10 % of four backends: one, since one may always be ejected.
        let set = test_set(&[1, 1, 1, 1]);
        let config = EjectionConfig::default();
        fail_five_times(&set, 0, &config);
        fail_five_times(&set, 1, &config);
        assert_eq!(set.ejected(), 1);
        assert!(set.backends()[0].health.ejected());
        assert!(
            set.backends()[1].in_rotation(),
            "the second stays in rotation"
        );
        // Half of four: two.
        let set = test_set(&[1, 1, 1, 1]);
        let half = EjectionConfig {
            max_percent: 50,
            ..config
        };
        for index in 0..4 {
            fail_five_times(&set, index, &half);
        }
        assert_eq!(set.ejected(), 2);
    }
}
