//! The simulated situations a plugin is tested in.

use std::time::Duration;

use super::{Change, SimBackend};

/// How the simulated backends differ, and what changes during the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Equal backends: same weight, same latency, all healthy.
    Equal,
    /// The last backend answers ten times slower than the others.
    OneSlow,
    /// The last backend is out of rotation (failed health checks).
    OneUnhealthy,
    /// Weights 1, 2 and 5, repeating.
    Weights,
    /// A backend joins after a third of the requests, and the first leaves after two thirds.
    Churn,
    /// Each request carries one of 1 000 keys (client address 10.0.x.y, header `x-user:
    /// user-N`, cookie `session=N`), and the last backend leaves halfway: which keys moved.
    Keys,
    /// The last backend is tagged `canary`.
    Canary,
    /// Backends tagged `zone=a` and `zone=b` in turn; those in zone a are out of rotation from
    /// a third of the requests to two thirds.
    Zones,
    /// The last backend answers 503 to 30 % of its requests, fast.
    Failing,
    /// The last backend answers nothing (as if it had died, still in rotation) from a third of
    /// the requests to two thirds, then recovers.
    Outage,
}

/// The keys of the `keys` scenario.
pub(crate) const KEYS: u64 = 1000;

/// The zone of backend `i` in the `zones` scenario: a, b, a, b...
fn zone(i: usize) -> &'static str {
    if i.is_multiple_of(2) { "a" } else { "b" }
}

/// The latency of an ordinary simulated backend.
const BASE_LATENCY: Duration = Duration::from_millis(10);

impl Scenario {
    /// The scenario's name, as `--scenario` takes it.
    pub fn label(self) -> &'static str {
        match self {
            Scenario::Equal => "equal",
            Scenario::OneSlow => "one-slow",
            Scenario::OneUnhealthy => "one-unhealthy",
            Scenario::Weights => "weights",
            Scenario::Churn => "churn",
            Scenario::Keys => "keys",
            Scenario::Canary => "canary",
            Scenario::Zones => "zones",
            Scenario::Failing => "failing",
            Scenario::Outage => "outage",
        }
    }

    /// The latency of an ordinary backend in this scenario.
    pub(crate) fn base_latency(self) -> Duration {
        BASE_LATENCY
    }

    /// The backends at the start.
    pub(crate) fn backends(self, count: usize) -> Vec<SimBackend> {
        let count = count.max(1);
        let backend = |i: usize| SimBackend {
            name: format!("b{i}"),
            weight: 1,
            latency: BASE_LATENCY,
            healthy: true,
            tags: Vec::new(),
            fail_percent: 0,
        };
        let mut backends: Vec<SimBackend> = (0..count).map(backend).collect();
        let last = count - 1;
        match self {
            Scenario::Equal | Scenario::Churn | Scenario::Keys | Scenario::Outage => {}
            Scenario::Failing => backends[last].fail_percent = 30,
            Scenario::Canary => backends[last].tags = vec!["canary".to_owned()],
            Scenario::Zones => {
                for (i, b) in backends.iter_mut().enumerate() {
                    b.tags = vec![format!("zone={}", zone(i))];
                }
            }
            Scenario::OneSlow => backends[last].latency = BASE_LATENCY * 10,
            Scenario::OneUnhealthy => backends[last].healthy = false,
            Scenario::Weights => {
                for (i, b) in backends.iter_mut().enumerate() {
                    b.weight = [1, 2, 5][i % 3];
                }
            }
        }
        backends
    }

    /// The changes during a run of `requests` with `count` backends at the start.
    pub(crate) fn changes(self, count: usize, requests: u64) -> Vec<(u64, Change)> {
        let count = count.max(1);
        match self {
            Scenario::Churn => {
                let joining = SimBackend {
                    name: format!("b{count}"),
                    weight: 1,
                    latency: BASE_LATENCY,
                    healthy: true,
                    tags: Vec::new(),
                    fail_percent: 0,
                };
                vec![
                    (requests / 3, Change::Add(joining)),
                    (requests * 2 / 3, Change::Remove("b0".to_owned())),
                ]
            }
            Scenario::Keys => vec![(requests / 2, Change::Remove(format!("b{}", count - 1)))],
            Scenario::Zones => {
                let zone_a = || (0..count).filter(|&i| zone(i) == "a");
                let mut changes: Vec<(u64, Change)> = zone_a()
                    .map(|i| (requests / 3, Change::Health(format!("b{i}"), false)))
                    .collect();
                changes.extend(
                    zone_a().map(|i| (requests * 2 / 3, Change::Health(format!("b{i}"), true))),
                );
                changes
            }
            Scenario::Outage => {
                let last = format!("b{}", count - 1);
                vec![
                    (requests / 3, Change::Fail(last.clone(), 100)),
                    (requests * 2 / 3, Change::Fail(last, 0)),
                ]
            }
            _ => Vec::new(),
        }
    }
}
