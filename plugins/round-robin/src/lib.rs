//! vane's shipped round-robin policy: smooth weighted round-robin, exact across instances.
//!
//! Each pick is the slot of the request's sequence number in one cycle of nginx's smooth
//! weighted round-robin, so every instance of the plugin agrees and the spread matches the
//! host's built-in round-robin exactly. Backends that are not healthy are skipped.

use vane_plugin_kit::{BackendInfo, Needs, Policy, Request, States, WeightedSchedule};

/// How many backends a pick ranks: the first choice and two to retry on.
const RANKED: usize = 3;

/// The round-robin policy's state: the schedule for the configured weights.
pub struct RoundRobin {
    schedule: WeightedSchedule,
}

impl Policy for RoundRobin {
    fn configure(_config: &str, backends: &[BackendInfo]) -> Result<(Self, Needs), String> {
        let weights: Vec<u32> = backends.iter().map(|b| b.weight).collect();
        let policy = RoundRobin {
            schedule: WeightedSchedule::new(&weights),
        };
        Ok((policy, vane_plugin_kit::needs_nothing()))
    }

    fn pick(&mut self, request: &Request, states: &States<'_>, ranked: &mut Vec<u32>) {
        self.schedule.rank(
            request.sequence,
            |i| states.eligible(i as usize),
            RANKED,
            ranked,
        );
    }
}

vane_plugin_kit::export_policy!(RoundRobin);
