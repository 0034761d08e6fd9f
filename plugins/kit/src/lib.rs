//! The kit for writing a vane balancing policy in Rust.
//!
//! A policy is a type implementing [`Policy`] plus one line, `vane_plugin_kit::export_policy!(MyPolicy);`,
//! in a `cdylib` crate built for `wasm32-wasip2`. The kit owns the WIT bindings, keeps the policy's
//! state between calls, and offers the algorithms most policies need. It does no I/O of its own.
//! Without its `guest` feature it is plain Rust: the host uses [`WeightedSchedule`] for its built-in
//! round-robin, so the built-in and the shipped plugin spread traffic the same way.

#![cfg_attr(feature = "guest", allow(unsafe_code))] // wit-bindgen's generated ABI glue uses `unsafe`

#[cfg(feature = "guest")]
#[doc(hidden)]
pub mod guest;
mod least_loaded;
mod schedule;

#[cfg(feature = "guest")]
pub use guest::*;
pub use least_loaded::rank_least_loaded;
pub use schedule::WeightedSchedule;
