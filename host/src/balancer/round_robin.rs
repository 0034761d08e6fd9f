//! The built-in round-robin: the reference policy and the fallback for every plugin failure.
//!
//! Smooth weighted round-robin indexed by the request's sequence number, the same code the
//! shipped round-robin plugin runs ([`vane_plugin_kit::WeightedSchedule`]), so both spread alike.

use super::{Balancer, FallbackReason, MAX_RANKED, Ranked, RequestInfo};
use crate::backend::{BackendSet, Eligibility};

/// Smooth weighted round-robin over the eligible backends.
#[derive(Debug, Default, Clone, Copy)]
pub struct RoundRobin;

impl RoundRobin {
    /// Ranks the eligible backends of `set` for the request numbered `sequence`.
    pub fn rank(&self, sequence: u64, set: &BackendSet, eligibility: Eligibility) -> Ranked {
        let mut ranked = Ranked::new();
        set.schedule().rank(
            sequence,
            |i| eligibility.allows(&set.backends()[i as usize]),
            MAX_RANKED,
            &mut ranked,
        );
        ranked
    }
}

impl Balancer for RoundRobin {
    fn pick(
        &self,
        request: &RequestInfo<'_>,
        set: &BackendSet,
        eligibility: Eligibility,
    ) -> Result<Ranked, FallbackReason> {
        Ok(self.rank(request.sequence, set, eligibility))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::test_set;

    #[test]
    fn spreads_by_weight_and_skips_ineligible() {
        let set = test_set(&[1, 2, 1]);
        let mut counts = [0; 3];
        for sequence in 0..400 {
            counts[RoundRobin.rank(sequence, &set, set.eligibility())[0] as usize] += 1;
        }
        assert_eq!(counts, [100, 200, 100]);

        set.backends()[1].health.set_healthy(false);
        for sequence in 0..40 {
            let ranked = RoundRobin.rank(sequence, &set, set.eligibility());
            assert!(!ranked.contains(&1), "{ranked:?}");
            assert_eq!(ranked.len(), 2);
        }
    }
}
