//! {{name}}: a vane balancing policy, as `vane plugin new` wrote it. Make it yours.
//!
//! Among the backends that may receive the request, the one with the fewest requests in flight
//! per unit of weight goes first; ties take turns. The answer ranks `ranked` backends (default
//! 2): the first choice, then where a retry goes. Config: `""` or `"ranked=N"`, N from 1 to 8.

use vane_plugin_kit::{BackendInfo, Columns, ConfigPairs, Needs, Policy, Request, States, Weights};

/// How many backends an answer ranks when the config does not say.
const DEFAULT_RANKED: usize = 2;

/// The most backends an answer may rank.
const MAX_RANKED: usize = 8;

/// The policy's state, built by `configure`; vane keeps one per worker thread.
struct Plugin {
    /// How many backends an answer ranks.
    ranked: usize,
}

impl Policy for Plugin {
    fn configure(config: &str, _backends: &[BackendInfo]) -> Result<(Self, Needs), String> {
        let pairs = ConfigPairs::parse(config, &["ranked"])?;
        let ranked = pairs.parsed("ranked")?.unwrap_or(DEFAULT_RANKED);
        if !(1..=MAX_RANKED).contains(&ranked) {
            return Err(format!("ranked={ranked}: expected 1 to {MAX_RANKED}"));
        }
        // The columns `pick` reads; `states` carries only these (and the state bits).
        let needs = vane_plugin_kit::needs(Columns::IN_FLIGHT | Columns::WEIGHT);
        Ok((Plugin { ranked }, needs))
    }

    fn pick(&mut self, request: &Request, states: &States<'_>, ranked: &mut Vec<u32>) {
        let weights = Weights::Each(states.column(Columns::WEIGHT));
        states.rank_least_loaded(request.sequence, weights, self.ranked, ranked);
    }
}

vane_plugin_kit::export_policy!(Plugin);
