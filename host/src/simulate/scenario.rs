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
        };
        let mut backends: Vec<SimBackend> = (0..count).map(backend).collect();
        let last = count - 1;
        match self {
            Scenario::Equal | Scenario::Churn => {}
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
        if self != Scenario::Churn {
            return Vec::new();
        }
        let joining = SimBackend {
            name: format!("b{}", count.max(1)),
            weight: 1,
            latency: BASE_LATENCY,
            healthy: true,
        };
        vec![
            (requests / 3, Change::Add(joining)),
            (requests * 2 / 3, Change::Remove("b0".to_owned())),
        ]
    }
}
