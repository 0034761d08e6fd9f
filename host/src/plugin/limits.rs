//! The sandbox's limits, in one place: the deadline of every call (counted in epoch ticks), the
//! memory and table caps of an instance (a wasmtime [`ResourceLimiter`]), and how much a plugin
//! may write to the log. The values an operator sets, with their defaults and the most vane
//! accepts, come from `[policy]` ([`crate::config::PluginLimits`]).

use std::time::Duration;

use wasmtime::ResourceLimiter;

/// How often the epoch advances: the granularity of every plugin deadline. 1 ms keeps a pick's
/// deadline tight (a 1 ms budget is enforced within 2 ms) for about a thousand cheap wake-ups a second.
pub(super) const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Log lines a plugin may write per second (its `log` calls, stdout and stderr together), across
/// all its instances; the rest are dropped and counted.
pub(super) const LOG_LINES_PER_SECOND: u32 = 20;

/// The longest line kept from a plugin's output or `log` calls; the rest of a line is cut.
pub(super) const MAX_LOG_LINE: usize = 1024;

/// The most elements an instance's tables may hold. Tables hold function references; 64 Ki
/// entries is far beyond any policy's needs.
const MAX_TABLE_ELEMENTS: usize = 1 << 16;

/// The epoch deadline, in ticks, that guarantees at least `timeout`: the current tick may be
/// almost over, so one more tick than the timeout spans.
pub(super) fn deadline_ticks(timeout: Duration) -> u64 {
    timeout.as_nanos().div_ceil(EPOCH_TICK.as_nanos()) as u64 + 1
}

/// One instance's memory and table caps, and whether the current call ran into the memory cap
/// (so that its failure is counted as `memory`, not as a plain trap).
#[derive(Debug)]
pub(super) struct InstanceLimiter {
    memory_limit: usize,
    hit_memory_limit: bool,
}

impl InstanceLimiter {
    /// Caps linear memory at `memory_limit` bytes.
    pub(super) fn new(memory_limit: usize) -> Self {
        InstanceLimiter {
            memory_limit,
            hit_memory_limit: false,
        }
    }

    /// Starts a new call with a clean record.
    pub(super) fn arm(&mut self) {
        self.hit_memory_limit = false;
    }

    /// Whether the call since [`InstanceLimiter::arm`] tried to grow memory past the cap.
    pub(super) fn hit_memory_limit(&self) -> bool {
        self.hit_memory_limit
    }
}

impl ResourceLimiter for InstanceLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = desired <= self.memory_limit;
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
    fn a_deadline_spans_at_least_its_timeout() {
        assert_eq!(deadline_ticks(Duration::from_millis(1)), 2);
        assert_eq!(deadline_ticks(Duration::from_micros(1500)), 3);
        assert_eq!(deadline_ticks(Duration::from_secs(1)), 1001);
    }

    #[test]
    fn growing_past_the_memory_cap_is_refused_and_remembered_until_armed() {
        let mut limiter = InstanceLimiter::new(1 << 20);
        assert!(limiter.memory_growing(0, 1 << 20, None).unwrap());
        assert!(!limiter.hit_memory_limit());
        assert!(!limiter.memory_growing(0, (1 << 20) + 1, None).unwrap());
        assert!(limiter.hit_memory_limit());
        limiter.arm();
        assert!(!limiter.hit_memory_limit());
    }
}
