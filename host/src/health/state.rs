//! One backend's health: the active checks' verdict with its streaks, and the passive ejection
//! state. Only atomics: read on every pick, written by the probe loop and by the proxy.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::config::{EjectionConfig, HealthConfig};

/// A backend's health. It starts healthy and not ejected, so traffic flows at once.
#[derive(Debug)]
pub struct BackendHealth {
    healthy: AtomicBool,
    probe_successes: AtomicU32,
    probe_failures: AtomicU32,
    ejected: AtomicBool,
    /// When the current ejection ends, in milliseconds since the Unix epoch (for display).
    ejected_until_ms: AtomicU64,
    consecutive_failures: AtomicU32,
    ejections: AtomicU64,
    /// How many base cool-downs the next ejection lasts, less what good behaviour paid back.
    ejection_level: AtomicU32,
    /// When the last ejection ended, in milliseconds of [`monotonic_ms`].
    restored_at_ms: AtomicU64,
}

impl Default for BackendHealth {
    fn default() -> Self {
        BackendHealth {
            healthy: AtomicBool::new(true),
            probe_successes: AtomicU32::new(0),
            probe_failures: AtomicU32::new(0),
            ejected: AtomicBool::new(false),
            ejected_until_ms: AtomicU64::new(0),
            consecutive_failures: AtomicU32::new(0),
            ejections: AtomicU64::new(0),
            ejection_level: AtomicU32::new(0),
            restored_at_ms: AtomicU64::new(0),
        }
    }
}

/// A change of a backend's health verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    /// It reached the healthy threshold and is back.
    BecameHealthy,
    /// It reached the unhealthy threshold and is out.
    BecameUnhealthy,
}

impl BackendHealth {
    /// Whether the active checks consider the backend healthy (always, without `[health]`).
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Sets the active checks' verdict directly, without thresholds.
    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Relaxed);
    }

    /// Whether passive detection has taken the backend out for a cool-down.
    pub fn ejected(&self) -> bool {
        self.ejected.load(Ordering::Relaxed)
    }

    /// When the current ejection ends; `None` when not ejected.
    pub fn ejected_until(&self) -> Option<SystemTime> {
        if !self.ejected() {
            return None;
        }
        let ms = self.ejected_until_ms.load(Ordering::Relaxed);
        Some(UNIX_EPOCH + Duration::from_millis(ms))
    }

    /// How many times passive detection has ejected the backend.
    pub fn ejections(&self) -> u64 {
        self.ejections.load(Ordering::Relaxed)
    }

    /// Folds one probe result in; answers the transition if a threshold was just reached.
    pub(crate) fn record_probe(&self, ok: bool, config: &HealthConfig) -> Option<Transition> {
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

    /// Folds one request attempt in; answers the cool-down if this failure ejects the backend.
    pub(crate) fn record_attempt(&self, ok: bool, config: &EjectionConfig) -> Option<Duration> {
        if ok {
            // Most attempts succeed: write only when there is a streak to end.
            if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
                self.consecutive_failures.store(0, Ordering::Relaxed);
            }
            return None;
        }
        let failures = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if config.consecutive_failures == 0
            || failures < config.consecutive_failures
            || self.ejected.swap(true, Ordering::Relaxed)
        {
            return None;
        }
        // Envoy's outlier detection: the cool-down is the base time times the ejection level,
        // capped; the level grows by one per ejection and shrinks by one per base time spent
        // in rotation since the last one.
        let base_ms = config.base_time.as_millis().max(1) as u64;
        let restored = self.restored_at_ms.load(Ordering::Relaxed);
        let paid_back = monotonic_ms().saturating_sub(restored) / base_ms;
        let previous = u64::from(self.ejection_level.load(Ordering::Relaxed));
        let level = previous.saturating_sub(paid_back) + 1;
        self.ejection_level
            .store(u32::try_from(level).unwrap_or(u32::MAX), Ordering::Relaxed);
        let cool_down = config
            .base_time
            .saturating_mul(u32::try_from(level).unwrap_or(u32::MAX))
            .min(config.max_time);
        let until = SystemTime::now() + cool_down;
        let until_ms = until
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.ejected_until_ms.store(until_ms, Ordering::Relaxed);
        self.ejections.fetch_add(1, Ordering::Relaxed);
        Some(cool_down)
    }

    /// Ends an ejection: the backend is tried again with a clean failure streak.
    pub(crate) fn restore(&self) {
        self.consecutive_failures.store(0, Ordering::Relaxed);
        self.restored_at_ms.store(monotonic_ms(), Ordering::Relaxed);
        self.ejected.store(false, Ordering::Relaxed);
    }
}

/// Milliseconds since the first call, from the monotonic clock.
fn monotonic_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health_config() -> HealthConfig {
        HealthConfig {
            unhealthy_threshold: 3,
            healthy_threshold: 2,
            ..HealthConfig::default()
        }
    }

    #[test]
    fn health_flips_only_after_consecutive_results() {
        let health = BackendHealth::default();
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
    fn ejection_after_consecutive_failures_grows_on_repeat_and_is_capped() {
        let health = BackendHealth::default();
        let config = EjectionConfig {
            consecutive_failures: 2,
            base_time: Duration::from_secs(30),
            max_time: Duration::from_secs(75),
        };
        assert_eq!(health.record_attempt(false, &config), None);
        assert_eq!(health.record_attempt(true, &config), None);
        assert_eq!(health.record_attempt(false, &config), None);
        let first = health.record_attempt(false, &config);
        assert_eq!(first, Some(Duration::from_secs(30)));
        assert!(health.ejected() && health.ejected_until().is_some());
        assert_eq!(
            health.record_attempt(false, &config),
            None,
            "already ejected"
        );

        health.restore();
        assert!(!health.ejected() && health.ejected_until().is_none());
        assert_eq!(health.record_attempt(false, &config), None);
        let second = health.record_attempt(false, &config);
        assert_eq!(second, Some(Duration::from_secs(60)));
        health.restore();
        health.record_attempt(false, &config);
        let third = health.record_attempt(false, &config);
        assert_eq!(third, Some(Duration::from_secs(75)), "capped at max_time");
        assert_eq!(health.ejections(), 3);
    }

    #[test]
    fn zero_consecutive_failures_turns_ejection_off() {
        let health = BackendHealth::default();
        let config = EjectionConfig {
            consecutive_failures: 0,
            ..EjectionConfig::default()
        };
        for _ in 0..100 {
            assert_eq!(health.record_attempt(false, &config), None);
        }
        assert!(!health.ejected());
    }
}
