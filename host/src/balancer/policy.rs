//! The active policy: the plugin's answer, checked, or else the built-in round-robin.

use std::time::Duration;

use super::{Balancer, FallbackCounts, FallbackReason, Ranked, RequestInfo, RoundRobin};
use crate::backend::BackendSet;

/// The balancing policy in force: an optional plugin in front of the built-in round-robin.
///
/// [`Policy::pick`] never fails: any plugin failure (an error, no answer, an index out of range,
/// a first choice that is not healthy) is counted by reason and the request is ranked by the
/// built-in round-robin instead.
pub struct Policy {
    plugin: Option<(String, Box<dyn Balancer>)>,
    builtin: RoundRobin,
    fallbacks: FallbackCounts,
}

impl Policy {
    /// The built-in round-robin alone.
    pub fn builtin() -> Self {
        Policy {
            plugin: None,
            builtin: RoundRobin,
            fallbacks: FallbackCounts::default(),
        }
    }

    /// `plugin` (named `name` in logs), with the built-in round-robin as its fallback.
    pub fn with_plugin(name: impl Into<String>, plugin: Box<dyn Balancer>) -> Self {
        Policy {
            plugin: Some((name.into(), plugin)),
            ..Policy::builtin()
        }
    }

    /// The plugin's name, or `None` for the built-in round-robin.
    pub fn plugin_name(&self) -> Option<&str> {
        self.plugin.as_ref().map(|(name, _)| name.as_str())
    }

    /// How often, and why, the plugin's answer was replaced by the built-in round-robin.
    pub fn fallbacks(&self) -> &FallbackCounts {
        &self.fallbacks
    }

    /// Ranks healthy backends for `request`, first choice first; empty only if none is healthy.
    pub fn pick(&self, request: &RequestInfo<'_>, set: &BackendSet) -> Ranked {
        if let Some((name, plugin)) = &self.plugin {
            match plugin
                .pick(request, set)
                .and_then(|ranked| checked(ranked, set))
            {
                Ok(ranked) => return ranked,
                Err(reason) => self.fallbacks.record(name, reason),
            }
        }
        self.builtin.rank(request.sequence, set)
    }

    /// Tells the plugin, if it asked, how a request to backend `index` of `set` went.
    pub fn observe(&self, set: &BackendSet, index: u32, status: u16, latency: Duration) {
        if let Some((_, plugin)) = &self.plugin
            && plugin.wants_feedback()
        {
            plugin.observe(set, index, status, latency);
        }
    }
}

/// Accepts a plugin's ranking if every index is in range and the first choice is healthy;
/// later choices that are not healthy are dropped.
fn checked(mut ranked: Ranked, set: &BackendSet) -> Result<Ranked, FallbackReason> {
    let healthy = |index: u32| set.backends()[index as usize].stats.healthy();
    match ranked.first() {
        None => return Err(FallbackReason::Declined),
        Some(_) if ranked.iter().any(|&i| i as usize >= set.len()) => {
            return Err(FallbackReason::BadIndex);
        }
        Some(&first) if !healthy(first) => return Err(FallbackReason::Ineligible),
        Some(_) => {}
    }
    ranked.retain(|&index| healthy(index));
    Ok(ranked)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    use http::{HeaderMap, Method};

    use super::*;
    use crate::backend::Backend;

    /// A stand-in plugin answering a fixed ranking or failure.
    struct Answers(Result<Ranked, FallbackReason>);

    impl Balancer for Answers {
        fn pick(&self, _: &RequestInfo<'_>, _: &BackendSet) -> Result<Ranked, FallbackReason> {
            self.0.clone()
        }
    }

    fn three() -> BackendSet {
        let backends = (0..3)
            .map(|i| {
                let address = format!("127.0.0.1:{}", 9000 + i).parse().unwrap();
                Arc::new(Backend::new(format!("b{i}"), address, 1, vec![]))
            })
            .collect();
        BackendSet::new(1, backends)
    }

    fn pick(answer: Result<Ranked, FallbackReason>, set: &BackendSet) -> (Ranked, Policy) {
        let policy = Policy::with_plugin("test", Box::new(Answers(answer)));
        let headers = HeaderMap::new();
        let request = RequestInfo {
            sequence: 4,
            method: &Method::GET,
            authority: "",
            path: "/",
            client_ip: Ipv4Addr::LOCALHOST.into(),
            headers: &headers,
        };
        (policy.pick(&request, set), policy)
    }

    #[test]
    fn a_good_answer_is_used_and_unhealthy_spares_dropped() {
        let set = three();
        set.backends()[0].stats.set_healthy(false);
        let (ranked, policy) = pick(Ok(vec![2, 0, 1]), &set);
        assert_eq!(ranked, vec![2, 1]);
        assert!(policy.fallbacks().snapshot().iter().all(|(_, n)| *n == 0));
    }

    #[test]
    fn every_failure_falls_back_and_is_counted_by_reason() {
        let set = three();
        set.backends()[2].stats.set_healthy(false);
        let cases = [
            (Err(FallbackReason::Trap), FallbackReason::Trap),
            (Ok(vec![]), FallbackReason::Declined),
            (Ok(vec![0, 3]), FallbackReason::BadIndex),
            (Ok(vec![2]), FallbackReason::Ineligible),
        ];
        for (answer, reason) in cases {
            let (ranked, policy) = pick(answer, &set);
            // sequence 4 of 3 equal backends starts at backend 1, the built-in's choice
            assert_eq!(ranked, vec![1, 0], "{reason:?}");
            assert_eq!(policy.fallbacks().get(reason), 1, "{reason:?}");
        }
    }
}
