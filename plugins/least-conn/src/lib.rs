//! vane's shipped least-connections policy: fewest in-flight requests per unit of weight.
//!
//! Among healthy backends, the one with the lowest `in_flight / weight` wins (as HAProxy's
//! `leastconn` and nginx's `least_conn`, both weighted). Ties are broken by rotating the starting
//! point with the request's sequence number, so equal backends share load instead of piling onto
//! the first; the runners-up are ranked after it for retries.

use vane_plugin_kit::{BackendInfo, Columns, Needs, Policy, Request, States};

/// How many backends a pick ranks: the first choice and two to retry on.
const RANKED: usize = 3;

/// The least-connections policy; it keeps no state between picks.
pub struct LeastConn;

impl Policy for LeastConn {
    fn configure(_config: &str, _backends: &[BackendInfo]) -> Result<(Self, Needs), String> {
        let needs = vane_plugin_kit::needs(Columns::IN_FLIGHT | Columns::WEIGHT);
        Ok((LeastConn, needs))
    }

    fn pick(&mut self, request: &Request, states: &States<'_>, ranked: &mut Vec<u32>) {
        vane_plugin_kit::rank_least_loaded(
            request.sequence,
            |i| states.eligible(i),
            states.column(Columns::IN_FLIGHT),
            states.column(Columns::WEIGHT),
            RANKED,
            ranked,
        );
    }
}

vane_plugin_kit::export_policy!(LeastConn);
