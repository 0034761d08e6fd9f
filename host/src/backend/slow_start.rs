//! Slow start (Envoy's, HAProxy's and nginx Plus's): a backend that joins the set or returns
//! to rotation is offered a share of the requests that grows over a window, instead of its
//! whole share at once, so a cold cache or a just-restarted process is not met by a herd.
//!
//! vane offers the share by request: on each request a warming backend is eligible or not by
//! a hash of the request's sequence number, so every policy (the built-in round-robin, every
//! plugin, whatever it does) honours slow start with no code of its own, and the backend's
//! turns go to the others. A policy that goes by load (least-conn, p2c) would send an idle
//! backend nearly every request it is offered, so a warming backend is also eligible only
//! while it holds fewer requests than its share of a warm backend's load (at least one), as
//! HAProxy ramps a server's `maxconn` with its weight. A warming backend's state bits say so
//! (see `wit/`).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::clock::Millis;

/// The share offered at the start of the window, in thousandths: Envoy's `min_weight_percent`
/// (10 %), so a returning backend gets some traffic at once and its statistics start to move.
pub const MIN_SHARE: u32 = 100;

/// A whole share, in thousandths.
pub const FULL_SHARE: u32 = 1000;

/// Stands for "not warming" in [`WarmUp`]'s moment.
const NOT_WARMING: Millis = Millis::MAX;

/// When a backend started warming up: the moment it joined or returned to rotation.
#[derive(Debug)]
pub struct WarmUp {
    since: AtomicU64,
}

impl Default for WarmUp {
    fn default() -> Self {
        WarmUp {
            since: AtomicU64::new(NOT_WARMING),
        }
    }
}

impl WarmUp {
    /// Starts warming up at `at`, as a backend joining or returning does.
    pub fn start(&self, at: Millis) {
        self.since.store(at, Ordering::Relaxed);
    }

    /// The share offered at `now` over a slow start of `window` (both on vane's clock), in
    /// thousandths; `None` once the backend is warm, or if it never started warming. `returned`
    /// is a return to rotation not recorded yet (an ejection whose cool-down ended at that
    /// moment, which ends by itself). Reads nothing but one atomic unless warming.
    pub fn share(
        &self,
        window: Millis,
        returned: Option<Millis>,
        now: impl Fn() -> Millis,
    ) -> Option<u32> {
        if window == 0 {
            return None;
        }
        let recorded = self.since.load(Ordering::Relaxed);
        let since = match (recorded, returned) {
            (NOT_WARMING, None) => return None,
            (NOT_WARMING, Some(returned)) => returned,
            (recorded, returned) => recorded.max(returned.unwrap_or(0)),
        };
        let elapsed = now().saturating_sub(since);
        if elapsed >= window {
            if returned.is_none() {
                // Warm: later picks read one atomic again. Another return may have started a
                // new warm-up since, which this leaves alone.
                let _ = self.since.compare_exchange(
                    recorded,
                    NOT_WARMING,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
            return None;
        }
        Some(ramp(elapsed, window))
    }
}

/// The share `elapsed` into a window of `window` (shorter than the window), in thousandths:
/// linear from [`MIN_SHARE`] up, as HAProxy's and nginx Plus's ramps are linear.
pub fn ramp(elapsed: Millis, window: Millis) -> u32 {
    let linear = (u128::from(elapsed) * u128::from(FULL_SHARE) / u128::from(window.max(1))) as u32;
    linear.clamp(MIN_SHARE, FULL_SHARE)
}

/// Whether the request numbered `sequence` is offered to a backend warming at `share`
/// (thousandths); `salt` tells backends apart, so two warming backends are offered different
/// requests. Over many requests, `share` thousandths of them are.
pub fn offered(sequence: u64, salt: u64, share: u32) -> bool {
    vane_plugin_kit::mix64(sequence ^ salt) % u64::from(FULL_SHARE) < u64::from(share)
}

/// Whether a warming backend holding `in_flight` requests, of `weight`, may take one more at
/// `share` (thousandths): it may hold `share` of what a warm backend of its weight holds on
/// average (`warm_in_flight` over `warm_weight`), rounded up, and always one.
pub fn has_room(
    in_flight: u64,
    weight: u64,
    share: u32,
    warm_in_flight: u64,
    warm_weight: u64,
) -> bool {
    let cap = (u128::from(share) * u128::from(warm_in_flight) * u128::from(weight.max(1)))
        .div_ceil(u128::from(FULL_SHARE) * u128::from(warm_weight.max(1)))
        .max(1);
    u128::from(in_flight) < cap
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_share_ramps_up_over_the_window_then_warming_ends() {
        let warm = WarmUp::default();
        assert_eq!(warm.share(30_000, None, || 5), None, "never started");
        warm.start(1_000);
        assert_eq!(warm.share(0, None, || 1_000), None, "slow start is off");
        assert_eq!(warm.share(30_000, None, || 1_000), Some(MIN_SHARE));
        assert_eq!(warm.share(30_000, None, || 16_000), Some(500));
        assert_eq!(warm.share(30_000, None, || 30_999), Some(999));
        assert_eq!(warm.share(30_000, None, || 31_000), None);
        assert_eq!(
            warm.share(30_000, None, || 1_000),
            None,
            "warming ended for good"
        );
        // A return not yet recorded (an ejection over at 40 s) starts one.
        assert_eq!(warm.share(30_000, Some(40_000), || 55_000), Some(500));
    }

    #[test]
    fn a_warming_backend_holds_its_share_of_a_warm_ones_load() {
        // Warm backends hold 10 each (30 over weight 3): at a tenth, room for 1; at half, 5.
        assert!(has_room(0, 1, 100, 30, 3));
        assert!(!has_room(1, 1, 100, 30, 3));
        assert!(has_room(4, 1, 500, 30, 3));
        assert!(!has_room(5, 1, 500, 30, 3));
        // Twice the weight, twice the room; an idle set leaves room for one.
        assert!(has_room(9, 2, 500, 30, 3) && !has_room(10, 2, 500, 30, 3));
        assert!(has_room(0, 1, 100, 0, 3) && !has_room(1, 1, 100, 0, 3));
    }

    #[test]
    fn a_share_offers_that_many_requests_and_backends_apart() {
        let offered_of =
            |salt: u64, share: u32| (0..100_000u64).filter(|&s| offered(s, salt, share)).count();
        for share in [MIN_SHARE, 500, 900] {
            let got = offered_of(7, share) as f64 / 100_000.0;
            let want = f64::from(share) / 1000.0;
            assert!((got - want).abs() < 0.01, "{got} for {want}");
        }
        assert_eq!(offered_of(7, FULL_SHARE), 100_000);
        let both = (0..100_000u64)
            .filter(|&s| offered(s, 1, 500) && offered(s, 2, 500))
            .count();
        assert!((20_000..30_000).contains(&both), "{both} offered to both");
    }
}
