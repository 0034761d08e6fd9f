//! vane's shipped consistent-hash policy: requests with the same key go to the same backend,
//! for caches and sessions, with bounded loads so one hot key cannot swamp a backend.
//!
//! The key is the client's address, a request header, a cookie, or the path. It is placed on
//! a hash ring (the kit's [`HashRing`]) built from the backends' names and weights alone, so
//! every vane instance and every restart sends a key to the same backend, whatever the order
//! of the backends in the config. When a backend leaves (removed, unhealthy, ejected), only
//! the keys it had move; when it comes back, they move back.
//!
//! Bounded loads: a backend takes a key only while it has fewer requests in flight than
//! `bound` times its weighted share of all of them (plus one); a key whose backend is that
//! loaded goes to the next backend on the ring, for that request only. With `bound=off` a key
//! always goes to its backend, however loaded.
//!
//! A request without the key (no such header or cookie) is spread by its sequence number,
//! as if it had a key of its own.
//!
//! Config (`[policy] config`): `key=ip` (the default), `key=header:NAME`, `key=cookie:NAME`,
//! `key=path` (without the query) or `key=uri` (path and query); `bound=1.25` (the default, at
//! least 1) or `bound=off`.

use vane_plugin_kit::{
    BackendInfo, Columns, ConfigPairs, HashRing, Needs, Policy, Request, RequestKey, States,
};

/// The balance factor when the config gives none: c = 1.25, as in the bounded-loads paper's
/// experiments and Envoy's and HAProxy's examples.
const DEFAULT_BOUND: f64 = 1.25;

/// Backends ranked per pick: the key's backend and two spares for retries.
const RANKED: usize = 3;

/// The consistent-hash policy's state: the key, the ring, the weights and the bound.
pub struct ConsistentHash {
    key: RequestKey,
    ring: HashRing,
    weights: Vec<u64>,
    /// The balance factor, or `None` for no bound.
    bound: Option<f64>,
}

impl Policy for ConsistentHash {
    fn configure(config: &str, backends: &[BackendInfo]) -> Result<(Self, Needs), String> {
        let pairs = ConfigPairs::parse(config, &["key", "bound"])?;
        let key = pairs.get("key").map_or(Ok(RequestKey::ClientIp), |value| {
            RequestKey::parse("key", value)
        })?;
        let bound = match pairs.get("bound") {
            None => Some(DEFAULT_BOUND),
            Some("off") => None,
            Some(value) => Some(
                value
                    .parse::<f64>()
                    .ok()
                    .filter(|factor| factor.is_finite() && *factor >= 1.0)
                    .ok_or_else(|| {
                        format!("bound={value:?}: expected a factor of at least 1, or off")
                    })?,
            ),
        };
        let columns = if bound.is_some() {
            Columns::IN_FLIGHT
        } else {
            Columns::empty()
        };
        let mut needs = vane_plugin_kit::needs(columns);
        key.add_needs(&mut needs);
        let policy = ConsistentHash {
            key,
            ring: HashRing::new(backends.iter().map(|b| (b.name.as_str(), b.weight))),
            weights: backends
                .iter()
                .map(|b| u64::from(b.weight.max(1)))
                .collect(),
            bound,
        };
        Ok((policy, needs))
    }

    fn pick(&mut self, request: &Request, states: &States<'_>, ranked: &mut Vec<u32>) {
        let key = self
            .key
            .hash(request)
            .unwrap_or_else(|| vane_plugin_kit::mix64(request.sequence));
        let eligible = |i: usize| states.eligible(i);
        let Some(factor) = self.bound else {
            self.ring.rank(key, eligible, |_| true, RANKED, ranked);
            return;
        };
        let in_flight = states.column(Columns::IN_FLIGHT);
        let (mut total, mut total_weight) = (0, 0);
        for i in (0..states.len()).filter(|&i| eligible(i)) {
            total += in_flight[i];
            total_weight += self.weights[i];
        }
        let has_room = |i: usize| {
            vane_plugin_kit::has_room(in_flight[i], self.weights[i], total, total_weight, factor)
        };
        self.ring.rank(key, eligible, has_room, RANKED, ranked);
    }
}

vane_plugin_kit::export_policy!(ConsistentHash);
