//! The kit for writing a vane balancing policy in Rust.
//!
//! A policy is a type implementing [`Policy`] plus one line, `vane_plugin_kit::export_policy!(MyPolicy);`,
//! in a `cdylib` crate built for `wasm32-wasip2`. The kit owns the WIT bindings, keeps the policy's
//! state between calls, reads the packed states a pick gets (`States`: eligibility and the
//! columns asked for in `Needs::columns`), and offers what most policies need: `eligible` backends, weighted
//! round-robin ([`WeightedSchedule`]), least-loaded and lowest-key ranking, a peak-sensitive
//! latency average ([`PeakEwma`]), a stable hash,
//! weighted rendezvous hashing and a consistent hash ring with bounded loads ([`HashRing`]) for
//! affinity, [`RequestKey`] for what to hash, and [`ConfigPairs`] for the config string. It does no
//! I/O of its own.
//! Without its `guest` feature it is plain Rust: the host uses [`WeightedSchedule`] for its built-in
//! round-robin, so the built-in and the shipped plugin spread traffic the same way.

#![cfg_attr(feature = "guest", allow(unsafe_code))] // wit-bindgen's generated ABI glue uses `unsafe`

#[cfg(feature = "allocator")]
#[allow(unsafe_code)] // an allocator hands out raw memory
#[cfg_attr(not(target_family = "wasm"), allow(dead_code))] // installed on wasm, tested natively
mod allocator;
mod config;
#[cfg(feature = "guest")]
#[doc(hidden)]
pub mod guest;
mod hash;
mod least_loaded;
mod peak_ewma;
#[cfg(feature = "guest")]
mod request_key;
mod ring;
mod schedule;

pub use config::ConfigPairs;
#[cfg(feature = "guest")]
pub use guest::*;
pub use hash::{hash64, mix64, rank_lowest, rank_rendezvous};
pub use least_loaded::{Weights, rank_least_loaded};
pub use peak_ewma::PeakEwma;
#[cfg(feature = "guest")]
pub use request_key::RequestKey;
pub use ring::{HashRing, has_room};
pub use schedule::WeightedSchedule;
