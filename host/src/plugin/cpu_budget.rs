//! A call's deadline counted in the plugin's own CPU time, not in the machine's: a thread
//! preempted by the OS is not a plugin overrunning its budget, so on a busy machine a plugin
//! that did nothing wrong is not cut off, while a loop is still stopped after its budget of
//! CPU time, and after [`WALL_FACTOR`] times its budget in wall-clock time whatever happens.
//!
//! Reading a thread's CPU clock is a system call (about 0.7 µs here), too dear for every pick,
//! so a call is timed only once it runs past a tick of the epoch that wasmtime checks: a pick of
//! a few microseconds almost never does, and pays nothing. At the first tick boundary the call
//! is still running at, its thread's CPU clock is read; from then on, at each of its epoch
//! deadlines, the CPU time used since is weighed against the budget, and the call goes on
//! (preempted, it has not used it) or is interrupted. So a call gets its budget of CPU time
//! plus what it ran before that first boundary, at most one tick.

use std::time::Duration;

use cpu_time::ThreadTime;
use wasmtime::UpdateDeadline;

use super::limits::{EPOCH_TICK, deadline_ticks};

/// How many times its budget a call may take in wall-clock time before it is stopped anyway:
/// room for a busy machine's preemption, and a bound on everything else.
pub(super) const WALL_FACTOR: u32 = 20;

/// The shortest wall-clock bound, so that a tiny budget on a busy machine is not cut by one
/// scheduler slice.
const MIN_WALL_LIMIT: Duration = Duration::from_millis(20);

/// The wall-clock bound of a call with a budget of `budget`.
pub(super) fn wall_limit(budget: Duration) -> Duration {
    budget.saturating_mul(WALL_FACTOR).max(MIN_WALL_LIMIT)
}

/// One call's budget, kept in the Store's data for its epoch deadline callback.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallBudget {
    /// The CPU time the call may use.
    budget: Duration,
    /// Epoch ticks since the call started, as far as its deadlines tell.
    ticks_passed: u64,
    /// The ticks the last deadline was set ahead.
    granted: u64,
    /// The thread's CPU clock when the call was first seen past a tick boundary. (A call
    /// runs on one thread from start to end: vane polls it once, and never waits on it.)
    timed_from: Option<Duration>,
}

impl CallBudget {
    /// The epoch deadline to set as a call starts: the next tick boundary.
    pub(super) const FIRST_DEADLINE: u64 = 1;

    /// A call with `budget` of CPU time, starting with its deadline [`Self::FIRST_DEADLINE`]
    /// ticks ahead.
    pub(super) fn new(budget: Duration) -> Self {
        CallBudget {
            budget,
            ticks_passed: 0,
            granted: Self::FIRST_DEADLINE,
            timed_from: None,
        }
    }

    /// What to do when the call reaches its epoch deadline: go on until the next look, or
    /// stop it (a trap the instance reports as `deadline`).
    pub(super) fn on_deadline(&mut self) -> UpdateDeadline {
        self.ticks_passed += self.granted;
        let wall_ticks = deadline_ticks(wall_limit(self.budget));
        if self.ticks_passed >= wall_ticks {
            return UpdateDeadline::Interrupt;
        }
        let left = match self.cpu_used() {
            Some(used) if used >= self.budget => return UpdateDeadline::Interrupt,
            Some(used) => self.budget - used,
            // No CPU clock: the budget in wall-clock time, as an epoch deadline alone gives.
            None => match deadline_ticks(self.budget).checked_sub(self.ticks_passed) {
                Some(ticks) if ticks > 0 => EPOCH_TICK * ticks as u32,
                _ => return UpdateDeadline::Interrupt,
            },
        };
        // Next look when the rest of the budget could be used, were the thread not preempted.
        let ticks = left.as_nanos().div_ceil(EPOCH_TICK.as_nanos()) as u64;
        self.granted = ticks.clamp(1, wall_ticks - self.ticks_passed);
        UpdateDeadline::Continue(self.granted)
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
    fn the_wall_limit_leaves_room_and_has_a_floor() {
        assert_eq!(
            wall_limit(Duration::from_millis(1)),
            Duration::from_millis(20)
        );
        assert_eq!(
            wall_limit(Duration::from_millis(5)),
            Duration::from_millis(100)
        );
        assert_eq!(wall_limit(Duration::from_secs(1)), Duration::from_secs(20));
    }

    #[test]
    fn a_call_goes_on_until_it_used_its_cpu_budget() {
        let mut call = CallBudget::new(Duration::from_millis(5));
        // First boundary: the clock starts; the next look is a budget later.
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
        let mut call = CallBudget::new(Duration::from_millis(1));
        assert!(matches!(call.on_deadline(), UpdateDeadline::Continue(1)));
        // Asleep (as if preempted) for longer than the budget: it goes on, a tick at a time.
        std::thread::sleep(Duration::from_millis(3));
        for _ in 2..21 {
            assert!(matches!(call.on_deadline(), UpdateDeadline::Continue(1)));
        }
        // But not past the wall-clock bound: 20 ms, 21 ticks in all.
        assert!(matches!(call.on_deadline(), UpdateDeadline::Interrupt));
    }
}
