//! The example strategy "fastest", in Rust with vane's kit (the same strategy is in
//! `examples/python`, `examples/javascript` and `examples/c`):
//!
//! - a request whose pin header (`x-vane-pin`, or `header=NAME` in the config) names a healthy
//!   backend goes to that backend first;
//! - then the healthy backends by lowest latency EWMA per unit of weight, ties rotating with the
//!   request's sequence number; at most three in all.

use vane_plugin_kit::{BackendInfo, Columns, ConfigPairs, Needs, Policy, Request, States};

/// The pin header when the config names none.
const DEFAULT_HEADER: &str = "x-vane-pin";

/// How many backends a pick ranks: the first choice and two to retry on.
const RANKED: usize = 3;

struct Fastest {
    header: String,
    names: Vec<String>,
}

impl Policy for Fastest {
    fn configure(config: &str, backends: &[BackendInfo]) -> Result<(Self, Needs), String> {
        let pairs = ConfigPairs::parse(config, &["header"])?;
        let header = pairs.get("header").unwrap_or(DEFAULT_HEADER).to_owned();
        let needs = Needs {
            headers: vec![header.clone()],
            ..vane_plugin_kit::needs(Columns::LATENCY_EWMA_US | Columns::WEIGHT)
        };
        let names = backends.iter().map(|b| b.name.clone()).collect();
        Ok((Fastest { header, names }, needs))
    }

    fn pick(&mut self, request: &Request, states: &States<'_>, ranked: &mut Vec<u32>) {
        let pinned = vane_plugin_kit::header_values(request, &self.header).find_map(|value| {
            let index = self.names.iter().position(|name| name == value)?;
            states.eligible(index).then_some(index as u32)
        });
        ranked.extend(pinned);
        let n = states.len() as u64;
        let start = request.sequence % n.max(1);
        let latency = states.column(Columns::LATENCY_EWMA_US);
        let weight = states.column(Columns::WEIGHT);
        let score = |i: usize| latency[i] * 1000 / weight[i].max(1);
        let rotation = |i: usize| (i as u64 + n - start) % n;
        let room = RANKED - ranked.len();
        let eligible = |i: usize| states.eligible(i);
        vane_plugin_kit::rank_lowest(
            states.len(),
            eligible,
            room,
            |i| (score(i), rotation(i)),
            ranked,
        );
    }
}

vane_plugin_kit::export_policy!(Fastest);
