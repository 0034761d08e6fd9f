//! Smooth weighted round-robin as a fixed schedule, indexed by the request's sequence number.
//!
//! The schedule is nginx's smooth weighted round-robin (ngx_http_upstream_round_robin.c) unrolled
//! for one full cycle, so a pick is a pure function of the sequence number: exact across the
//! several instances of a plugin, and identical in the host's built-in round-robin.

/// The longest cycle kept; larger weight sums are scaled down to fit. Long enough for any
/// realistic weights (1:1000 between 64 backends), short enough to build in microseconds.
const MAX_CYCLE: u64 = 1 << 16;

/// Slots drawn for a turn whose backend is not eligible, before drawing among the eligible
/// slots only.
const RESTARTS: usize = 4;

/// One cycle of smooth weighted round-robin: backend `i` appears `weight[i]` times (after
/// dividing all weights by their greatest common divisor), interleaved as evenly as possible.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WeightedSchedule {
    cycle: Vec<u32>,
}

impl WeightedSchedule {
    /// Builds the schedule for these weights; a weight of 0 counts as 1.
    pub fn new(weights: &[u32]) -> Self {
        let weights = reduced(weights);
        let total: i64 = weights.iter().map(|&w| i64::from(w)).sum();
        let mut current = vec![0i64; weights.len()];
        let mut cycle = Vec::with_capacity(total as usize);
        for _ in 0..total {
            let mut best = 0;
            for (index, weight) in weights.iter().enumerate() {
                current[index] += i64::from(*weight);
                if current[index] > current[best] {
                    best = index;
                }
            }
            current[best] -= total;
            cycle.push(best as u32);
        }
        WeightedSchedule { cycle }
    }

    /// The number of picks in one cycle.
    pub fn len(&self) -> usize {
        self.cycle.len()
    }

    /// Whether the schedule has no backends.
    pub fn is_empty(&self) -> bool {
        self.cycle.is_empty()
    }

    /// Pushes up to `max` distinct eligible backends onto `ranked`, in schedule order starting at
    /// the slot for `sequence`. If that slot's backend is not eligible, the order starts at a
    /// slot drawn from `sequence` instead (a few draws, then one drawn among the eligible
    /// slots), so that its turns spread over the eligible backends by weight.
    ///
    /// `ranked` is a `Vec<u32>`, or any list that can be read as a slice and extended (the host
    /// ranks into one that needs no allocation).
    pub fn rank<R: AsRef<[u32]> + Extend<u32>>(
        &self,
        sequence: u64,
        eligible: impl Fn(u32) -> bool,
        max: usize,
        ranked: &mut R,
    ) {
        let len = self.cycle.len();
        if len == 0 || max == 0 {
            return;
        }
        let mut start = (sequence % len as u64) as usize;
        if !eligible(self.cycle[start]) {
            // The slot's backend may not take this request: the turn goes to a slot drawn
            // from the sequence number, so an ineligible backend's turns spread over the
            // others by weight instead of all going to the one after it in the cycle (which
            // would then take twice its share). A few draws; then the next eligible slot.
            let mut draw = sequence;
            let mut drawn = false;
            for _ in 0..RESTARTS {
                draw = crate::hash::mix64(draw);
                let slot = (draw % len as u64) as usize;
                if eligible(self.cycle[slot]) {
                    start = slot;
                    drawn = true;
                    break;
                }
            }
            if !drawn {
                // Most slots are out: the drawn-th of the eligible slots, in one more pass.
                let slots = || (0..len).filter(|&slot| eligible(self.cycle[slot]));
                let count = slots().count();
                if count == 0 {
                    return;
                }
                start = slots().nth((draw % count as u64) as usize).unwrap_or(start);
            }
        }
        let first = ranked.as_ref().len();
        for offset in 0..len {
            let index = self.cycle[(start + offset) % len];
            if eligible(index) && !ranked.as_ref()[first..].contains(&index) {
                ranked.extend([index]);
                if ranked.as_ref().len() - first == max {
                    return;
                }
            }
        }
    }
}

/// Divides the weights by their common divisor and scales them down if the cycle would be longer
/// than [`MAX_CYCLE`], keeping every weight at least 1.
fn reduced(weights: &[u32]) -> Vec<u32> {
    let weights: Vec<u32> = weights.iter().map(|&w| w.max(1)).collect();
    let divisor = weights.iter().copied().reduce(gcd).unwrap_or(1);
    let weights: Vec<u32> = weights.iter().map(|w| w / divisor).collect();
    let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
    if total <= MAX_CYCLE {
        return weights;
    }
    weights
        .iter()
        .map(|&w| ((u64::from(w) * MAX_CYCLE / total) as u32).max(1))
        .collect()
}

/// The greatest common divisor of `a` and `b`.
pub(crate) fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_choices(schedule: &WeightedSchedule, picks: u64, eligible: &[bool]) -> Vec<usize> {
        let mut counts = vec![0; eligible.len()];
        let mut ranked = Vec::new();
        for sequence in 0..picks {
            ranked.clear();
            schedule.rank(sequence, |i| eligible[i as usize], 1, &mut ranked);
            counts[ranked[0] as usize] += 1;
        }
        counts
    }

    #[test]
    fn equal_weights_rotate_evenly() {
        let schedule = WeightedSchedule::new(&[1, 1, 1]);
        assert_eq!(schedule.cycle, vec![0, 1, 2]);
        assert_eq!(
            first_choices(&schedule, 300, &[true; 3]),
            vec![100, 100, 100]
        );
    }

    #[test]
    fn weights_are_honoured_and_interleaved() {
        let schedule = WeightedSchedule::new(&[5, 1, 1]);
        // nginx's documented example: a a b a c a a
        assert_eq!(schedule.cycle, vec![0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(
            first_choices(&schedule, 700, &[true; 3]),
            vec![500, 100, 100]
        );
    }

    #[test]
    fn common_divisor_shortens_the_cycle() {
        assert_eq!(WeightedSchedule::new(&[2, 4]).len(), 3);
        assert_eq!(WeightedSchedule::new(&[0, 0]).len(), 2);
    }

    #[test]
    fn huge_weights_are_scaled_to_the_cap() {
        let schedule = WeightedSchedule::new(&[1_000_000, 999_999, 1]);
        assert!(schedule.len() as u64 <= MAX_CYCLE + 3);
        assert!(schedule.cycle.contains(&2));
    }

    #[test]
    fn ineligible_backends_are_skipped_and_ranking_is_distinct() {
        let schedule = WeightedSchedule::new(&[1, 1, 1]);
        let counts = first_choices(&schedule, 300, &[true, false, true]);
        assert_eq!(counts[1], 0);
        assert_eq!(counts[0] + counts[2], 300);
        // The missing backend's turns spread over the others, not all to the next one.
        let counts = first_choices(&schedule, 30_000, &[true, false, true]);
        assert!((14_000..16_000).contains(&counts[0]), "{counts:?}");
        let four = WeightedSchedule::new(&[1, 1, 1, 1]);
        let counts = first_choices(&four, 40_000, &[true, false, false, true]);
        assert!((18_000..22_000).contains(&counts[0]), "{counts:?}");
        // Eight of ten out, side by side: the two left still share evenly.
        let ten = WeightedSchedule::new(&[1; 10]);
        let mut eligible = [false; 10];
        eligible[0] = true;
        eligible[1] = true;
        let counts = first_choices(&ten, 100_000, &eligible);
        assert!((47_000..53_000).contains(&counts[0]), "{counts:?}");

        let mut ranked = Vec::new();
        schedule.rank(1, |_| true, 5, &mut ranked);
        assert_eq!(ranked, vec![1, 2, 0]);
    }

    #[test]
    fn nothing_eligible_ranks_nothing() {
        let schedule = WeightedSchedule::new(&[1, 1]);
        let mut ranked = Vec::new();
        schedule.rank(0, |_| false, 2, &mut ranked);
        assert!(ranked.is_empty());
        WeightedSchedule::default().rank(0, |_| true, 2, &mut ranked);
        assert!(ranked.is_empty());
    }
}
