//! Least connections, weighted: the backend with the fewest in-flight requests per unit of weight.
//!
//! As HAProxy's `leastconn` and nginx's `least_conn` (both weighted). Ties are broken by rotating
//! the starting point with the request's sequence number, so equal backends share load instead
//! of piling onto the first.

/// Pushes up to `max` eligible backends onto `ranked`, least loaded per unit of weight first.
/// Equal loads are ordered starting from the backend at `sequence % n`.
pub fn rank_least_loaded(
    sequence: u64,
    eligible: impl Fn(usize) -> bool,
    in_flight: &[u64],
    weight: &[u64],
    max: usize,
    ranked: &mut Vec<u32>,
) {
    let count = in_flight.len().min(weight.len());
    if count == 0 {
        return;
    }
    let start = (sequence % count as u64) as usize;
    let first = ranked.len();
    for _ in 0..max {
        let mut best: Option<(usize, u128, u128)> = None; // (index, in_flight, weight)
        for offset in 0..count {
            let index = (start + offset) % count;
            if !eligible(index) || ranked[first..].contains(&(index as u32)) {
                continue;
            }
            let load = u128::from(in_flight[index]);
            let weight = u128::from(weight[index].max(1));
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

#[cfg(test)]
mod tests {
    use super::*;

    struct States<'a>(&'a [bool], &'a [u64], &'a [u64]);

    fn states<'a>(healthy: &'a [bool], in_flight: &'a [u64], weight: &'a [u64]) -> States<'a> {
        States(healthy, in_flight, weight)
    }

    fn rank(sequence: u64, states: &States<'_>) -> Vec<u32> {
        let mut ranked = Vec::new();
        let eligible = |i: usize| states.0[i];
        rank_least_loaded(sequence, eligible, states.1, states.2, 3, &mut ranked);
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
