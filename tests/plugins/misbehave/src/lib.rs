//! A hostile policy for vane's tests: it misbehaves in the way its config string names.
//!
//! - `trap`: panics (a wasm trap) in every pick;
//! - `decline`: answers no backend;
//! - `out-of-range`: answers an index past the last backend;
//! - `refuse`: refuses the load in `configure`;
//! - `loop`: never returns from pick;
//! - `sleep`: sleeps 50 ms in every pick through the WASI clock;
//! - `print`: writes a line to stdout and stderr, then picks backend 0;
//! - anything else: behaves, always picking backend 0.

use vane_plugin_kit::{BackendInfo, BackendStates, Needs, Policy, Request};

/// The way this plugin misbehaves, from its config string.
enum Misbehave {
    Trap,
    Decline,
    OutOfRange(u32),
    Loop,
    Sleep,
    Print,
    Behave,
}

impl Policy for Misbehave {
    fn configure(config: &str, backends: &[BackendInfo]) -> Result<(Self, Needs), String> {
        let mode = match config {
            "trap" => Misbehave::Trap,
            "decline" => Misbehave::Decline,
            "out-of-range" => Misbehave::OutOfRange(backends.len() as u32 + 5),
            "loop" => Misbehave::Loop,
            "sleep" => Misbehave::Sleep,
            "print" => Misbehave::Print,
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
            Misbehave::Loop => loop {
                std::hint::black_box(&ranked);
            },
            Misbehave::Sleep => {
                std::thread::sleep(std::time::Duration::from_millis(50));
                ranked.push(0);
            }
            Misbehave::Print => {
                println!("misbehave: a line on stdout");
                eprintln!("misbehave: a line on stderr");
                ranked.push(0);
            }
            Misbehave::Behave => ranked.push(0),
        }
    }
}

vane_plugin_kit::export_policy!(Misbehave);
