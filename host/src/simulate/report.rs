//! What `vane plugin test` prints: each backend's share with a bar, pick latency percentiles,
//! and fallbacks by reason.

use std::fmt;
use std::time::Duration;

use super::{SimBackend, Simulation, is_plugin_failure};
use crate::balancer::FallbackReason;
use crate::policy::Policy;

/// The width of a 100 % bar, in characters.
const BAR_WIDTH: usize = 40;

/// One backend's part of the run.
#[derive(Debug, Clone, PartialEq)]
pub struct Share {
    /// The backend.
    pub name: String,
    /// Its weight.
    pub weight: u32,
    /// How long it takes to answer.
    pub latency: Duration,
    /// Whether it was in rotation.
    pub healthy: bool,
    /// Requests it was sent.
    pub requests: u64,
    /// Of those, the ones it failed (a 5xx, or no answer).
    pub failed: u64,
}

/// The outcome of a simulated run.
#[derive(Debug, Clone)]
pub struct Report {
    /// The plugin's name.
    pub plugin: String,
    /// Requests sent.
    pub requests: u64,
    /// Each backend's part, in order of appearance.
    pub shares: Vec<Share>,
    /// Picks the plugin answered and vane used.
    pub answered: u64,
    /// Picks served by the built-in round-robin instead, by reason.
    pub fallbacks: Vec<(FallbackReason, u64)>,
    /// Every pick's duration (the whole call, fallback included), sorted.
    pub pick_times: Vec<Duration>,
    /// For a plugin that asked for feedback: the outcomes it heard of through `observe`, and
    /// the `observe` calls that failed, by reason.
    pub observe: Option<(u64, Vec<(FallbackReason, u64)>)>,
    /// In the `keys` scenario: which keys moved when the backend left.
    pub keys: Option<KeyReport>,
    /// How the requests spread along the run.
    pub timeline: super::Timeline,
    /// The scenario's events: at which request, and what happened.
    pub events: Vec<(u64, String)>,
    /// The scenario's name.
    pub scenario: &'static str,
}

/// Which of the `keys` scenario's keys changed backend when one backend left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyReport {
    /// Keys seen both before and after the backend left. A key's backend, before and after,
    /// is the one that served it most.
    pub keys: u64,
    /// The backend that left.
    pub left: String,
    /// Of `keys`, those that were on the backend that left.
    pub on_leaving: u64,
    /// Of those, the ones that moved (all of them: their backend is gone).
    pub moved_from_leaving: u64,
    /// Keys that moved although their backend stayed.
    pub moved_others: u64,
}

impl Report {
    pub(super) fn new(
        simulation: &Simulation,
        policy: &Policy,
        known: &[SimBackend],
        served: &[(String, u64)],
        failed: &[(String, u64)],
        mut pick_times: Vec<Duration>,
    ) -> Self {
        let count = |counts: &[(String, u64)], name: &str| {
            counts
                .iter()
                .find(|(backend, _)| backend == name)
                .map_or(0, |(_, count)| *count)
        };
        pick_times.sort_unstable();
        let shares = known
            .iter()
            .map(|b| Share {
                name: b.name.clone(),
                weight: b.weight,
                latency: b.latency,
                healthy: b.healthy,
                requests: count(served, &b.name),
                failed: count(failed, &b.name),
            })
            .collect();
        Report {
            plugin: policy.plugin_name().unwrap_or("built-in").to_owned(),
            requests: simulation.requests,
            shares,
            answered: policy.picks().answered(),
            fallbacks: policy.fallbacks().snapshot().to_vec(),
            pick_times,
            observe: policy.wants_feedback().then(|| {
                let feedback = policy.feedback();
                (feedback.delivered(), feedback.failures().to_vec())
            }),
            keys: None,
            timeline: super::Timeline::default(),
            events: Vec::new(),
            scenario: simulation.scenario.label(),
        }
    }

    /// Picks the plugin failed (every fallback but declining).
    pub fn failures(&self) -> u64 {
        self.fallbacks
            .iter()
            .filter(|(reason, _)| is_plugin_failure(*reason))
            .map(|(_, count)| count)
            .sum()
    }

    /// `observe` calls that failed.
    pub fn observe_failures(&self) -> u64 {
        self.observe
            .iter()
            .flat_map(|(_, failures)| failures.iter().map(|(_, count)| count))
            .sum()
    }

    /// The pick duration that `quantile` (0..=1) of the picks did not exceed.
    pub fn pick_quantile(&self, quantile: f64) -> Duration {
        let n = self.pick_times.len();
        if n == 0 {
            return Duration::ZERO;
        }
        let rank = (quantile * n as f64).ceil() as usize;
        self.pick_times[rank.clamp(1, n) - 1]
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "plugin {}, scenario {}, {} requests",
            self.plugin, self.scenario, self.requests
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "  {:<8} {:>6} {:>8} {:>9} {:>7} {:>7}",
            "backend", "weight", "latency", "requests", "failed", "share"
        )?;
        let total = self.shares.iter().map(|s| s.requests).sum::<u64>().max(1);
        for share in &self.shares {
            let part = share.requests as f64 / total as f64;
            let bar = "█".repeat((part * BAR_WIDTH as f64).round() as usize);
            let note = if share.healthy { "" } else { " (unhealthy)" };
            writeln!(
                f,
                "  {:<8} {:>6} {:>6}ms {:>9} {:>7} {:>6.1}% {bar}{note}",
                share.name,
                share.weight,
                share.latency.as_millis(),
                share.requests,
                share.failed,
                part * 100.0,
            )?;
        }
        writeln!(f)?;
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        writeln!(
            f,
            "picks: {} answered by the plugin; pick time p50 {:.1} µs, p90 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
            self.answered,
            us(self.pick_quantile(0.5)),
            us(self.pick_quantile(0.9)),
            us(self.pick_quantile(0.99)),
            us(self.pick_quantile(1.0)),
        )?;
        writeln!(f, "fallbacks: {}", counted(&self.fallbacks))?;
        if let Some(keys) = &self.keys {
            let percent = |n: u64| n as f64 * 100.0 / keys.keys.max(1) as f64;
            writeln!(
                f,
                "keys: of {} keys, {} ({:.1}%) were on {}, which left halfway, and {} of them moved; \
                 {} ({:.1}%) of the others moved too",
                keys.keys,
                keys.on_leaving,
                percent(keys.on_leaving),
                keys.left,
                keys.moved_from_leaving,
                keys.moved_others,
                percent(keys.moved_others),
            )?;
        }
        if let Some((heard, failures)) = &self.observe {
            writeln!(
                f,
                "observe: {heard} outcomes heard; failures: {}",
                counted(failures)
            )?;
        }
        Ok(())
    }
}

/// `reason count, ...` for the reasons counted at least once, or `none`.
fn counted(counts: &[(FallbackReason, u64)]) -> String {
    let counted: Vec<String> = counts
        .iter()
        .filter(|(_, count)| *count > 0)
        .map(|(reason, count)| format!("{} {count}", reason.label()))
        .collect();
    if counted.is_empty() {
        "none".to_owned()
    } else {
        counted.join(", ")
    }
}
