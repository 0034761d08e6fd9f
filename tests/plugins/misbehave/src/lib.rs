//! A hostile policy for vane's tests: it misbehaves in the way its config string names.
//!
//! - `trap`: panics (a wasm trap) in every pick;
//! - `decline`: answers no backend;
//! - `out-of-range`: answers an index past the last backend;
//! - `refuse`: refuses the load in `configure`;
//! - anything else: behaves, always picking backend 0.

use vane_plugin_kit::{BackendInfo, BackendStates, Needs, Policy, Request};

/// The way this plugin misbehaves, from its config string.
enum Misbehave {
    Trap,
    Decline,
    OutOfRange(u32),
    Behave,
}

impl Policy for Misbehave {
    fn configure(config: &str, backends: &[BackendInfo]) -> Result<(Self, Needs), String> {
        let mode = match config {
            "trap" => Misbehave::Trap,
            "decline" => Misbehave::Decline,
            "out-of-range" => Misbehave::OutOfRange(backends.len() as u32 + 5),
            "refuse" => return Err("refused on purpose by the misbehave test plugin".into()),
            _ => Misbehave::Behave,
        };
        Ok((mode, vane_plugin_kit::needs_nothing()))
    }

    fn pick(&mut self, _request: &Request, _states: &BackendStates, ranked: &mut Vec<u32>) {
        match self {
            Misbehave::Trap => panic!("misbehave: trapping on purpose"),
            Misbehave::Decline => {}
            Misbehave::OutOfRange(index) => ranked.push(*index),
            Misbehave::Behave => ranked.push(0),
        }
    }
}

vane_plugin_kit::export_policy!(Misbehave);
