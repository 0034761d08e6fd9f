//! One backend's health: the active checks' verdict with its streaks, and the passive ejection
//! state. Only atomics: read on every pick, written by the probe loop and by the proxy. An
//! ejection ends by itself when its cool-down has passed on the [`Clock`]: no timer runs for it.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use super::slow_start::WarmUp;
use crate::clock::{Clock, Millis};
use crate::config::{EjectionConfig, HealthConfig};

/// A backend's health. It starts healthy and not ejected, so traffic flows at once.
#[derive(Debug)]
pub struct BackendHealth {
    clock: Clock,
    healthy: AtomicBool,
    probe_successes: AtomicU32,
    probe_failures: AtomicU32,
    /// When the current ejection ends, on `clock`; 0 when none has started since the last one
    /// ended.
    ejected_until: AtomicU64,
    consecutive_failures: AtomicU32,
    ejections: AtomicU64,
    /// How many base cool-downs the next ejection lasts, less what good behaviour paid back.
    ejection_level: AtomicU32,
    /// When the last ejection ended, on `clock`.
    restored_at: AtomicU64,
    /// Whether an operator is draining it: no new requests, those in flight finish.
    draining: AtomicBool,
    /// When the backend last joined or returned to rotation, for slow start.
    warm_up: WarmUp,
}

/// A change of a backend's health verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// It reached the healthy threshold and is back.
    BecameHealthy,
    /// It reached the unhealthy threshold and is out.
    BecameUnhealthy,
}

/// What one attempt did to a backend's ejection; both can happen at once (the first attempt
/// after an ejection fails and, with a streak of one, ejects it again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptVerdict {
    /// The attempt is the first since an ejection ended: the backend is back in rotation.
    pub restored: bool,
    /// The attempt completed a streak of failures: the backend is out for this cool-down.
    pub ejected: Option<Duration>,
}

impl BackendHealth {
    /// A healthy, not ejected backend's health, timed by `clock`.
    pub fn new(clock: Clock) -> Self {
        BackendHealth {
            clock,
            healthy: AtomicBool::new(true),
            probe_successes: AtomicU32::new(0),
            probe_failures: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
            consecutive_failures: AtomicU32::new(0),
            ejections: AtomicU64::new(0),
            ejection_level: AtomicU32::new(0),
            restored_at: AtomicU64::new(0),
            draining: AtomicBool::new(false),
            warm_up: WarmUp::default(),
        }
    }

    /// Whether the backend is being drained: it takes no new request, even when no other
    /// backend is in rotation, and those in flight finish.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Starts draining the backend, or ends it; a backend put back warms up (slow start).
    /// Answers whether this changed anything.
    pub fn set_draining(&self, draining: bool) -> bool {
        let was = self.draining.swap(draining, Ordering::Relaxed);
        if was && !draining {
            self.warm_up.start(self.clock.now());
        }
        was != draining
    }

    /// Whether the active checks consider the backend healthy (always, without `[health]`).
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Sets the active checks' verdict directly, without thresholds. A backend that becomes
    /// healthy starts warming up (slow start).
    pub fn set_healthy(&self, healthy: bool) {
        let was = self.healthy.swap(healthy, Ordering::Relaxed);
        if healthy && !was {
            self.warm_up.start(self.clock.now());
        }
    }

    /// Starts warming up now, as a backend that joins the set does (slow start).
    pub fn start_warming(&self) {
        self.warm_up.start(self.clock.now());
    }

    /// The share of requests offered to the backend while it warms up after joining or
    /// returning to rotation, over a slow start of `window`, in thousandths; `None` once warm
    /// (or with slow start off). Reads the clock only while warming or ejected.
    pub fn warm_share(&self, window: Millis) -> Option<u32> {
        if window == 0 {
            return None;
        }
        // An ejection whose cool-down is over ends by itself: the backend returned at its end.
        let until = self.ejected_until.load(Ordering::Relaxed);
        let returned = (until != 0).then_some(until);
        self.warm_up.share(window, returned, || self.clock.now())
    }

    /// Whether passive detection has taken the backend out and its cool-down is not over. Reads
    /// the clock only while an ejection is recorded.
    pub fn ejected(&self) -> bool {
        self.ejection_end().is_some()
    }

    /// When the current ejection ends; `None` when not ejected.
    pub fn ejected_until(&self) -> Option<SystemTime> {
        self.ejection_end().map(|until| self.clock.wall_time(until))
    }

    /// When the current ejection ends on the clock, if one is recorded and not over.
    fn ejection_end(&self) -> Option<Millis> {
        let until = self.ejected_until.load(Ordering::Relaxed);
        (until != 0 && self.clock.now() < until).then_some(until)
    }

    /// How many times passive detection has ejected the backend.
    pub fn ejections(&self) -> u64 {
        self.ejections.load(Ordering::Relaxed)
    }

    /// Ends the current ejection now, as a passing health check does (Envoy's
    /// `successful_active_health_check_uneject_host`, on by default): a backend that answers
    /// its checks again need not sit out its whole cool-down, and its place under `max_percent`
    /// is free for the next one. Answers whether there was an ejection to end.
    pub fn end_ejection_early(&self) -> bool {
        self.ejection_end()
            .is_some_and(|until| self.end_ejection(until, self.clock.now()))
    }

    /// Ends the ejection recorded to last until `until`, unless another call ended it first,
    /// with a clean failure streak and `restored` as the moment it returned.
    fn end_ejection(&self, until: Millis, restored: Millis) -> bool {
        let ended = self
            .ejected_until
            .compare_exchange(until, 0, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok();
        if ended {
            self.consecutive_failures.store(0, Ordering::Relaxed);
            self.restored_at.store(restored, Ordering::Relaxed);
            self.warm_up.start(restored);
        }
        ended
    }

    /// Folds one probe result in; answers the transition if a threshold was just reached.
    pub fn record_probe(&self, ok: bool, config: &HealthConfig) -> Option<Transition> {
        // One probe loop owns these streaks, so plain loads and stores suffice.
        let (streak, other) = if ok {
            (&self.probe_successes, &self.probe_failures)
        } else {
            (&self.probe_failures, &self.probe_successes)
        };
        other.store(0, Ordering::Relaxed);
        let count = streak.load(Ordering::Relaxed).saturating_add(1);
        streak.store(count, Ordering::Relaxed);
        let healthy = self.healthy();
        if ok && !healthy && count >= config.healthy_threshold {
            self.set_healthy(true);
            Some(Transition::BecameHealthy)
        } else if !ok && healthy && count >= config.unhealthy_threshold {
            self.set_healthy(false);
            Some(Transition::BecameUnhealthy)
        } else {
            None
        }
    }

    /// Folds one request attempt in: ends an ejection whose cool-down is over, and ejects the
    /// backend if this failure completes a streak and `may_eject` agrees (asked only then).
    pub fn record_attempt(
        &self,
        ok: bool,
        config: &EjectionConfig,
        may_eject: impl FnOnce() -> bool,
    ) -> AttemptVerdict {
        let restored = self.end_ejection_if_over();
        let ejected = if ok {
            // Most attempts succeed: write only when there is a streak to end.
            if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
                self.consecutive_failures.store(0, Ordering::Relaxed);
            }
            None
        } else {
            self.count_failure(config, may_eject)
        };
        AttemptVerdict { restored, ejected }
    }

    /// Ends the recorded ejection if its cool-down is over, with a clean failure streak; answers
    /// whether this call ended it. Costs one atomic load while no ejection is recorded.
    fn end_ejection_if_over(&self) -> bool {
        let until = self.ejected_until.load(Ordering::Relaxed);
        if until == 0 || self.clock.now() < until {
            return false;
        }
        self.end_ejection(until, until)
    }

    /// Counts one failed attempt; answers the cool-down if it ejects the backend.
    fn count_failure(
        &self,
        config: &EjectionConfig,
        may_eject: impl FnOnce() -> bool,
    ) -> Option<Duration> {
        let failures = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if config.consecutive_failures == 0 || failures < config.consecutive_failures {
            return None;
        }
        if !may_eject() {
            return None;
        }
        // Envoy's outlier detection: the cool-down is the base time times the ejection level,
        // capped; the level grows by one per ejection and shrinks by one per base time spent
        // in rotation since the last one.
        let now = self.clock.now();
        let base_ms = config.base_time.as_millis().max(1) as Millis;
        let paid_back = now.saturating_sub(self.restored_at.load(Ordering::Relaxed)) / base_ms;
        let previous = u64::from(self.ejection_level.load(Ordering::Relaxed));
        let level = previous.saturating_sub(paid_back) + 1;
        let cool_down = config
            .base_time
            .saturating_mul(u32::try_from(level).unwrap_or(u32::MAX))
            .min(config.max_time);
        // Only one of the attempts failing at once ejects; the others find it ejected.
        let until = now + (cool_down.as_millis() as Millis).max(1);
        if self
            .ejected_until
            .compare_exchange(0, until, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return None;
        }
        self.ejection_level
            .store(u32::try_from(level).unwrap_or(u32::MAX), Ordering::Relaxed);
        self.ejections.fetch_add(1, Ordering::Relaxed);
        Some(cool_down)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn health_config() -> HealthConfig {
        HealthConfig {
            unhealthy_threshold: 3,
            healthy_threshold: 2,
            ..HealthConfig::default()
        }
    }

    fn ejection(failures: u32, base_s: u64, max_s: u64) -> EjectionConfig {
        EjectionConfig {
            consecutive_failures: failures,
            base_time: Duration::from_secs(base_s),
            max_time: Duration::from_secs(max_s),
            max_percent: 100,
        }
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    const UNCHANGED: AttemptVerdict = AttemptVerdict {
        restored: false,
        ejected: None,
    };
    const RESTORED: AttemptVerdict = AttemptVerdict {
        restored: true,
        ejected: None,
    };

    fn ejected(cool_down: Duration) -> AttemptVerdict {
        AttemptVerdict {
            restored: false,
            ejected: Some(cool_down),
        }
    }

    #[test]
    fn health_flips_only_after_consecutive_results() {
        let health = BackendHealth::new(Clock::new());
        let config = health_config();
        assert_eq!(health.record_probe(false, &config), None);
        assert_eq!(health.record_probe(false, &config), None);
        assert_eq!(
            health.record_probe(true, &config),
            None,
            "a success ends the streak"
        );
        assert_eq!(health.record_probe(false, &config), None);
        assert_eq!(health.record_probe(false, &config), None);
        assert_eq!(
            health.record_probe(false, &config),
            Some(Transition::BecameUnhealthy)
        );
        assert!(!health.healthy());
        assert_eq!(health.record_probe(true, &config), None);
        assert_eq!(
            health.record_probe(true, &config),
            Some(Transition::BecameHealthy)
        );
        assert_eq!(health.record_probe(true, &config), None);
    }

    #[test]
    fn an_ejection_ends_by_itself_when_its_cool_down_is_over() {
        let hand = ManualClock::new();
        let health = BackendHealth::new(hand.clock());
        let config = ejection(2, 30, 300);
        assert_eq!(health.record_attempt(false, &config, || true), UNCHANGED);
        assert_eq!(health.record_attempt(true, &config, || true), UNCHANGED);
        assert_eq!(health.record_attempt(false, &config, || true), UNCHANGED);
        assert_eq!(
            health.record_attempt(false, &config, || true),
            ejected(secs(30))
        );
        assert!(health.ejected() && health.ejected_until().is_some());
        assert_eq!(
            health.record_attempt(false, &config, || true),
            UNCHANGED,
            "already ejected"
        );

        hand.advance(Duration::from_millis(29_999));
        assert!(health.ejected(), "1 ms of the cool-down is left");
        hand.advance(Duration::from_millis(1));
        assert!(!health.ejected() && health.ejected_until().is_none());
        assert_eq!(
            health.record_attempt(true, &config, || true),
            RESTORED,
            "the first attempt after the cool-down"
        );
        assert_eq!(health.record_attempt(true, &config, || true), UNCHANGED);
        assert_eq!(health.ejections(), 1);
    }

    #[test]
    fn a_repeated_ejection_lasts_longer_up_to_the_cap_and_good_behaviour_pays_it_back() {
        let hand = ManualClock::new();
        let health = BackendHealth::new(hand.clock());
        let config = ejection(2, 30, 75);
        let eject = || {
            health.record_attempt(false, &config, || true);
            health.record_attempt(false, &config, || true)
        };
        assert_eq!(eject(), ejected(secs(30)));
        hand.advance(secs(30));
        assert_eq!(eject(), ejected(secs(60)), "at once again: twice as long");
        hand.advance(secs(60));
        assert_eq!(eject(), ejected(secs(75)), "capped at max_time");
        assert_eq!(health.ejections(), 3);

        // Level 3 now; each base time in rotation pays one back. 59 s pays back one.
        hand.advance(secs(75));
        assert_eq!(health.record_attempt(true, &config, || true), RESTORED);
        hand.advance(secs(59));
        assert_eq!(eject(), ejected(secs(75)), "level 3: 90 s, capped");
        hand.advance(secs(75));
        health.record_attempt(true, &config, || true);
        hand.advance(secs(90));
        assert_eq!(eject(), ejected(secs(30)), "level 3, three paid back");
    }

    #[test]
    fn with_a_streak_of_one_the_first_attempt_after_an_ejection_can_end_it_and_start_another() {
        let hand = ManualClock::new();
        let health = BackendHealth::new(hand.clock());
        let config = ejection(1, 1, 10);
        assert_eq!(
            health.record_attempt(false, &config, || true),
            ejected(secs(1))
        );
        hand.advance(secs(1));
        assert_eq!(
            health.record_attempt(false, &config, || true),
            AttemptVerdict {
                restored: true,
                ejected: Some(secs(2))
            }
        );
    }

    #[test]
    fn a_backend_warms_up_from_the_end_of_its_ejection_or_its_return_to_health() {
        let hand = ManualClock::new();
        let health = BackendHealth::new(hand.clock());
        let window = 10_000;
        assert_eq!(health.warm_share(window), None, "warm from the start");
        let config = ejection(1, 4, 10);
        health.record_attempt(false, &config, || true);
        hand.advance(secs(9));
        // The ejection ended at 4 s by itself; 5 s later it is halfway.
        assert_eq!(health.warm_share(window), Some(500));
        health.record_attempt(true, &config, || true);
        assert_eq!(health.warm_share(window), Some(500), "recorded: the same");
        hand.advance(secs(5));
        assert_eq!(health.warm_share(window), None);

        health.set_healthy(false);
        hand.advance(secs(1));
        health.set_healthy(true);
        assert_eq!(health.warm_share(window), Some(100));
        assert_eq!(health.warm_share(0), None, "no slow start");
    }

    #[test]
    fn zero_consecutive_failures_turns_ejection_off() {
        let health = BackendHealth::new(Clock::new());
        let config = ejection(0, 30, 300);
        for _ in 0..100 {
            assert_eq!(health.record_attempt(false, &config, || true), UNCHANGED);
        }
        assert!(!health.ejected());
    }

    #[test]
    fn a_passing_health_check_ends_an_ejection_early() {
        let hand = ManualClock::new();
        let health = BackendHealth::new(hand.clock());
        let config = ejection(2, 30, 300);
        assert!(!health.end_ejection_early(), "nothing to end");
        health.record_attempt(false, &config, || true);
        assert_eq!(
            health.record_attempt(false, &config, || true),
            ejected(secs(30))
        );
        hand.advance(secs(1));
        assert!(health.end_ejection_early());
        assert!(!health.ejected());
        assert_eq!(
            health.record_attempt(false, &config, || true),
            UNCHANGED,
            "a fresh streak starts"
        );
        assert_eq!(
            health.record_attempt(false, &config, || false),
            UNCHANGED,
            "no room to eject it"
        );
        assert!(!health.ejected());
    }
}
