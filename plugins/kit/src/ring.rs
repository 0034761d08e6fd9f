//! A consistent hash ring (Karger et al.; Ketama, Envoy's ring hash) with bounded loads
//! (Mirrokni, Thorup and Zadimoghaddam, "Consistent Hashing with Bounded Loads", as HAProxy's
//! `hash-balance-factor` and Envoy's `hash_balance_factor`).
//!
//! Each backend owns points on a ring of 64-bit hashes, as many as its weight asks for, placed
//! by hashing its name: the ring depends only on the names and weights, never on the order of
//! the set, so every vane instance and every restart builds the same one. A key goes to the
//! owner of the first point at or after the key's hash. When a backend leaves, only the keys
//! it owned move (to the owners of the next points); the others stay where they were.

use crate::hash::hash64;
use crate::schedule::gcd;

/// Points per unit of weight (after dividing the weights by their common divisor). Measured
/// over 200 000 keys, equal backends' shares of the keys ranged 0.90–1.10× an equal share with
/// 50 backends (160, Ketama's and nginx's count, gave 0.78–1.26×), and 0.95–1.04× with 3; 1024
/// would gain little for twice the memory.
pub const POINTS_PER_WEIGHT: u32 = 512;

/// The most points a ring holds (4 MiB of them); larger weight sums get fewer points per unit
/// of weight.
pub const MAX_POINTS: u64 = 1 << 18;

/// The ring: every backend's points, sorted by hash.
#[derive(Debug, Clone, Default)]
pub struct HashRing {
    /// (hash, backend index), sorted by hash.
    points: Vec<(u64, u32)>,
    /// The number of backends.
    backends: usize,
}

impl HashRing {
    /// The ring of these backends, `(name, weight)` in set order (a weight of 0 counts as 1).
    /// The weights are divided by their common divisor, and backend `i` owns `weight × 512`
    /// points, each the hash of `name#k`, so a backend's points depend only on its name and
    /// its weight: a backend that leaves takes only its own points away, and only its keys
    /// move. Two things change other backends' points too: a change of the weights' common
    /// divisor, and a ring that would pass 2^18 points in all (more than 512 units of weight
    /// after the division), which then gets fewer points per unit of weight.
    pub fn new<'a>(backends: impl IntoIterator<Item = (&'a str, u32)>) -> Self {
        let backends: Vec<(&str, u32)> = backends
            .into_iter()
            .map(|(name, weight)| (name, weight.max(1)))
            .collect();
        let divisor = backends.iter().map(|(_, w)| *w).reduce(gcd).unwrap_or(1);
        let total: u64 = backends.iter().map(|(_, w)| u64::from(w / divisor)).sum();
        let per_weight =
            (MAX_POINTS as f64 / total.max(1) as f64).min(f64::from(POINTS_PER_WEIGHT));
        let mut points = Vec::new();
        for (index, (name, weight)) in backends.iter().enumerate() {
            let count = ((f64::from(weight / divisor) * per_weight).round() as u64).max(1);
            let mut label = format!("{name}#");
            let prefix = label.len();
            for k in 0..count {
                label.truncate(prefix);
                label.push_str(&k.to_string());
                points.push((hash64(label.as_bytes()), index as u32));
            }
        }
        points.sort_unstable();
        HashRing {
            points,
            backends: backends.len(),
        }
    }

    /// The number of points on the ring.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether the ring has no points (no backends).
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Pushes up to `max` distinct backends for `key` onto `ranked`, walking the ring from the
    /// key's place: first the first `eligible` backend that `has_room` (bounded loads: one
    /// that would be overloaded passes its keys on to the next), then the next eligible ones
    /// as spares. If no eligible backend has room, the first eligible one is first. The walk
    /// ends once it has ranked `max` or met every backend.
    pub fn rank(
        &self,
        key: u64,
        eligible: impl Fn(usize) -> bool,
        has_room: impl Fn(usize) -> bool,
        max: usize,
        ranked: &mut Vec<u32>,
    ) {
        let len = self.points.len();
        if len == 0 || max == 0 {
            return;
        }
        let base = ranked.len();
        let start = self.points.partition_point(|&(hash, _)| hash < key);
        // Each backend is considered once, where the walk first meets it.
        let mut met = vec![0u64; self.backends.div_ceil(64)];
        let mut left = self.backends;
        // Eligible backends met before the first choice, which had no room: spares after it.
        let mut full: Vec<u32> = Vec::new();
        let mut chosen = false;
        for step in 0..len {
            if left == 0 || ranked.len() - base == max {
                break;
            }
            let index = self.points[(start + step) % len].1;
            let (word, bit) = (index as usize / 64, 1u64 << (index % 64));
            if met[word] & bit != 0 {
                continue;
            }
            met[word] |= bit;
            left -= 1;
            let i = index as usize;
            if !eligible(i) {
                continue;
            }
            if chosen || has_room(i) {
                ranked.push(index);
                chosen = true;
            } else {
                full.push(index);
            }
        }
        if !chosen && let Some(&first) = full.first() {
            // No eligible backend has room: the key's own backend after all.
            ranked.push(first);
            full.remove(0);
        }
        let room = max - (ranked.len() - base);
        ranked.extend(full.into_iter().take(room));
    }
}

/// Bounded loads: whether a backend with `in_flight` requests and `weight` may take one more,
/// given `total` requests in flight on the eligible backends, whose weights sum to
/// `total_weight`, and a balance `factor` (at least 1; 1.25 lets a backend carry a quarter
/// more than its share of the load, plus one).
pub fn has_room(in_flight: u64, weight: u64, total: u64, total_weight: u64, factor: f64) -> bool {
    let share = weight.max(1) as f64 / total_weight.max(1) as f64;
    let capacity = (factor * (total + 1) as f64 * share).ceil();
    ((in_flight + 1) as f64) <= capacity
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::mix64;

    fn first(ring: &HashRing, key: u64, eligible: &[bool]) -> u32 {
        let mut ranked = Vec::new();
        ring.rank(key, |i| eligible[i], |_| true, 3, &mut ranked);
        ranked[0]
    }

    #[test]
    fn equal_backends_share_keys_and_weights_are_honoured() {
        let ring = HashRing::new([("a", 1), ("b", 1), ("c", 2)]);
        assert_eq!(ring.len(), 4 * 512);
        let mut counts = [0u32; 3];
        for key in 0..40_000u64 {
            counts[first(&ring, mix64(key), &[true; 3]) as usize] += 1;
        }
        for (i, want) in [0.25, 0.25, 0.5].iter().enumerate() {
            let got = f64::from(counts[i]) / 40_000.0;
            assert!(
                (got - want).abs() < 0.05,
                "backend {i}: {got} against {want}"
            );
        }
    }

    #[test]
    fn a_leaving_backend_moves_only_its_keys_and_order_does_not_matter() {
        let ring = HashRing::new([("a", 1), ("b", 1), ("c", 1)]);
        let without_c = HashRing::new([("a", 1), ("b", 1)]);
        let reordered = HashRing::new([("c", 1), ("a", 1), ("b", 1)]);
        let name = |set: &[&str], index: u32| set[index as usize].to_owned();
        for key in (0..5_000u64).map(mix64) {
            let before = name(&["a", "b", "c"], first(&ring, key, &[true; 3]));
            let after = name(&["a", "b"], first(&without_c, key, &[true; 2]));
            if before != "c" {
                assert_eq!(after, before, "key {key} moved");
            }
            assert_eq!(
                name(&["c", "a", "b"], first(&reordered, key, &[true; 3])),
                before
            );
            // Out of rotation is the same as gone.
            assert_eq!(
                name(&["a", "b", "c"], first(&ring, key, &[true, true, false])),
                after
            );
        }
    }

    #[test]
    fn with_weights_a_leaving_backend_moves_only_its_keys_too() {
        // Weights 100, 200, 300: one unit is 100, so a, b and c own 512, 1024 and 1536 points,
        // whoever else is in the set.
        let ring = HashRing::new([("a", 100), ("b", 200), ("c", 300)]);
        let without_a = HashRing::new([("b", 200), ("c", 300)]);
        assert_eq!((ring.len(), without_a.len()), (3072, 2560));
        for key in (0..5_000u64).map(mix64) {
            let before = first(&ring, key, &[true; 3]);
            let after = first(&without_a, key, &[true; 2]) + 1;
            if before != 0 {
                assert_eq!(after, before, "key {key} moved");
            }
        }
    }

    #[test]
    fn the_walk_ends_once_every_backend_was_met() {
        // Two backends of a large weight, one of them out: no spare to find, and the walk
        // stops at the second backend instead of visiting every point.
        let ring = HashRing::new([("a", 1000), ("b", 999)]);
        assert_eq!(ring.len(), 1 << 18);
        let calls = std::cell::Cell::new(0);
        let mut ranked = Vec::new();
        ring.rank(
            mix64(3),
            |i| {
                calls.set(calls.get() + 1);
                i == 0
            },
            |_| true,
            3,
            &mut ranked,
        );
        assert_eq!(ranked, [0]);
        assert_eq!(calls.get(), 2, "each backend asked about once");
    }

    #[test]
    fn a_full_backend_passes_the_key_on_and_spares_follow() {
        let ring = HashRing::new([("a", 1), ("b", 1), ("c", 1)]);
        let key = mix64(7);
        let mut ranked = Vec::new();
        ring.rank(key, |_| true, |_| true, 3, &mut ranked);
        let home = ranked[0];
        let mut sorted = ranked.clone();
        sorted.sort();
        assert_eq!(sorted, [0, 1, 2]);

        let mut passed = Vec::new();
        ring.rank(key, |_| true, |i| i as u32 != home, 3, &mut passed);
        assert_ne!(passed[0], home);
        assert_eq!(passed.len(), 3, "{passed:?}");
        let mut nowhere = Vec::new();
        ring.rank(key, |_| true, |_| false, 1, &mut nowhere);
        assert_eq!(nowhere, [home], "no room anywhere: the key's own backend");
    }

    #[test]
    fn room_is_a_factor_over_the_weighted_share() {
        // 8 in flight over three equal backends: each may hold ceil(1.25 × 9 / 3) = 4.
        assert!(has_room(3, 1, 8, 3, 1.25));
        assert!(!has_room(4, 1, 8, 3, 1.25));
        // Twice the weight, twice the room: ceil(1.25 × 9 × 2 / 4) = 6.
        assert!(has_room(5, 2, 8, 4, 1.25));
        assert!(!has_room(6, 2, 8, 4, 1.25));
        assert!(has_room(0, 1, 0, 3, 1.25), "an idle set always has room");
    }
}
