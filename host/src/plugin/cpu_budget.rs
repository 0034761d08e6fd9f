//! A call's deadline counted in the plugin's own CPU time, not in the machine's: a thread
//! preempted by the OS is not a plugin overrunning its budget, so on a busy machine a plugin
//! that did nothing wrong is not cut off, while a loop is still stopped after its budget of
//! CPU time (within about two ticks: the one before the clock is read, and the one between
//! looks), and after at most [`WALL_FACTOR`] times its budget in wall-clock time ([`wall_limit`])
//! whatever it computes. (A call blocked in a host function is not looked at until it returns;
//! vane's host functions do not block.)
//!
//! Reading a thread's CPU clock is a system call (about 0.7 µs here), too dear for every pick,
//! so a call is timed only once it runs past a tick of the epoch that wasmtime checks: a pick of
//! a few microseconds almost never does, and pays nothing. At the first tick boundary the call
//! is still running at, its thread's CPU clock is read; from then on, at each of its epoch
//! deadlines, the CPU time used since is weighed against the budget, and the call goes on
//! (preempted, it has not used it) or is interrupted. So a call gets its budget of CPU time
//! plus what it ran before that first boundary, at most one tick.
//!
//! A call may be given a grace past its budget, to see how it ends: a Python exception takes
//! about 20 ms of CPU to format its traceback, and cut short it would read as a `deadline`
//! with no report. A call seen past its budget has overrun all the same
//! ([`CallBudget::overran`]). `vane plugin test` grants it; `vane run` does not.

use std::time::{Duration, Instant};

use cpu_time::ThreadTime;
use wasmtime::UpdateDeadline;

use super::limits::EPOCH_TICK;

/// How many times its budget a call may take in wall-clock time before it is stopped anyway:
/// room for a busy machine's preemption, and a bound on everything else...
pub(super) const WALL_FACTOR: u32 = 20;

/// ...with the room beyond the budget at least this, so that a tiny budget on a busy machine is
/// not cut by one scheduler slice...
const MIN_WALL_ROOM: Duration = Duration::from_millis(20);

/// ...and at most this, so that a long budget (`configure_timeout`) does not hold a request for
/// twenty times as long.
const MAX_WALL_ROOM: Duration = Duration::from_secs(2);

/// The wall-clock bound of a call with a budget of `budget`.
pub(super) fn wall_limit(budget: Duration) -> Duration {
    let room = budget.saturating_mul(WALL_FACTOR - 1);
    budget + room.clamp(MIN_WALL_ROOM, MAX_WALL_ROOM)
}

/// One call's budget, kept in the Store's data for its epoch deadline callback.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallBudget {
    /// The CPU time the call may use.
    budget: Duration,
    /// The CPU time it may use beyond that before it is stopped, overrun.
    grace: Duration,
    /// Whether it was seen past its budget.
    overran: bool,
    /// When the call was first seen past a tick boundary: at most a tick after it started,
    /// unless its thread was preempted before then (not counted against it).
    seen: Option<Instant>,
    /// The thread's CPU clock at that moment. (A call runs on one thread from start to end:
    /// vane polls it once, and never waits on it.)
    timed_from: Option<Duration>,
}

impl CallBudget {
    /// The epoch deadline to set as a call starts: the next tick boundary.
    pub(super) const FIRST_DEADLINE: u64 = 1;

    /// A call with `budget` of CPU time, stopped after `grace` more.
    pub(super) fn new(budget: Duration, grace: Duration) -> Self {
        CallBudget {
            budget,
            grace,
            overran: false,
            seen: None,
            timed_from: None,
        }
    }

    /// Whether the call ran past its budget (in its grace): a failure, whatever it answers.
    pub(super) fn overran(&self) -> bool {
        self.overran
    }

    /// What to do when the call reaches its epoch deadline: go on until the next look, or stop
    /// it (a trap the instance reports as `deadline`).
    pub(super) fn on_deadline(&mut self) -> UpdateDeadline {
        let allowed = self.budget + self.grace;
        let seen = *self.seen.get_or_insert_with(Instant::now);
        // What is left of the wall-clock bound of `budget`, from the first look (the tick
        // before it is the call's too).
        let wall_left = |budget: Duration| {
            wall_limit(budget)
                .saturating_sub(EPOCH_TICK)
                .saturating_sub(seen.elapsed())
        };
        if wall_left(allowed).is_zero() {
            return UpdateDeadline::Interrupt;
        }
        // No CPU clock: the budget in wall-clock time, as an epoch deadline alone gives.
        let used = self
            .cpu_used()
            .unwrap_or_else(|| seen.elapsed() + EPOCH_TICK);
        if used >= allowed {
            return UpdateDeadline::Interrupt;
        }
        // Past its budget or its wall-clock bound: without a grace it would have been stopped.
        self.overran |= used >= self.budget || wall_left(self.budget).is_zero();
        // Next look when the rest of the budget (then of the grace) could be used, were the
        // thread not preempted, and no later than the wall-clock bound.
        let left = match self.overran {
            false => (self.budget - used).min(wall_left(self.budget)),
            true => allowed - used,
        };
        let ticks = |d: Duration| d.as_nanos().div_ceil(EPOCH_TICK.as_nanos()) as u64;
        UpdateDeadline::Continue(ticks(left.min(wall_left(allowed))).max(1))
    }

    /// The CPU time this thread used since the call was first timed, starting the clock if
    /// this is the first look (none used yet); `None` without a CPU clock.
    fn cpu_used(&mut self) -> Option<Duration> {
        let now = ThreadTime::try_now().ok()?.as_duration();
        let from = *self.timed_from.get_or_insert(now);
        Some(now.saturating_sub(from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spin_for(duration: Duration) {
        let started = ThreadTime::now();
        while started.elapsed() < duration {
            std::hint::black_box(0);
        }
    }

    #[test]
    fn the_wall_limit_leaves_room_within_bounds() {
        assert_eq!(
            wall_limit(Duration::from_millis(1)),
            Duration::from_millis(21)
        );
        assert_eq!(
            wall_limit(Duration::from_millis(5)),
            Duration::from_millis(100)
        );
        assert_eq!(wall_limit(Duration::from_secs(1)), Duration::from_secs(3));
    }

    #[test]
    fn a_call_goes_on_until_it_used_its_cpu_budget() {
        let mut call = CallBudget::new(Duration::from_millis(5), Duration::ZERO);
        // First look: the clock starts; the next look is a budget later.
        assert!(matches!(call.on_deadline(), UpdateDeadline::Continue(5)));
        // Having used about 2 ms of CPU: 3 ms left, so three ticks on.
        spin_for(Duration::from_millis(2));
        match call.on_deadline() {
            UpdateDeadline::Continue(ticks) => assert!((1..=3).contains(&ticks), "{ticks}"),
            _ => panic!("stopped with budget left"),
        }
        spin_for(Duration::from_millis(3));
        assert!(matches!(call.on_deadline(), UpdateDeadline::Interrupt));
    }

    #[test]
    fn time_off_the_cpu_is_not_counted_but_the_wall_clock_bound_holds() {
        let mut call = CallBudget::new(Duration::from_millis(1), Duration::ZERO);
        assert!(matches!(call.on_deadline(), UpdateDeadline::Continue(1)));
        // Asleep (as if preempted) for longer than the budget: it goes on.
        std::thread::sleep(Duration::from_millis(3));
        assert!(matches!(call.on_deadline(), UpdateDeadline::Continue(_)));
        // But not past the wall-clock bound of 21 ms, however few looks it was given.
        std::thread::sleep(Duration::from_millis(20));
        assert!(matches!(call.on_deadline(), UpdateDeadline::Interrupt));
    }

    #[test]
    fn a_call_given_a_grace_goes_on_past_its_budget_and_has_overrun() {
        let mut call = CallBudget::new(Duration::from_millis(1), Duration::from_millis(10));
        // The next look comes when the budget could be spent, not the grace.
        assert!(matches!(call.on_deadline(), UpdateDeadline::Continue(1)));
        spin_for(Duration::from_millis(2));
        assert!(matches!(call.on_deadline(), UpdateDeadline::Continue(_)));
        assert!(call.overran());
        // Until its grace is spent too.
        spin_for(Duration::from_millis(10));
        assert!(matches!(call.on_deadline(), UpdateDeadline::Interrupt));
    }
}
