//! vane's shipped least-connections policy: fewest in-flight requests per unit of weight.
//!
//! Among healthy backends, the one with the lowest `in_flight / weight` wins (as HAProxy's
//! `leastconn` and nginx's `least_conn`, both weighted). Ties are broken by rotating the starting
//! point with the request's sequence number, so equal backends share load instead of piling onto
//! the first; the runners-up are ranked after it for retries.

use vane_plugin_kit::{BackendInfo, Columns, Needs, Policy, Request, States, Weights};

/// How many backends a pick ranks: the first choice and two to retry on.
const RANKED: usize = 3;

/// The least-connections policy. It keeps the backends' weights from `configure` (a pick's
/// weight column would hold the same), and none at all while they are equal, as they usually
/// are: then in-flight requests alone decide.
pub struct LeastConn {
    /// Each backend's weight; `None` while all weigh the same.
    weights: Option<Vec<u64>>,
}

impl Policy for LeastConn {
    fn configure(_config: &str, backends: &[BackendInfo]) -> Result<(Self, Needs), String> {
        let equal = backends
            .windows(2)
            .all(|pair| pair[0].weight == pair[1].weight);
        let weights = (!equal).then(|| backends.iter().map(|b| u64::from(b.weight)).collect());
        let needs = vane_plugin_kit::needs(Columns::IN_FLIGHT);
        Ok((LeastConn { weights }, needs))
    }

    fn pick(&mut self, request: &Request, states: &States<'_>, ranked: &mut Vec<u32>) {
        let weights = match &self.weights {
            Some(weights) => Weights::Each(weights),
            None => Weights::Equal,
        };
        states.rank_least_loaded(request.sequence, weights, RANKED, ranked);
    }
}

vane_plugin_kit::export_policy!(LeastConn);
