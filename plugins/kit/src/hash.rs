//! Hashing for affinity: a fast, well-mixed 64-bit hash of a key (a header, a path, a client
//! address), and weighted rendezvous hashing to map it to backends so that adding or removing a
//! backend moves only the keys that must move.

/// FNV-1a over `bytes`, then a 64-bit finalizer (splitmix64's) so nearby keys spread evenly.
/// Stable across runs, builds and platforms: the same key always hashes the same.
pub fn hash64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix64(hash)
}

/// splitmix64's finalizer: every input bit affects every output bit.
pub fn mix64(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Pushes up to `max` eligible backends onto `ranked` in weighted rendezvous order for `key`
/// (highest random weight): each backend scores `weight / -ln(u)`, where `u` in (0, 1) comes from
/// hashing the key with the backend's identity (`ids[i]`, such as `hash64(name)`). A key keeps
/// its backend while that backend stays; a backend's share of keys follows its weight.
pub fn rank_rendezvous(
    key: u64,
    ids: &[u64],
    eligible: impl Fn(usize) -> bool,
    weight: &[u64],
    max: usize,
    ranked: &mut Vec<u32>,
) {
    let count = ids.len().min(weight.len());
    let mut scored: Vec<(f64, u32)> = (0..count)
        .filter(|&i| eligible(i) && !ranked.contains(&(i as u32)))
        .map(|i| {
            let bits = mix64(key ^ ids[i]) >> 11; // 53 bits
            let unit = (bits as f64 + 0.5) / (1u64 << 53) as f64; // in (0, 1)
            (weight[i].max(1) as f64 / -unit.ln(), i as u32)
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    ranked.extend(scored.iter().take(max).map(|(_, index)| *index));
}

/// Pushes up to `max` of the first `count` backends that are eligible and not yet in `ranked`
/// onto it, lowest `key` first (ties keep set order, so make the rotation part of the key if
/// ties should rotate).
pub fn rank_lowest<K: Ord>(
    count: usize,
    eligible: impl Fn(usize) -> bool,
    max: usize,
    key: impl Fn(usize) -> K,
    ranked: &mut Vec<u32>,
) {
    let mut candidates: Vec<usize> = (0..count)
        .filter(|&i| eligible(i) && !ranked.contains(&(i as u32)))
        .collect();
    candidates.sort_by_key(|&i| key(i));
    ranked.extend(candidates.iter().take(max).map(|&i| i as u32));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_stable_and_spread() {
        assert_eq!(hash64(b"user-42"), hash64(b"user-42"));
        assert_ne!(hash64(b"user-42"), hash64(b"user-43"));
        let ones: u32 = (0..1000u32)
            .map(|i| hash64(&i.to_le_bytes()).count_ones())
            .sum();
        let mean = f64::from(ones) / 1000.0;
        assert!((30.0..34.0).contains(&mean), "{mean} bits set on average");
    }

    #[test]
    fn rendezvous_follows_weights_and_moves_few_keys() {
        let ids: Vec<u64> = ["a", "b", "c"]
            .iter()
            .map(|n| hash64(n.as_bytes()))
            .collect();
        let first = |healthy: &[bool], weight: &[u64], key: u64| {
            let mut ranked = Vec::new();
            rank_rendezvous(key, &ids, |i| healthy[i], weight, 3, &mut ranked);
            ranked[0]
        };
        let mut counts = [0u32; 3];
        for key in 0..30_000u64 {
            counts[first(&[true; 3], &[1, 2, 3], mix64(key)) as usize] += 1;
        }
        for (i, share) in [1.0 / 6.0, 2.0 / 6.0, 3.0 / 6.0].iter().enumerate() {
            let got = f64::from(counts[i]) / 30_000.0;
            assert!(
                (got - share).abs() < 0.02,
                "backend {i}: {got} against {share}"
            );
        }
        // Taking c out moves only c's keys.
        let moved = (0..10_000u64)
            .map(mix64)
            .filter(|&key| {
                let before = first(&[true; 3], &[1; 3], key);
                before != 2 && first(&[true, true, false], &[1; 3], key) != before
            })
            .count();
        assert_eq!(moved, 0);
    }

    #[test]
    fn lowest_skips_unhealthy_and_ranked() {
        let mut ranked = vec![3];
        let healthy = [true, false, true, true];
        rank_lowest(4, |i| healthy[i], 2, |i| [5, 0, 1, 0][i], &mut ranked);
        assert_eq!(ranked, [3, 2, 0]);
    }
}
