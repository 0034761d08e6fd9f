//! vane's shipped least-connections policy: fewest in-flight requests per unit of weight.
//!
//! Among healthy backends, the one with the lowest `in_flight / weight` wins (as HAProxy's
//! `leastconn` and nginx's `least_conn`, both weighted). Ties are broken by rotating the starting
//! point with the request's sequence number, so equal backends share load instead of piling onto
//! the first; the runners-up are ranked after it for retries.

use vane_plugin_kit::{BackendInfo, BackendStates, Needs, Policy, Request};

/// How many backends a pick ranks: the first choice and two to retry on.
const RANKED: usize = 3;

/// The least-connections policy; it keeps no state between picks.
pub struct LeastConn;

impl Policy for LeastConn {
    fn configure(_config: &str, _backends: &[BackendInfo]) -> Result<(Self, Needs), String> {
        Ok((LeastConn, vane_plugin_kit::needs_nothing()))
    }

    fn pick(&mut self, request: &Request, states: &BackendStates, ranked: &mut Vec<u32>) {
        rank_least_loaded(request.sequence, states, RANKED, ranked);
    }
}

/// Pushes up to `max` healthy backends onto `ranked`, least loaded per unit of weight first.
/// Equal loads are ordered starting from the backend at `sequence % n`.
pub fn rank_least_loaded(sequence: u64, states: &BackendStates, max: usize, ranked: &mut Vec<u32>) {
    let count = states.healthy.len();
    if count == 0 {
        return;
    }
    let start = (sequence % count as u64) as usize;
    let first = ranked.len();
    for _ in 0..max {
        let mut best: Option<(usize, u64, u64)> = None; // (index, in_flight, weight)
        for offset in 0..count {
            let index = (start + offset) % count;
            if !states.healthy[index] || ranked[first..].contains(&(index as u32)) {
                continue;
            }
            let load = u64::from(states.in_flight[index]);
            let weight = u64::from(states.weight[index].max(1));
            // load/weight < best_load/best_weight, without division.
            let better = match best {
                None => true,
                Some((_, best_load, best_weight)) => load * best_weight < best_load * weight,
            };
            if better {
                best = Some((index, load, weight));
            }
        }
        match best {
            Some((index, _, _)) => ranked.push(index as u32),
            None => return,
        }
    }
}

vane_plugin_kit::export_policy!(LeastConn);

#[cfg(test)]
mod tests {
    use super::*;

    fn states(healthy: &[bool], in_flight: &[u32], weight: &[u32]) -> BackendStates {
        let n = healthy.len();
        BackendStates {
            healthy: healthy.to_vec(),
            weight: weight.to_vec(),
            in_flight: in_flight.to_vec(),
            requests: vec![0; n],
            failures: vec![0; n],
            latency_ewma_us: vec![0; n],
        }
    }

    fn rank(sequence: u64, states: &BackendStates) -> Vec<u32> {
        let mut ranked = Vec::new();
        rank_least_loaded(sequence, states, RANKED, &mut ranked);
        ranked
    }

    #[test]
    fn fewest_in_flight_wins() {
        let s = states(&[true; 3], &[4, 1, 2], &[1; 3]);
        assert_eq!(rank(0, &s), vec![1, 2, 0]);
    }

    #[test]
    fn load_is_per_unit_of_weight() {
        // 4/4 = 1 beats 2/1 = 2
        let s = states(&[true; 2], &[4, 2], &[4, 1]);
        assert_eq!(rank(0, &s)[0], 0);
    }

    #[test]
    fn ties_rotate_with_the_sequence() {
        let s = states(&[true; 3], &[0; 3], &[1; 3]);
        let firsts: Vec<u32> = (0..3).map(|seq| rank(seq, &s)[0]).collect();
        assert_eq!(firsts, vec![0, 1, 2]);
    }

    #[test]
    fn unhealthy_backends_are_never_ranked() {
        let s = states(&[false, true, false], &[0, 9, 0], &[1; 3]);
        assert_eq!(rank(0, &s), vec![1]);
        let none = states(&[false; 2], &[0; 2], &[1; 2]);
        assert!(rank(0, &none).is_empty());
    }
}
