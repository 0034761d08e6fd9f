//! vane's one clock, made by the app and handed to everything that keeps time in atomics:
//! ejection cool-downs, the plugin's circuit breaker, log budgets and the idle upstream pool.
//! A moment is a count of milliseconds since the clock was made, so it fits in an `AtomicU64`;
//! code that keeps instants anyway (the idle pool) reads [`Clock::instant`].
//!
//! It reads tokio's clock, so a test that pauses tokio's time (`start_paused`,
//! `tokio::time::advance`) controls every one of them; a [`ManualClock`] moves only when told,
//! for tests that run real sockets and still want to step vane's logic through time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// A moment on a [`Clock`]: milliseconds since the clock was made.
pub type Millis = u64;

/// The clock vane's logic keeps time by; cheap to clone, every clone reads the same time.
#[derive(Debug, Clone)]
pub struct Clock {
    source: Source,
}

#[derive(Debug, Clone)]
enum Source {
    /// tokio's clock, counted from this instant.
    Tokio(tokio::time::Instant),
    /// A count of milliseconds moved only by [`ManualClock::advance`], from this instant.
    Manual(tokio::time::Instant, Arc<AtomicU64>),
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

impl Clock {
    /// A clock that follows tokio's time, starting at 0 now.
    pub fn new() -> Self {
        Clock {
            source: Source::Tokio(tokio::time::Instant::now()),
        }
    }

    /// The time now.
    pub fn now(&self) -> Millis {
        match &self.source {
            Source::Tokio(epoch) => epoch.elapsed().as_millis() as Millis,
            Source::Manual(_, now) => now.load(Ordering::Relaxed),
        }
    }

    /// The time now as an instant: tokio's, or the manual clock's start moved by its count.
    /// Cheaper than [`Clock::now`] where an instant is all that is needed.
    pub fn instant(&self) -> tokio::time::Instant {
        match &self.source {
            Source::Tokio(_) => tokio::time::Instant::now(),
            Source::Manual(epoch, now) => {
                *epoch + Duration::from_millis(now.load(Ordering::Relaxed))
            }
        }
    }

    /// The wall-clock time of the moment `at`, for people to read (admin API, logs).
    pub fn wall_time(&self, at: Millis) -> SystemTime {
        let now = self.now();
        let wall = SystemTime::now();
        if at >= now {
            wall + Duration::from_millis(at - now)
        } else {
            wall - Duration::from_millis(now - at)
        }
    }
}

/// A clock that stands still until a test moves it.
#[derive(Debug, Clone)]
pub struct ManualClock {
    epoch: tokio::time::Instant,
    now: Arc<AtomicU64>,
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

impl ManualClock {
    /// A clock standing at 0.
    pub fn new() -> Self {
        ManualClock {
            epoch: tokio::time::Instant::now(),
            now: Arc::default(),
        }
    }

    /// A [`Clock`] that reads this one.
    pub fn clock(&self) -> Clock {
        Clock {
            source: Source::Manual(self.epoch, self.now.clone()),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.now
            .fetch_add(by.as_millis() as Millis, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn follows_tokio_time() {
        let clock = Clock::new();
        assert_eq!(clock.now(), 0);
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert_eq!(clock.now(), 1500);
        assert_eq!(clock.clone().now(), 1500, "clones read the same time");
    }

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let hand = ManualClock::new();
        let clock = hand.clock();
        assert_eq!(clock.now(), 0);
        let start = clock.instant();
        hand.advance(Duration::from_secs(2));
        assert_eq!(clock.now(), 2000);
        assert_eq!(clock.instant() - start, Duration::from_secs(2));
        let later = clock.wall_time(3000);
        let now = SystemTime::now();
        assert!(later > now && later <= now + Duration::from_secs(1));
    }
}
