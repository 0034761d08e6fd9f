//! The fallback decision: whether a plugin's ranking can be used as it is, and, when it cannot,
//! how often and why the built-in round-robin served instead (counted per reason, logged
//! rate-limited).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::backend::{BackendSet, Eligibility};
use crate::balancer::{FallbackReason, Ranked};
use crate::clock::Clock;
use crate::log_budget::LogBudget;

/// Accepts a plugin's ranking if every index is in range and the first choice is eligible;
/// later choices that are not eligible are dropped. Otherwise answers why it cannot be used,
/// and leaves the ranking as the plugin gave it (for [`explained`]).
pub(super) fn checked(
    ranked: &mut Ranked,
    set: &BackendSet,
    eligibility: Eligibility,
) -> Result<(), FallbackReason> {
    checked_by(ranked, set.len(), |index| {
        eligibility.admits_answer(&set.backends()[index as usize])
    })
}

/// [`checked`] for a set of `count` backends of which `eligible` says which could take the
/// request (as a shadow's snapshot of them does).
pub(super) fn checked_by(
    ranked: &mut Ranked,
    count: usize,
    eligible: impl Fn(u32) -> bool,
) -> Result<(), FallbackReason> {
    match ranked.first() {
        None => return Err(FallbackReason::Declined),
        Some(_) if ranked.iter().any(|&i| i as usize >= count) => {
            return Err(FallbackReason::BadIndex);
        }
        Some(&first) if !eligible(first) => return Err(FallbackReason::Ineligible),
        Some(_) => {}
    }
    ranked.retain(|index| eligible(*index));
    Ok(())
}

/// What in the plugin's ranking `ranked` made [`checked`] refuse it for `reason`, in words for
/// the log: the index out of range and the set's size, or the backend out of rotation.
pub(super) fn explained(reason: FallbackReason, ranked: &[u32], set: &BackendSet) -> String {
    match reason {
        FallbackReason::BadIndex => {
            let bad = ranked.iter().find(|&&index| index as usize >= set.len());
            match (bad, set.len()) {
                (Some(index), 0) => format!("{reason} ({index}; the set is empty)"),
                (Some(index), n) => format!(
                    "{reason} ({index}; the set has {n} backends, 0 to {})",
                    n - 1
                ),
                (None, _) => reason.to_string(),
            }
        }
        FallbackReason::Ineligible => match ranked.first().and_then(|&i| set.get(i as usize)) {
            Some(backend) => format!(
                "{reason} ({} `{}`, first in its answer {ranked:?})",
                ranked[0], backend.name
            ),
            None => reason.to_string(),
        },
        _ => reason.to_string(),
    }
}

/// At most one fallback warning per this interval, so a failing plugin cannot flood the log.
const LOG_INTERVAL: Duration = Duration::from_secs(1);

/// Fallback counters by reason, with a rate limit for the warning each one logs.
#[derive(Debug)]
pub struct FallbackCounts {
    counts: [AtomicU64; FallbackReason::ALL.len()],
    warnings: LogBudget,
}

impl FallbackCounts {
    /// No fallbacks yet; warnings are rate-limited by `clock`.
    pub fn new(clock: Clock) -> Self {
        FallbackCounts {
            counts: Default::default(),
            warnings: LogBudget::new(1, LOG_INTERVAL, clock),
        }
    }

    /// Counts one fallback, and logs it unless another was logged within the last second.
    pub fn record(&self, plugin: &str, reason: FallbackReason) {
        self.record_explained(plugin, reason, || reason.to_string());
    }

    /// Counts one fallback, and logs it in the words `explain` makes unless another was logged
    /// within the last second: a warning, but a debug line for declining (a valid answer).
    /// Requests skipped by an open breaker are not logged one by one: the breaker logs opening.
    pub fn record_explained(
        &self,
        plugin: &str,
        reason: FallbackReason,
        explain: impl FnOnce() -> String,
    ) {
        let total = self.counts[reason as usize].fetch_add(1, Ordering::Relaxed) + 1;
        // Declines are logged only where debug lines are, so that they never spend the budget
        // a warning needs.
        let declined = reason == FallbackReason::Declined;
        if reason == FallbackReason::CircuitOpen
            || (declined && !tracing::enabled!(tracing::Level::DEBUG))
            || !self.warnings.allow()
        {
            return;
        }
        let label = reason.label();
        let what = explain();
        if declined {
            tracing::debug!(
                plugin,
                reason = label,
                total,
                "{what}; served by the built-in round-robin"
            );
        } else {
            tracing::warn!(
                plugin,
                reason = label,
                total,
                "{what}; served by the built-in round-robin"
            );
        }
    }

    /// The count for each reason, in the order of [`FallbackReason::ALL`].
    pub fn snapshot(&self) -> [(FallbackReason, u64); FallbackReason::ALL.len()] {
        FallbackReason::ALL
            .map(|reason| (reason, self.counts[reason as usize].load(Ordering::Relaxed)))
    }

    /// The count for one reason.
    pub fn get(&self, reason: FallbackReason) -> u64 {
        self.counts[reason as usize].load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_answer_is_explained_with_what_was_wrong_in_it() {
        let set = crate::backend::test_set(&[1, 1, 1]);
        assert_eq!(
            explained(FallbackReason::BadIndex, &[0, 7], &set),
            "the plugin picked an index out of range (7; the set has 3 backends, 0 to 2)"
        );
        set.backends()[0].health.set_healthy(false);
        assert_eq!(
            explained(FallbackReason::Ineligible, &[0, 1], &set),
            "the plugin picked a backend that is not eligible (0 `b0`, first in its answer [0, 1])"
        );
        assert_eq!(
            explained(FallbackReason::Trap, &[], &set),
            "the plugin trapped"
        );
    }

    #[test]
    fn counts_each_reason_apart() {
        let counts = FallbackCounts::new(Clock::new());
        counts.record("p", FallbackReason::Trap);
        counts.record("p", FallbackReason::Trap);
        counts.record("p", FallbackReason::BadIndex);
        assert_eq!(counts.get(FallbackReason::Trap), 2);
        assert_eq!(counts.get(FallbackReason::BadIndex), 1);
        assert_eq!(counts.get(FallbackReason::Declined), 0);
        assert_eq!(counts.snapshot()[0], (FallbackReason::Trap, 2));
    }
}

/// Answer checks shared by the property tests and the fuzz target.
#[cfg(any(test, fuzzing))]
pub(super) mod checks {
    use super::checked;
    use crate::backend::test_set;
    use crate::balancer::{FallbackReason, Ranked};

    /// Checks `ranked` against a set whose backends are in rotation as `in_rotation` says: a
    /// ranking that is used names only backends that exist and may take the request, in the
    /// plugin's order; one that is not is refused for the first reason that applies.
    pub(crate) fn answer_holds(in_rotation: &[bool], ranked: Vec<u32>) -> Result<(), String> {
        let set = test_set(&vec![1; in_rotation.len()]);
        for (backend, &up) in set.backends().iter().zip(in_rotation) {
            backend.health.set_healthy(up);
        }
        let eligibility = set.eligibility();
        let eligible = |index: u32| {
            (index as usize) < set.len() && eligibility.allows(&set.backends()[index as usize])
        };
        let mut used = Ranked::from_slice(&ranked);
        let verdict = checked(&mut used, &set, eligibility).map(|()| used);
        let holds = match &verdict {
            Ok(used) => {
                let kept: Vec<u32> = ranked.iter().copied().filter(|&i| eligible(i)).collect();
                !used.is_empty() && used[..] == kept[..]
            }
            Err(FallbackReason::Declined) => ranked.is_empty(),
            Err(FallbackReason::BadIndex) => ranked.iter().any(|&i| i as usize >= set.len()),
            Err(FallbackReason::Ineligible) => {
                (ranked[0] as usize) < set.len() && !eligible(ranked[0])
            }
            Err(_) => false,
        };
        if holds {
            Ok(())
        } else {
            Err(format!("{ranked:?} with {in_rotation:?} gave {verdict:?}"))
        }
    }

    /// The fuzz target: the first byte says how many backends (1 to 8), the next ones which
    /// are in rotation, the rest is the ranking.
    #[cfg(fuzzing)]
    pub(crate) fn fuzz(data: &[u8]) {
        let Some((&count, rest)) = data.split_first() else {
            return;
        };
        let count = usize::from(count % 8) + 1;
        if rest.len() < count {
            return;
        }
        let (states, ranked) = rest.split_at(count);
        let in_rotation: Vec<bool> = states.iter().map(|byte| byte % 2 == 0).collect();
        let ranked = ranked.iter().map(|&byte| u32::from(byte % 12)).collect();
        answer_holds(&in_rotation, ranked).unwrap();
    }
}

/// Properties of the answer check over generated answers and backend states: whatever a plugin
/// answers, a ranking that is used names only backends that exist and may take the request, in
/// the plugin's order, and one that is not used is refused for the first reason that applies.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::checks::answer_holds;

    proptest! {
        #[test]
        fn a_used_ranking_names_only_eligible_backends_in_the_plugins_order(
            in_rotation in proptest::collection::vec(any::<bool>(), 1..8),
            ranked in proptest::collection::vec(0..10u32, 0..12),
        ) {
            prop_assert_eq!(answer_holds(&in_rotation, ranked), Ok(()));
        }
    }
}
