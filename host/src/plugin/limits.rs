//! The sandbox's limits, in one place: the epoch tick at which a long call's CPU time is
//! weighed against its budget (see `cpu_budget`), the
//! memory and table caps of an instance (a wasmtime [`ResourceLimiter`]), the memory budget all
//! of a plugin's instances share, and how much a plugin may write to the log. The values an operator sets, with their defaults and the most vane
//! accepts, come from `[policy]` ([`crate::config::PluginLimits`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use wasmtime::ResourceLimiter;

use crate::config::PluginLimits;

/// How often the epoch advances: the granularity of every plugin deadline. 1 ms keeps a pick's
/// deadline tight (a call is stopped within a tick of using its budget) for about a thousand
/// cheap wake-ups a second.
pub(super) const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Log lines a plugin may write per second (its `log` calls, stdout and stderr together), across
/// all its instances; the rest are dropped and counted.
pub(super) const LOG_LINES_PER_SECOND: u32 = 20;

/// The longest line kept from a plugin's output or `log` calls; the rest of a line is cut.
pub(super) const MAX_LOG_LINE: usize = 1024;

/// The most elements an instance's tables may hold. Tables hold function references; 64 Ki
/// entries is far beyond any policy's needs.
const MAX_TABLE_ELEMENTS: usize = 1 << 16;

/// How many outcomes one `pick_timeout` of an `observe` call covers: a longer batch (a busy
/// proxy's, or a new instance catching up) gets one more `pick_timeout` per this many.
const OUTCOMES_PER_PICK_TIMEOUT: usize = 256;

/// The deadline of an `observe` call handed `outcomes` outcomes: `pick_timeout` per
/// [`OUTCOMES_PER_PICK_TIMEOUT`] begun, at most `configure_timeout` (or `pick_timeout` if that
/// is longer).
pub(super) fn observe_timeout(limits: &PluginLimits, outcomes: usize) -> Duration {
    let periods = u32::try_from(1 + outcomes / OUTCOMES_PER_PICK_TIMEOUT).unwrap_or(u32::MAX);
    let most = limits.configure_timeout.max(limits.pick_timeout);
    limits.pick_timeout.saturating_mul(periods).min(most)
}

/// The linear memory all instances of one plugin may hold together (`total_memory_limit`):
/// each instance reserves what it grows to and gives it back when it is dropped. Without it the
/// worst case would be the pool's size times `memory_limit`.
#[derive(Debug)]
pub(crate) struct MemoryBudget {
    limit: usize,
    used: AtomicUsize,
}

impl MemoryBudget {
    /// A budget of `limit` bytes, none of it used.
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(MemoryBudget {
            limit,
            used: AtomicUsize::new(0),
        })
    }

    /// The bytes the plugin's instances hold now.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Takes `bytes` from the budget, if that many are left.
    fn reserve(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(bytes).filter(|&total| total <= self.limit)
            })
            .is_ok()
    }

    fn release(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// One instance's memory and table caps, its share of the plugin's memory budget, and whether
/// the current call ran into a memory cap (so that its failure is counted as `memory`, not as a
/// plain trap).
#[derive(Debug)]
pub(super) struct InstanceLimiter {
    memory_limit: usize,
    budget: Arc<MemoryBudget>,
    /// What this instance has taken from the budget: its linear memory's size.
    reserved: usize,
    hit_memory_limit: bool,
}

impl InstanceLimiter {
    /// Caps linear memory at `memory_limit` bytes, and takes it from `budget`.
    pub(super) fn new(memory_limit: usize, budget: Arc<MemoryBudget>) -> Self {
        InstanceLimiter {
            memory_limit,
            budget,
            reserved: 0,
            hit_memory_limit: false,
        }
    }

    /// Starts a new call with a clean record.
    pub(super) fn arm(&mut self) {
        self.hit_memory_limit = false;
    }

    /// Whether the call since [`InstanceLimiter::arm`] tried to grow memory past a cap.
    pub(super) fn hit_memory_limit(&self) -> bool {
        self.hit_memory_limit
    }
}

impl Drop for InstanceLimiter {
    fn drop(&mut self) {
        self.budget.release(self.reserved);
    }
}

impl ResourceLimiter for InstanceLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let growth = desired.saturating_sub(current);
        let allowed = desired <= self.memory_limit && self.budget.reserve(growth);
        if allowed {
            self.reserved += growth;
        }
        self.hit_memory_limit |= !allowed;
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_observe_gets_a_pick_timeout_per_256_outcomes_up_to_the_configure_timeout() {
        let limits = PluginLimits {
            pick_timeout: Duration::from_millis(2),
            configure_timeout: Duration::from_millis(7),
            memory_limit: 1 << 20,
            total_memory_limit: 1 << 20,
            overrun_grace: Duration::ZERO,
        };
        let ms = |outcomes| observe_timeout(&limits, outcomes).as_millis();
        assert_eq!(
            [ms(1), ms(255), ms(256), ms(600), ms(4096)],
            [2, 2, 4, 6, 7]
        );
    }

    #[test]
    fn growing_past_the_memory_cap_is_refused_and_remembered_until_armed() {
        let mut limiter = InstanceLimiter::new(1 << 20, MemoryBudget::new(8 << 20));
        assert!(limiter.memory_growing(0, 1 << 20, None).unwrap());
        assert!(!limiter.hit_memory_limit());
        assert!(!limiter.memory_growing(0, (1 << 20) + 1, None).unwrap());
        assert!(limiter.hit_memory_limit());
        limiter.arm();
        assert!(!limiter.hit_memory_limit());
    }

    #[test]
    fn instances_share_the_budget_and_give_it_back_when_dropped() {
        let budget = MemoryBudget::new(3 << 20);
        let mut first = InstanceLimiter::new(2 << 20, budget.clone());
        let mut second = InstanceLimiter::new(2 << 20, budget.clone());
        assert!(first.memory_growing(0, 1 << 20, None).unwrap());
        assert!(first.memory_growing(1 << 20, 2 << 20, None).unwrap());
        assert!(second.memory_growing(0, 1 << 20, None).unwrap());
        assert_eq!(budget.used(), 3 << 20);
        assert!(
            !second.memory_growing(1 << 20, 2 << 20, None).unwrap(),
            "within its own cap, but past the plugin's total"
        );
        assert!(second.hit_memory_limit());
        drop(first);
        assert_eq!(
            budget.used(),
            1 << 20,
            "the dropped instance's memory is free again"
        );
        assert!(second.memory_growing(1 << 20, 2 << 20, None).unwrap());
    }
}
