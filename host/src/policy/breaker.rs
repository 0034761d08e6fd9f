//! The plugin's circuit breaker: after a run of consecutive failures vane stops calling the
//! plugin for a cool-down, serving from the built-in round-robin, then lets one request try it
//! again (half-open). A plugin that loops therefore costs a handful of requests their deadline,
//! not every request.

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

use crate::clock::{Clock, Millis};
use crate::config::BreakerConfig;

/// The most a cool-down grows over `cool_down` after failed trials in a row.
const MAX_COOL_DOWN_FACTOR: u32 = 32;

/// The breaker's state, as `/policy` and `/metrics` show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// The plugin is called for every request.
    Closed = 0,
    /// The plugin is not called until the cool-down ends.
    Open = 1,
    /// One request is trying the plugin; the others use the built-in round-robin.
    HalfOpen = 2,
}

impl BreakerState {
    /// The state's name in `/policy`, logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    /// Every state, in the order of [`Breaker::transitions`].
    pub const ALL: [BreakerState; 3] = [
        BreakerState::Closed,
        BreakerState::Open,
        BreakerState::HalfOpen,
    ];

    fn from_u8(value: u8) -> Self {
        match value {
            1 => BreakerState::Open,
            2 => BreakerState::HalfOpen,
            _ => BreakerState::Closed,
        }
    }
}

/// Whether a request may call the plugin, and in what role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Call it: the breaker is closed.
    Call,
    /// Call it as the half-open trial; its outcome closes or reopens the breaker.
    Trial,
    /// Do not call it: the breaker is open, or another request is the trial.
    Skip,
}

/// Which of the plugin's calls a breaker guards; each has its own words in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Guarded {
    /// `pick`, on every request.
    Pick,
    /// `observe`, with batches of outcomes.
    Observe,
    /// A shadow policy's `pick`, off the request path.
    Shadow,
}

/// A lock-free circuit breaker shared by every request of one policy.
#[derive(Debug)]
pub struct Breaker {
    guarded: Guarded,
    config: BreakerConfig,
    clock: Clock,
    state: AtomicU8,
    consecutive_failures: AtomicU32,
    /// Openings in a row without a successful trial between them: the cool-down's multiplier.
    openings_in_a_row: AtomicU32,
    /// While open: when the trial may start on `clock`; `u64::MAX` while the opening call has
    /// not yet set it.
    open_until_ms: AtomicU64,
    /// Transitions into each state, in the order of [`BreakerState::ALL`].
    transitions: [AtomicU64; 3],
}

impl Breaker {
    /// A closed breaker, timing its cool-downs by `clock`.
    pub fn new(config: BreakerConfig, clock: Clock) -> Self {
        Breaker {
            guarded: Guarded::Pick,
            config,
            clock,
            state: AtomicU8::new(BreakerState::Closed as u8),
            consecutive_failures: AtomicU32::new(0),
            openings_in_a_row: AtomicU32::new(0),
            open_until_ms: AtomicU64::new(u64::MAX),
            transitions: Default::default(),
        }
    }

    /// The same breaker guarding the plugin's `observe` calls instead of its picks: only
    /// what it logs differs.
    pub fn for_observe(mut self) -> Self {
        self.guarded = Guarded::Observe;
        self
    }

    /// The same breaker guarding a shadow policy's picks: only what it logs differs.
    pub fn for_shadow(mut self) -> Self {
        self.guarded = Guarded::Shadow;
        self
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        BreakerState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Whether the breaker is open and its cool-down has not ended: no call is to be made, and
    /// none is on trial.
    pub fn cooling_down(&self) -> bool {
        self.state() == BreakerState::Open
            && self.clock.now() < self.open_until_ms.load(Ordering::Acquire)
    }

    /// Gives back a trial that could not judge the plugin (nothing called it): the breaker is
    /// open again with its cool-down over, so that the next call is the trial, and nothing else
    /// changes (no transition is counted, the cool-down keeps its length).
    pub fn abandon_trial(&self, admission: Admission) {
        if admission == Admission::Trial {
            self.open_until_ms
                .store(self.clock.now(), Ordering::Release);
            let _ = self.state.compare_exchange(
                BreakerState::HalfOpen as u8,
                BreakerState::Open as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
    }

    /// How often the breaker entered each state, in the order of [`BreakerState::ALL`].
    pub fn transitions(&self) -> [(BreakerState, u64); 3] {
        BreakerState::ALL.map(|state| {
            (
                state,
                self.transitions[state as usize].load(Ordering::Relaxed),
            )
        })
    }

    /// Whether this request may call `plugin`. Closed costs one atomic load.
    pub fn admit(&self, plugin: &str) -> Admission {
        match self.state() {
            BreakerState::Closed => Admission::Call,
            BreakerState::HalfOpen => Admission::Skip,
            BreakerState::Open => {
                if self.clock.now() >= self.open_until_ms.load(Ordering::Acquire)
                    && self.enter(BreakerState::Open, BreakerState::HalfOpen)
                {
                    // Until the next opening sets its own end, an open state means "wait".
                    self.open_until_ms.store(u64::MAX, Ordering::Release);
                    match self.guarded {
                        Guarded::Pick => tracing::info!(
                            plugin,
                            "the cool-down is over; one request tries the plugin"
                        ),
                        Guarded::Observe => tracing::info!(
                            plugin,
                            "the cool-down is over; the next outcomes go to the plugin's observe"
                        ),
                        Guarded::Shadow => tracing::info!(
                            plugin,
                            "the cool-down is over; the shadow is asked about one request"
                        ),
                    }
                    Admission::Trial
                } else {
                    Admission::Skip
                }
            }
        }
    }

    /// Records a call that answered usably.
    pub fn succeeded(&self, admission: Admission, plugin: &str) {
        if admission == Admission::Trial {
            self.consecutive_failures.store(0, Ordering::Relaxed);
            self.openings_in_a_row.store(0, Ordering::Relaxed);
            if self.enter(BreakerState::HalfOpen, BreakerState::Closed) {
                match self.guarded {
                    Guarded::Pick => {
                        tracing::info!(plugin, "the plugin answered its trial; calling it again")
                    }
                    Guarded::Observe => tracing::info!(
                        plugin,
                        "the plugin's observe succeeded its trial; outcomes reach it again"
                    ),
                    Guarded::Shadow => {
                        tracing::info!(plugin, "the shadow answered its trial; asking it again")
                    }
                }
            }
        } else if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
            // Only written when there was a failure, so a healthy plugin's calls share no
            // written cache line.
            self.consecutive_failures.store(0, Ordering::Relaxed);
        }
    }

    /// Records a call that failed; may open the breaker.
    pub fn failed(&self, admission: Admission, plugin: &str) {
        if self.config.failures == 0 {
            return;
        }
        let from = match admission {
            Admission::Trial => BreakerState::HalfOpen,
            Admission::Call => {
                let failures = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
                if failures < self.config.failures {
                    return;
                }
                BreakerState::Closed
            }
            Admission::Skip => return,
        };
        // Calls already under way when the breaker opened fail late; only the call that moves
        // the state sets the cool-down.
        if !self.enter(from, BreakerState::Open) {
            return;
        }
        let openings = self.openings_in_a_row.fetch_add(1, Ordering::Relaxed);
        let factor = 1u32
            .checked_shl(openings)
            .unwrap_or(u32::MAX)
            .min(MAX_COOL_DOWN_FACTOR);
        let cool_down = self.config.cool_down * factor;
        let until = self.clock.now() + cool_down.as_millis() as Millis;
        self.open_until_ms.store(until, Ordering::Release);
        self.consecutive_failures.store(0, Ordering::Relaxed);
        let cool_down = humantime::format_duration(cool_down);
        match self.guarded {
            Guarded::Pick => tracing::warn!(
                plugin,
                %cool_down,
                "the plugin keeps failing; the built-in round-robin serves until a trial succeeds"
            ),
            Guarded::Observe => tracing::warn!(
                plugin,
                %cool_down,
                "the plugin's observe keeps failing; outcomes are dropped until a trial succeeds"
            ),
            Guarded::Shadow => tracing::warn!(
                plugin,
                %cool_down,
                "the shadow keeps failing; it is not asked until a trial succeeds"
            ),
        }
    }

    /// Moves from `from` to `to` if the state is still `from`; counts the transition.
    fn enter(&self, from: BreakerState, to: BreakerState) -> bool {
        let moved = self
            .state
            .compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if moved {
            self.transitions[to as usize].fetch_add(1, Ordering::Relaxed);
        }
        moved
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::clock::ManualClock;

    fn breaker(failures: u32, cool_down_ms: u64) -> (Breaker, ManualClock) {
        let hand = ManualClock::new();
        let config = BreakerConfig {
            failures,
            cool_down: Duration::from_millis(cool_down_ms),
        };
        (Breaker::new(config, hand.clock()), hand)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn opens_after_the_threshold_of_consecutive_failures_only() {
        let (breaker, _) = breaker(3, 60_000);
        for _ in 0..2 {
            breaker.failed(breaker.admit("p"), "p");
        }
        breaker.succeeded(breaker.admit("p"), "p");
        for _ in 0..2 {
            breaker.failed(breaker.admit("p"), "p");
        }
        assert_eq!(breaker.state(), BreakerState::Closed, "the run was broken");
        breaker.failed(breaker.admit("p"), "p");
        assert_eq!(breaker.state(), BreakerState::Open);
        assert_eq!(breaker.admit("p"), Admission::Skip);
    }

    #[test]
    fn one_trial_after_the_cool_down_closes_or_reopens_it() {
        let (breaker, clock) = breaker(1, 20);
        breaker.failed(breaker.admit("p"), "p");
        clock.advance(ms(19));
        assert_eq!(breaker.admit("p"), Admission::Skip);
        clock.advance(ms(1));
        let trial = breaker.admit("p");
        assert_eq!(trial, Admission::Trial);
        clock.advance(ms(1));
        assert_eq!(breaker.admit("p"), Admission::Skip, "one trial at a time");
        clock.advance(ms(4));
        breaker.failed(trial, "p");
        assert_eq!(breaker.state(), BreakerState::Open);

        // The second opening lasts twice as long: from 25 ms to 65 ms.
        clock.advance(ms(39));
        assert_eq!(breaker.admit("p"), Admission::Skip);
        clock.advance(ms(1));
        let trial = breaker.admit("p");
        assert_eq!(trial, Admission::Trial);
        breaker.succeeded(trial, "p");
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(breaker.admit("p"), Admission::Call);
        let entered: Vec<u64> = breaker.transitions().iter().map(|(_, n)| *n).collect();
        assert_eq!(entered, [1, 2, 2], "closed, open, half-open");

        // After a success the cool-down is back to its first length.
        breaker.failed(breaker.admit("p"), "p");
        clock.advance(ms(20));
        assert_eq!(breaker.admit("p"), Admission::Trial);
    }

    #[test]
    fn failures_of_calls_under_way_when_it_opened_do_not_extend_it() {
        let (breaker, clock) = breaker(2, 20);
        let calls: Vec<Admission> = (0..4).map(|_| breaker.admit("p")).collect();
        for call in calls {
            breaker.failed(call, "p");
        }
        assert_eq!(breaker.transitions()[1].1, 1, "opened once");
        clock.advance(ms(20));
        assert_eq!(breaker.admit("p"), Admission::Trial, "after one cool-down");
    }

    #[test]
    fn the_cool_down_stops_growing_at_32_times() {
        let (breaker, clock) = breaker(1, 10);
        breaker.failed(breaker.admit("p"), "p");
        for opening in 0..8u32 {
            let cool_down = 10 * u64::from(1u32 << opening).min(32);
            clock.advance(ms(cool_down - 1));
            assert_eq!(breaker.admit("p"), Admission::Skip, "opening {opening}");
            clock.advance(ms(1));
            let trial = breaker.admit("p");
            assert_eq!(trial, Admission::Trial, "opening {opening}");
            breaker.failed(trial, "p");
        }
    }

    #[test]
    fn zero_failures_never_opens() {
        let (breaker, _) = breaker(0, 20);
        for _ in 0..100 {
            breaker.failed(breaker.admit("p"), "p");
        }
        assert_eq!(breaker.admit("p"), Admission::Call);
    }
}
