//! vane's shipped p2c-ewma policy: the power of two random choices over a peak-sensitive
//! latency average times the load, as linkerd and Finagle balance.
//!
//! Each pick draws two distinct eligible backends at random and takes the one with the lower
//! cost, `latency × (in-flight + 1)`, the other being the retry; costs within `tolerance` of
//! each other count as equal (the first drawn is taken), so that equal backends whose latencies
//! jitter still share evenly. The latency is a [`PeakEwma`] of
//! what `observe` reports: a slow answer counts at once, fast ones pull it down over `decay`, and
//! a backend left alone drifts back toward being tried. A failed request (no answer, or a 5xx)
//! counts as `penalty` times the backend's average (at least its own latency), so a backend
//! failing fast does not draw traffic, and one failure among successes is soon forgotten. A backend
//! not heard from yet is costed at the mean of those that were. Drawing two instead of scanning
//! for the best keeps instances, which learn apart, from all piling on one backend.
//!
//! Config (`[policy] config`): `decay=MS` (default 10000), `penalty=FACTOR` (default 2) and
//! `tolerance=PERCENT` (default 20). The averages are kept by the plugin's own (WASI) clock,
//! real time even under `vane plugin test`, whose requests run in simulated time.

use std::time::Instant;

use vane_plugin_kit::{
    BackendInfo, Columns, ConfigPairs, Needs, Outcome, PeakEwma, Policy, Request, States,
};

/// The decay time of the latency average when the config gives none, in milliseconds.
const DEFAULT_DECAY_MS: u64 = 10_000;

/// How many times its average a failed request counts as when the config gives none.
const DEFAULT_PENALTY: u64 = 2;

/// How much lower, in percent, a cost must be to count as lower when the config does not say.
const DEFAULT_TOLERANCE_PERCENT: u64 = 20;

/// The latency a backend is costed at before any was heard of, in microseconds.
const UNKNOWN_LATENCY_US: f64 = 1_000.0;

/// The p2c-ewma policy's state: each backend's latency average, and the clock it is kept by.
pub struct P2cEwma {
    latency: Vec<PeakEwma>,
    /// When this instance started: the averages are timed in microseconds since.
    epoch: Instant,
    decay_us: f64,
    /// A failed request counts as this many times the backend's average latency.
    penalty: f64,
    /// A cost counts as lower only below the other's divided by this (1.2 for 20 %).
    tolerance: f64,
}

impl P2cEwma {
    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }
}

impl Policy for P2cEwma {
    fn configure(config: &str, backends: &[BackendInfo]) -> Result<(Self, Needs), String> {
        let pairs = ConfigPairs::parse(config, &["decay", "penalty", "tolerance"])?;
        let number = |key: &str, default: u64, what: &str| match pairs.get(key) {
            None => Ok(default),
            Some(value) => value
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0 || key == "tolerance")
                .ok_or_else(|| format!("{key}={value:?}: expected {what}")),
        };
        let policy = P2cEwma {
            latency: vec![PeakEwma::default(); backends.len()],
            epoch: Instant::now(),
            decay_us: number("decay", DEFAULT_DECAY_MS, "a number of milliseconds")? as f64
                * 1000.0,
            penalty: number("penalty", DEFAULT_PENALTY, "a whole factor")? as f64,
            tolerance: 1.0
                + number("tolerance", DEFAULT_TOLERANCE_PERCENT, "a whole percentage")? as f64
                    / 100.0,
        };
        let needs = Needs {
            feedback: true,
            ..vane_plugin_kit::needs(Columns::IN_FLIGHT)
        };
        Ok((policy, needs))
    }

    fn pick(&mut self, request: &Request, states: &States<'_>, ranked: &mut Vec<u32>) {
        let eligible = || vane_plugin_kit::eligible(states);
        let n = eligible().count();
        if n < 2 {
            ranked.extend(eligible());
            return;
        }
        // Two distinct draws from the request's sequence number, mixed.
        let draw = vane_plugin_kit::mix64(request.sequence);
        let first = (draw % n as u64) as usize;
        let second = (first + 1 + ((draw >> 32) % (n as u64 - 1)) as usize) % n;
        // Both in one more pass: the first-th and the second-th eligible backends.
        let (mut a, mut b) = (0, 0);
        for (k, index) in eligible().enumerate() {
            if k == first {
                a = index;
            }
            if k == second {
                b = index;
            }
        }

        let now = self.now_us();
        let latency = |index: u32| {
            let ewma = self.latency.get(index as usize)?;
            ewma.get(now, self.decay_us)
        };
        let (latency_a, latency_b) = (latency(a), latency(b));
        // A backend not heard from yet is costed at the mean of those that were.
        let unknown = if latency_a.is_none() || latency_b.is_none() {
            let (sum, count) = (0..self.latency.len() as u32)
                .filter_map(latency)
                .fold((0.0, 0u32), |(sum, count), l| (sum + l, count + 1));
            if count == 0 {
                UNKNOWN_LATENCY_US
            } else {
                sum / f64::from(count)
            }
        } else {
            UNKNOWN_LATENCY_US
        };
        let in_flight = states.column(Columns::IN_FLIGHT);
        let cost = |index: u32, latency: Option<f64>| {
            // At least 1 µs, so that in-flight counts between backends not heard from yet.
            latency.unwrap_or(unknown).max(1.0) * (in_flight[index as usize] as f64 + 1.0)
        };
        let (cost_a, cost_b) = (cost(a, latency_a), cost(b, latency_b));
        if cost_b * self.tolerance < cost_a {
            ranked.extend([b, a]);
        } else {
            ranked.extend([a, b]);
        }
    }

    fn observe(&mut self, outcomes: &[Outcome]) {
        let now = self.now_us();
        for outcome in outcomes {
            let Some(ewma) = self.latency.get_mut(outcome.backend as usize) else {
                continue;
            };
            let mut latency = f64::from(outcome.latency_us);
            if outcome.status == 0 || outcome.status >= 500 {
                let average = ewma.get(now, self.decay_us).unwrap_or(latency);
                latency = latency.max(average * self.penalty);
            }
            ewma.observe(latency, now, self.decay_us);
        }
    }
}

vane_plugin_kit::export_policy!(P2cEwma);
