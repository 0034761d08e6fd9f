//! Least connections, weighted: the backend with the fewest in-flight requests per unit of weight.
//!
//! As HAProxy's `leastconn` and nginx's `least_conn` (both weighted). Ties are broken by rotating
//! the starting point with the request's sequence number, so equal backends share load instead
//! of piling onto the first.

/// Pushes up to `max` eligible backends onto `ranked`, least loaded per unit of weight first.
/// Equal loads are ordered starting from the `sequence % m`-th of the `m` eligible backends, so
/// equal backends take turns evenly whichever are eligible. One pass over the backends, keeping
/// the best `max` so far in order, and a second only while some backend is not eligible.
pub fn rank_least_loaded(
    sequence: u64,
    eligible: impl Fn(usize) -> bool,
    in_flight: &[u64],
    weight: &[u64],
    max: usize,
    ranked: &mut Vec<u32>,
) {
    let count = in_flight.len().min(weight.len());
    if count == 0 || max == 0 {
        return;
    }
    let first = ranked.len();
    let pass = |start: usize, ranked: &mut Vec<u32>| {
        rank_from(start, &eligible, in_flight, weight, max, first, ranked)
    };
    // Ties take turns among the eligible backends: the visit starts at the (sequence % m)-th
    // of the m eligible ones. While all are eligible that is backend (sequence % count); when
    // some are not, starting there would hand an ineligible backend's turns to the next one,
    // which would then win ties twice as often, so the pass is made again from the right one.
    let eligible_count = pass((sequence % count as u64) as usize, ranked);
    if eligible_count == count || eligible_count == 0 {
        return;
    }
    let turn = (sequence % eligible_count as u64) as usize;
    if let Some(start) = (0..count).filter(|&i| eligible(i)).nth(turn) {
        ranked.truncate(first);
        pass(start, ranked);
    }
}

/// One pass of [`rank_least_loaded`], visiting from `start` on and keeping the best `max` in
/// `ranked[first..]`; answers how many backends were eligible.
fn rank_from(
    start: usize,
    eligible: impl Fn(usize) -> bool,
    in_flight: &[u64],
    weight: &[u64],
    max: usize,
    first: usize,
    ranked: &mut Vec<u32>,
) -> usize {
    let count = in_flight.len().min(weight.len());
    // Both kept below 2^32, so that the products below fit in a u64 (wasm has no wider
    // multiply): `a` carries less per unit of weight than `b` if a.0 * b.1 < b.0 * a.1.
    let most = u64::from(u32::MAX);
    let load = |i: usize| (in_flight[i].min(most), weight[i].clamp(1, most));
    let lighter = |a: (u64, u64), b: (u64, u64)| a.0 * b.1 < b.0 * a.1;
    // The load of the last one kept, once `max` are: most backends compare only with it.
    let mut last: Option<(u64, u64)> = None;
    let mut eligible_count = 0;
    for index in (start..count).chain(0..start) {
        if !eligible(index) {
            continue;
        }
        eligible_count += 1;
        let candidate = load(index);
        if last.is_some_and(|last| !lighter(candidate, last)) {
            continue;
        }
        // After every one kept that it is not lighter than: equal loads keep the visiting order.
        let kept = &ranked[first..];
        let at = kept
            .iter()
            .position(|&other| lighter(candidate, load(other as usize)))
            .unwrap_or(kept.len());
        if kept.len() == max {
            ranked.pop();
        }
        ranked.insert(first + at, index as u32);
        if ranked.len() - first == max {
            last = ranked.last().map(|&index| load(index as usize));
        }
    }
    eligible_count
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
    fn ties_take_even_turns_whichever_backends_are_eligible() {
        // The second of four is out: the other three still win a third of the ties each.
        let s = states(&[true, false, true, true], &[0; 4], &[1; 4]);
        let mut wins = [0; 4];
        for seq in 0..300 {
            wins[rank(seq, &s)[0] as usize] += 1;
        }
        assert_eq!(wins, [100, 0, 100, 100]);
    }

    #[test]
    fn unhealthy_backends_are_never_ranked() {
        let s = states(&[false, true, false], &[0, 9, 0], &[1; 3]);
        assert_eq!(rank(0, &s), vec![1]);
        let none = states(&[false; 2], &[0; 2], &[1; 2]);
        assert!(rank(0, &none).is_empty());
    }

    #[test]
    fn one_pass_ranks_as_a_full_sort_would() {
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |bound: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % bound
        };
        for _ in 0..2000 {
            let n = 1 + next(12) as usize;
            let healthy: Vec<bool> = (0..n).map(|_| next(5) != 0).collect();
            let in_flight: Vec<u64> = (0..n).map(|_| next(6)).collect();
            let weight: Vec<u64> = (0..n).map(|_| 1 + next(4)).collect();
            let sequence = next(1000);
            let max = 1 + next(4) as usize;
            // The reference: every eligible backend in visiting order, stably sorted by load per
            // unit of weight, cut to `max`.
            let eligible: Vec<usize> = (0..n).filter(|&i| healthy[i]).collect();
            let mut expected: Vec<usize> = match eligible.len() {
                0 => Vec::new(),
                m => {
                    let start = (sequence % m as u64) as usize;
                    (0..m)
                        .map(|offset| eligible[(start + offset) % m])
                        .collect()
                }
            };
            expected.sort_by(|&a, &b| (in_flight[a] * weight[b]).cmp(&(in_flight[b] * weight[a])));
            expected.truncate(max);
            let mut ranked = vec![99];
            rank_least_loaded(
                sequence,
                |i| healthy[i],
                &in_flight,
                &weight,
                max,
                &mut ranked,
            );
            let got: Vec<usize> = ranked[1..].iter().map(|&i| i as usize).collect();
            assert_eq!(
                got, expected,
                "{healthy:?} {in_flight:?} {weight:?} seq {sequence}"
            );
        }
    }
}
