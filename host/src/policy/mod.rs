//! The policy in force: the plugin's answer, checked, or else the built-in round-robin, with
//! the plugin's circuit breaker and the counts of what happened. It stands above the plugin
//! runtime: [`Policy::load`] builds the plugin a config names and puts the fallback behind it.

mod breaker;
mod fallback;
mod feedback;
mod load;
mod shadow;
#[cfg(fuzzing)]
pub(crate) use fallback::checks::fuzz as fuzz_answer_check;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

pub use breaker::{Admission, Breaker, BreakerState};
pub use fallback::FallbackCounts;
pub use feedback::{Feedback, OBSERVE_FAILURES};
pub use shadow::{BackendShares, Shadow, ShadowStats};

use crate::backend::{BackendSet, Eligibility};
use crate::balancer::{Balancer, FallbackReason, Ranked, RequestInfo, RoundRobin};
use crate::clock::Clock;
use crate::config::BreakerConfig;
use crate::histogram::{Histogram, PICK_BUCKETS_US};
use crate::plugin::PluginInfo;
use fallback::{checked, explained};

/// How many picks the plugin answered, and how long its calls took.
#[derive(Debug)]
pub struct PickStats {
    answered: AtomicU64,
    duration: Histogram,
}

impl Default for PickStats {
    fn default() -> Self {
        PickStats {
            answered: AtomicU64::new(0),
            duration: Histogram::new(PICK_BUCKETS_US),
        }
    }
}

impl PickStats {
    /// Picks whose answer the plugin gave and the host used.
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }

    /// The duration of every plugin call made to pick, used or not.
    pub fn duration(&self) -> &Histogram {
        &self.duration
    }
}

/// The balancing policy in force: an optional plugin in front of the built-in round-robin.
///
/// [`Policy::pick`] never fails: any plugin failure (an error, no answer, an index out of range,
/// a first choice that is not eligible) is counted by reason and the request is ranked by the
/// built-in round-robin instead. Repeated failures open the plugin's circuit [`Breaker`].
pub struct Policy {
    plugin: Option<(PluginInfo, Box<dyn Balancer>)>,
    builtin: RoundRobin,
    fallbacks: FallbackCounts,
    picks: PickStats,
    breaker: Breaker,
    feedback: Feedback,
    shadow: Option<Shadow>,
    /// The shadow the config names that could not be loaded: its file and why.
    shadow_failure: Option<(PathBuf, String)>,
    generation: u64,
}

impl Policy {
    /// The built-in round-robin alone.
    pub fn builtin(clock: &Clock) -> Self {
        Policy {
            plugin: None,
            builtin: RoundRobin,
            fallbacks: FallbackCounts::new(clock.clone()),
            picks: PickStats::default(),
            breaker: Breaker::new(BreakerConfig::default(), clock.clone()),
            feedback: Feedback::new(BreakerConfig::default(), clock),
            shadow: None,
            shadow_failure: None,
            generation: 1,
        }
    }

    /// The same policy, numbered `generation` (each reload that swaps the policy adds one).
    pub fn with_generation(mut self, generation: u64) -> Self {
        self.generation = generation;
        self
    }

    /// The same policy with `shadow` asked alongside it.
    pub fn with_shadow(mut self, shadow: Shadow) -> Self {
        self.shadow = Some(shadow);
        self
    }

    /// The same policy without the shadow the config names at `path`, which could not be
    /// loaded for `reason`: a broken shadow keeps vane from nothing.
    pub fn with_shadow_failure(mut self, path: PathBuf, reason: String) -> Self {
        self.shadow_failure = Some((path, reason));
        self
    }

    /// The shadow policy asked alongside, if the config has one.
    pub fn shadow(&self) -> Option<&Shadow> {
        self.shadow.as_ref()
    }

    /// The shadow the config names that could not be loaded, if any: its file and why.
    pub fn shadow_failure(&self) -> Option<&(PathBuf, String)> {
        self.shadow_failure.as_ref()
    }

    /// Which policy this is since start: 1 for the first, one more for each swap.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// `plugin`, described by `info`, with the built-in round-robin as its fallback and a
    /// circuit breaker set by `breaker`, all timed by `clock`.
    pub fn with_plugin(
        info: PluginInfo,
        plugin: Box<dyn Balancer>,
        breaker: BreakerConfig,
        clock: &Clock,
    ) -> Self {
        Policy {
            plugin: Some((info, plugin)),
            breaker: Breaker::new(breaker, clock.clone()),
            feedback: Feedback::new(breaker, clock),
            ..Policy::builtin(clock)
        }
    }

    /// The plugin's name, or `None` for the built-in round-robin.
    pub fn plugin_name(&self) -> Option<&str> {
        self.plugin_info().map(|info| info.name.as_str())
    }

    /// The plugin's description, or `None` for the built-in round-robin.
    pub fn plugin_info(&self) -> Option<&PluginInfo> {
        self.plugin.as_ref().map(|(info, _)| info)
    }

    /// How often, and why, the plugin's answer was replaced by the built-in round-robin.
    pub fn fallbacks(&self) -> &FallbackCounts {
        &self.fallbacks
    }

    /// How many picks the plugin answered, and how long they took.
    pub fn picks(&self) -> &PickStats {
        &self.picks
    }

    /// The plugin's log lines (`log` calls, stdout, stderr): (logged, dropped by the rate limit).
    pub fn log_lines(&self) -> (u64, u64) {
        self.plugin
            .as_ref()
            .map_or((0, 0), |(_, plugin)| plugin.log_lines())
    }

    /// The linear memory the plugin's instances hold now, in bytes (0 for the built-in).
    pub fn memory_bytes(&self) -> u64 {
        self.plugin
            .as_ref()
            .map_or(0, |(_, plugin)| plugin.memory_bytes())
    }

    /// The plugin's circuit breaker (always closed for the built-in round-robin).
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// What became of the outcomes meant for the plugin's `observe`.
    pub fn feedback(&self) -> &Feedback {
        &self.feedback
    }

    /// Whether the plugin asked to hear of outcomes through `observe`.
    pub fn wants_feedback(&self) -> bool {
        self.plugin
            .as_ref()
            .is_some_and(|(_, plugin)| plugin.wants_feedback())
    }

    /// Outcomes dropped before the plugin heard of them: it fell behind, its `observe` breaker
    /// was cooling down, or the backend set changed before they were handed over.
    pub fn outcomes_dropped(&self) -> u64 {
        let queued = self
            .plugin
            .as_ref()
            .map_or(0, |(_, plugin)| plugin.outcomes_dropped());
        queued + self.feedback.refused()
    }

    /// Ranks the eligible backends for `request`, first choice first; empty only if the set is.
    pub fn pick(&self, request: &RequestInfo<'_>, set: &BackendSet) -> Ranked {
        self.rank(request, set, set.eligibility_for(request.sequence))
    }

    /// [`Policy::pick`], then hands the request, with the same facts and the choice made, to
    /// the shadow policy if there is one and the request is in its sample. Never waits.
    pub fn pick_with_shadow(&self, request: &RequestInfo<'_>, set: &Arc<BackendSet>) -> Ranked {
        let eligibility = set.eligibility_for(request.sequence);
        let ranked = self.rank(request, set, eligibility);
        if let (Some(shadow), Some(&chosen)) = (&self.shadow, ranked.first()) {
            shadow.offer(request, set, eligibility, chosen);
        }
        ranked
    }

    /// Ranks with the plugin, checked, or else the built-in, among what `eligibility` allows.
    fn rank(
        &self,
        request: &RequestInfo<'_>,
        set: &BackendSet,
        eligibility: Eligibility,
    ) -> Ranked {
        if let Some((info, plugin)) = &self.plugin {
            let admission = self.breaker.admit(&info.name);
            if admission == Admission::Skip {
                self.fallbacks
                    .record(&info.name, FallbackReason::CircuitOpen);
                return self.builtin.rank(request.sequence, set, eligibility);
            }
            let started = Instant::now();
            let answer = plugin.pick(request, set, eligibility);
            self.picks.duration.record(started.elapsed());
            let (reason, ranked) = match answer {
                Ok(mut ranked) => match checked(&mut ranked, set, eligibility) {
                    Ok(()) => {
                        self.breaker.succeeded(admission, &info.name);
                        self.picks.answered.fetch_add(1, Ordering::Relaxed);
                        return ranked;
                    }
                    Err(reason) => (reason, ranked),
                },
                Err(reason) => (reason, Ranked::new()),
            };
            if reason.is_failure() {
                self.breaker.failed(admission, &info.name);
            } else {
                self.breaker.succeeded(admission, &info.name);
            }
            self.fallbacks
                .record_explained(&info.name, reason, || explained(reason, &ranked, set));
        }
        self.builtin.rank(request.sequence, set, eligibility)
    }

    /// Whether the plugin takes `set` (see [`Balancer::accepts`]), as a change of backends must
    /// be admitted; always, for the built-in round-robin.
    pub fn accepts(&self, set: &BackendSet) -> Result<(), crate::plugin::PluginError> {
        match &self.plugin {
            Some((_, plugin)) => plugin.accepts(set),
            None => Ok(()),
        }
    }

    /// Asks the plugin for `picks` rankings of `set` with plain requests (`GET /` from
    /// 127.0.0.1, no headers), as a new plugin must answer before it replaces the old one.
    /// Declining is a valid answer; a failure or an unusable ranking is not.
    pub fn probe(&self, set: &BackendSet, picks: u64) -> Result<(), (u64, FallbackReason)> {
        let Some((_, plugin)) = &self.plugin else {
            return Ok(());
        };
        let headers = http::HeaderMap::new();
        let eligibility = set.eligibility();
        for sequence in 0..picks {
            let request = RequestInfo {
                sequence,
                method: &http::Method::GET,
                authority: "",
                path: "/",
                client_ip: std::net::Ipv4Addr::LOCALHOST.into(),
                headers: &headers,
            };
            match plugin
                .pick(&request, set, eligibility)
                .and_then(|mut ranked| checked(&mut ranked, set, eligibility))
            {
                Ok(_) | Err(FallbackReason::Declined) => {}
                Err(reason) => return Err((sequence, reason)),
            }
        }
        Ok(())
    }

    /// Queues, for the plugin's `observe` if it asked for feedback, how a request to backend
    /// `index` of `set` went; never calls the plugin. Answers whether it was queued, so that
    /// the caller makes sure [`crate::state::deliver_feedback`] will come.
    pub fn observe(&self, set: &BackendSet, index: u32, status: u16, latency: Duration) -> bool {
        let active = match &self.plugin {
            Some((_, plugin)) if plugin.wants_feedback() => {
                self.feedback
                    .queue(plugin.as_ref(), set, index, status, latency)
            }
            _ => false,
        };
        // The shadow hears of it too: what it would know if it were active.
        let shadow = self
            .shadow
            .as_ref()
            .is_some_and(|shadow| shadow.observe(set, index, status, latency));
        active || shadow
    }

    /// Whether outcomes are to be handed to anyone: the plugin or the shadow asked for them.
    pub fn delivers_feedback(&self) -> bool {
        self.wants_feedback() || self.shadow.as_ref().is_some_and(Shadow::wants_feedback)
    }

    /// Hands the outcomes queued for `set` to the plugin's `observe` in one call (see
    /// [`Feedback`]). Blocks for as long as the call takes: run it off the proxy's workers. The
    /// shadow's are handed over apart ([`Shadow::deliver_feedback`]), so a slow candidate never
    /// delays the active plugin's.
    pub fn deliver_feedback(&self, set: &BackendSet) {
        if let Some((info, plugin)) = &self.plugin
            && plugin.wants_feedback()
        {
            self.feedback.deliver(&info.name, plugin.as_ref(), set);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::time::SystemTime;

    use http::{HeaderMap, Method};

    use super::*;
    use crate::backend::{Eligibility, test_set};

    /// A stand-in plugin answering a fixed ranking or failure.
    struct Answers(Result<Ranked, FallbackReason>);

    impl Balancer for Answers {
        fn pick(
            &self,
            _: &RequestInfo<'_>,
            _: &BackendSet,
            _: Eligibility,
        ) -> Result<Ranked, FallbackReason> {
            self.0.clone()
        }
    }

    fn pick(answer: Result<Ranked, FallbackReason>, set: &BackendSet) -> (Ranked, Policy) {
        let info = PluginInfo {
            name: "test".into(),
            path: "test.wasm".into(),
            sha256: String::new(),
            loaded_at: SystemTime::UNIX_EPOCH,
        };
        let policy = Policy::with_plugin(
            info,
            Box::new(Answers(answer)),
            BreakerConfig::default(),
            &Clock::new(),
        );
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
    fn a_good_answer_is_used_and_ineligible_spares_dropped() {
        let set = test_set(&[1, 1, 1]);
        set.backends()[0].health.set_healthy(false);
        let (ranked, policy) = pick(Ok(Ranked::from_slice(&[2, 0, 1])), &set);
        assert_eq!(ranked[..], [2, 1]);
        assert!(policy.fallbacks().snapshot().iter().all(|(_, n)| *n == 0));
        assert_eq!(policy.picks().answered(), 1);
        assert_eq!(policy.picks().duration().snapshot().count, 1);
        assert_eq!(policy.probe(&set, 3), Ok(()));
    }

    #[test]
    fn every_failure_falls_back_and_is_counted_by_reason() {
        let set = test_set(&[1, 1, 1]);
        set.backends()[2].health.set_healthy(false);
        let cases = [
            (Err(FallbackReason::Trap), FallbackReason::Trap),
            (Ok(Ranked::new()), FallbackReason::Declined),
            (Ok(Ranked::from_slice(&[0, 3])), FallbackReason::BadIndex),
            (Ok(Ranked::from_slice(&[2])), FallbackReason::Ineligible),
        ];
        for (answer, reason) in cases {
            let (ranked, policy) = pick(answer, &set);
            // sequence 4 of 3 equal backends starts at backend 1, the built-in's choice
            assert_eq!(ranked[..], [1, 0], "{reason:?}");
            assert_eq!(policy.fallbacks().get(reason), 1, "{reason:?}");
            let probed = policy.probe(&set, 2);
            if reason == FallbackReason::Declined {
                assert_eq!(probed, Ok(()), "declining is a valid answer");
            } else {
                assert_eq!(probed, Err((0, reason)));
            }
        }
    }
}
