//! Least connections, weighted: the backend with the fewest in-flight requests per unit of weight.
//!
//! As HAProxy's `leastconn` and nginx's `least_conn` (both weighted). Ties are broken by rotating
//! the starting point with the request's sequence number, so equal backends share load instead
//! of piling onto the first.

use std::ops::Range;

/// Pushes up to `max` eligible backends onto `ranked`, least loaded per unit of weight first.
/// Equal loads are ordered starting from the `sequence % m`-th of the `m` eligible backends, so
/// equal backends take turns evenly whichever are eligible. One pass over the backends, keeping
/// the best `max` so far in order, and a second only while some backend is not eligible.
///
/// In a policy, `States::rank_least_loaded` ranks the same from a pick's states, with less
/// work per backend.
pub fn rank_least_loaded(
    sequence: u64,
    eligible: impl Fn(usize) -> bool,
    in_flight: &[u64],
    weight: &[u64],
    max: usize,
    ranked: &mut Vec<u32>,
) {
    rank(sequence, &Asked(eligible), in_flight, weight, max, ranked);
}

/// What a least-loaded ranking divides each backend's in-flight requests by.
#[derive(Debug, Clone, Copy)]
pub enum Weights<'a> {
    /// Each backend's weight, one per backend: the `weight` column, or the weights `configure`
    /// was given (the column always holds those). Backends beyond its end are not ranked.
    Each(&'a [u64]),
    /// Every backend weighs the same: in-flight requests alone are compared, which ranks as
    /// equal weights would, with less work per backend.
    Equal,
}

/// Where a ranking reads whether a backend may be named.
pub(crate) trait Eligibility {
    /// Whether backend `index` may be ranked.
    fn eligible(&self, index: usize) -> bool;
    /// How many backends it answers for: none beyond is eligible.
    fn len(&self) -> usize;
}

/// Eligibility asked of a closure, backend by backend.
struct Asked<F>(F);

impl<F: Fn(usize) -> bool> Eligibility for Asked<F> {
    fn eligible(&self, index: usize) -> bool {
        (self.0)(index)
    }

    fn len(&self) -> usize {
        usize::MAX
    }
}

/// Eligibility read from every backend's state bits, as a pick gets them: bit 0 set if it may
/// be named.
#[cfg_attr(not(feature = "guest"), allow(dead_code))] // for `States`, a guest type
pub(crate) struct StateBits<'a>(pub(crate) &'a [u64]);

impl Eligibility for StateBits<'_> {
    #[inline]
    fn eligible(&self, index: usize) -> bool {
        self.0[index] & 1 != 0
    }

    #[inline]
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// What a ranking weighs each backend's requests by.
trait Weigh: Copy {
    /// The weight of backend `index`, which is below [`Weigh::len`].
    fn weight(self, index: usize) -> u64;
    /// How many backends it holds a weight for.
    fn len(self) -> usize;
}

impl Weigh for &[u64] {
    #[inline]
    fn weight(self, index: usize) -> u64 {
        self[index]
    }

    #[inline]
    fn len(self) -> usize {
        <[u64]>::len(self)
    }
}

/// Every backend weighing the same.
#[derive(Clone, Copy)]
#[cfg_attr(not(feature = "guest"), allow(dead_code))] // for `States`, a guest type
struct Equal;

impl Weigh for Equal {
    #[inline]
    fn weight(self, _index: usize) -> u64 {
        1
    }

    #[inline]
    fn len(self) -> usize {
        usize::MAX
    }
}

/// [`rank_least_loaded`] with eligibility read from `eligible` and weights from `weights`.
#[cfg_attr(not(feature = "guest"), allow(dead_code))] // for `States`, a guest type
pub(crate) fn rank_weighted(
    sequence: u64,
    eligible: &impl Eligibility,
    in_flight: &[u64],
    weights: Weights<'_>,
    max: usize,
    ranked: &mut Vec<u32>,
) {
    match weights {
        Weights::Each(weight) => rank(sequence, eligible, in_flight, weight, max, ranked),
        Weights::Equal => rank(sequence, eligible, in_flight, Equal, max, ranked),
    }
}

/// [`rank_least_loaded`], for any eligibility and weights.
fn rank(
    sequence: u64,
    eligible: &impl Eligibility,
    in_flight: &[u64],
    weights: impl Weigh,
    max: usize,
    ranked: &mut Vec<u32>,
) {
    let count = in_flight.len().min(weights.len()).min(eligible.len());
    if count == 0 || max == 0 {
        return;
    }
    let first = ranked.len();
    let mut pass = |start: usize| {
        ranked.truncate(first);
        rank_from(
            start,
            eligible,
            &in_flight[..count],
            weights,
            max,
            first,
            ranked,
        )
    };
    // Ties take turns among the eligible backends: the visit starts at the (sequence % m)-th
    // of the m eligible ones. While all are eligible that is backend (sequence % count); when
    // some are not, starting there would hand an ineligible backend's turns to the next one,
    // which would then win ties twice as often, so the pass is made again from the right one.
    let eligible_count = pass((sequence % count as u64) as usize);
    if eligible_count == count || eligible_count == 0 {
        return;
    }
    let turn = (sequence % eligible_count as u64) as usize;
    if let Some(start) = (0..count).filter(|&i| eligible.eligible(i)).nth(turn) {
        pass(start);
    }
}

/// One pass of [`rank_least_loaded`] over all of `in_flight`, visiting from `start` on and
/// keeping the best `max` in `ranked[first..]`; answers how many backends were eligible.
fn rank_from(
    start: usize,
    eligible: &impl Eligibility,
    in_flight: &[u64],
    weights: impl Weigh,
    max: usize,
    first: usize,
    ranked: &mut Vec<u32>,
) -> usize {
    let count = in_flight.len();
    let load = |index: usize| Load::of(in_flight[index], weights.weight(index));
    // Until `max` are kept, a load every backend is lighter than; then the last one kept's.
    let mut last = HEAVIEST;
    let mut eligible_count = 0;
    for range in [start..count, 0..start] {
        let mut from = range.start;
        // Until `max` are kept, every eligible backend is: no search for them.
        while ranked.len() - first < max && from < range.end {
            if eligible.eligible(from) {
                eligible_count += 1;
                last = keep(from, max, first, ranked, load);
            }
            from += 1;
        }
        while from < range.end {
            let found = next_lighter(eligible, in_flight, weights, from..range.end, last);
            eligible_count += found.passed();
            let Some(index) = found.index() else { break };
            last = keep(index, max, first, ranked, load);
            from = index + 1;
        }
    }
    eligible_count
}

/// The first backend of `range` that is eligible and lighter than `last`, if any, and how many
/// eligible backends the search met (that one included). Most backends are only looked at
/// here, in a loop that calls nothing and checks no bounds: compiled, it keeps its state in
/// registers, and a backend costs a test, two loads and a comparison.
#[inline(never)]
fn next_lighter(
    eligible: &impl Eligibility,
    in_flight: &[u64],
    weights: impl Weigh,
    range: Range<usize>,
    last: Load,
) -> Found {
    let end = (range.end.min(in_flight.len()))
        .min(weights.len())
        .min(eligible.len());
    let in_flight = &in_flight[..end];
    let mut passed = 0;
    // By index: it reads the eligibility and the weight as well.
    #[allow(clippy::needless_range_loop)]
    for index in range.start..end {
        if eligible.eligible(index) {
            passed += 1;
            if Load::of(in_flight[index], weights.weight(index)).lighter(last) {
                return Found::at(index, passed);
            }
        }
    }
    Found::none(passed)
}

/// What [`next_lighter`] found, packed in one number so that the compiled search answers in
/// a register: the index plus one in the high half (0 if none), the eligible backends passed in
/// the low half. Both fit: a set has fewer than 2^32 backends.
#[derive(Clone, Copy)]
struct Found(u64);

impl Found {
    fn at(index: usize, passed: usize) -> Self {
        Found(((index as u64 + 1) << 32) | passed as u64)
    }

    fn none(passed: usize) -> Self {
        Found(passed as u64)
    }

    fn index(self) -> Option<usize> {
        (self.0 >> 32).checked_sub(1).map(|index| index as usize)
    }

    fn passed(self) -> usize {
        (self.0 & u64::from(u32::MAX)) as usize
    }
}

/// A backend's load: its requests in flight and its weight, both kept below 2^32 so that
/// comparing two loads' products fits in a u64 (wasm has no wider multiply).
#[derive(Clone, Copy)]
struct Load {
    in_flight: u64,
    weight: u64,
}

/// A load every backend's is lighter than: 2^32 requests on a weight of 1.
const HEAVIEST: Load = Load {
    in_flight: 1 << 32,
    weight: 1,
};

impl Load {
    /// The load of `in_flight` requests on `weight` (0 counts as 1).
    #[inline]
    fn of(in_flight: u64, weight: u64) -> Self {
        let most = u64::from(u32::MAX);
        Load {
            in_flight: in_flight.min(most),
            weight: weight.clamp(1, most),
        }
    }

    /// Whether this load carries fewer requests per unit of weight than `other`.
    #[inline]
    fn lighter(self, other: Load) -> bool {
        self.in_flight * other.weight < other.in_flight * self.weight
    }
}

/// Keeps backend `index` (lighter than the last one kept, once `max` are) among the best `max`
/// in `ranked[first..]`, after every one kept that it is not lighter than (equal loads keep the
/// visiting order); answers the load a later backend must be lighter than to be kept. Always
/// inlined (measured: a call per kept backend cost a small set more than the search saves).
#[inline(always)]
fn keep(
    index: usize,
    max: usize,
    first: usize,
    ranked: &mut Vec<u32>,
    load: impl Fn(usize) -> Load,
) -> Load {
    let candidate = load(index);
    let kept = &ranked[first..];
    let at = kept
        .iter()
        .position(|&other| candidate.lighter(load(other as usize)))
        .unwrap_or(kept.len());
    if kept.len() == max {
        ranked.pop();
    }
    ranked.insert(first + at, index as u32);
    match ranked.len() - first == max {
        true => ranked
            .last()
            .map_or(HEAVIEST, |&index| load(index as usize)),
        false => HEAVIEST,
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
            // A pick's states, with the weights apart, rank the same.
            #[cfg(feature = "guest")]
            {
                use crate::{Columns, States};
                let words: Vec<u64> = (healthy.iter().map(|&h| u64::from(h)))
                    .chain(in_flight.iter().copied())
                    .collect();
                let states = States::new(&words, n, Columns::IN_FLIGHT);
                let mut from_states = vec![99];
                states.rank_least_loaded(sequence, Weights::Each(&weight), max, &mut from_states);
                assert_eq!(from_states, ranked, "{healthy:?} {in_flight:?} {weight:?}");
                // Equal weights are no weights.
                let (mut equal, mut unweighted) = (Vec::new(), Vec::new());
                states.rank_least_loaded(sequence, Weights::Each(&vec![3; n]), max, &mut equal);
                states.rank_least_loaded(sequence, Weights::Equal, max, &mut unweighted);
                assert_eq!(unweighted, equal, "{healthy:?} {in_flight:?}");
            }
        }
    }

    #[test]
    fn huge_loads_and_weights_rank_as_clamped_when_searched_for() {
        let (most, huge) = (u64::from(u32::MAX), u64::MAX);
        let in_flight = [huge, 1 << 32, most, 0, 5, most - 1, 9, huge];
        let weight = [1, 3, huge, 0, 1, 1 << 40, huge, 2];
        let clamp = |i: usize| {
            (
                u128::from(in_flight[i].min(most)),
                u128::from(weight[i].clamp(1, most)),
            )
        };
        for sequence in 0..16 {
            // The reference: every backend in visiting order, stably sorted by clamped load.
            let start = (sequence % 8) as usize;
            let mut expected: Vec<u32> = (0..8).map(|k| ((start + k) % 8) as u32).collect();
            expected.sort_by(|&a, &b| {
                let ((fa, wa), (fb, wb)) = (clamp(a as usize), clamp(b as usize));
                (fa * wb).cmp(&(fb * wa))
            });
            expected.truncate(3);
            let mut ranked = Vec::new();
            rank_least_loaded(sequence, |_| true, &in_flight, &weight, 3, &mut ranked);
            assert_eq!(ranked, expected, "sequence {sequence}");
        }
    }

    #[test]
    fn loads_beyond_two_to_the_32_rank_as_the_most() {
        let (huge, most) = (u64::MAX, u64::from(u32::MAX));
        let (in_flight, weight) = ([huge, most, 7], [1, 1, huge]);
        let s = states(&[true; 3], &in_flight, &weight);
        assert_eq!(rank(0, &s), vec![2, 0, 1]);
    }
}
