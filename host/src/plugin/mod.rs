//! The plugin runtime: a balancing policy compiled to a WebAssembly component, run in wasmtime.
//!
//! Three depths, named for what they are: the [`PluginEngine`] (one per process: engine, linker,
//! epoch ticker), the [`PluginBalancer`] (one loaded plugin: its compiled component, config and a
//! pool of instances), and an instance (one Store with its limits, used by one thread at a time).
//! This is the only module that touches wasmtime; its generated bindings stay private here.

mod balancer;
mod bindings;
mod cache;
mod cpu_budget;
mod engine;
mod error;
mod fit;
mod heard;
mod instance;
mod limits;
mod naming;
mod never_block;
mod output;
#[cfg(fuzzing)]
pub(crate) use cache::fuzz as fuzz_cache_entry;
#[cfg(fuzzing)]
pub(crate) use fit::fuzz as fuzz_component_fit;

pub use balancer::{PluginBalancer, PluginInfo, Snapshot, file_sha256};
pub use cache::{CacheError, PluginCache};
pub use engine::PluginEngine;
pub use error::PluginError;

/// The version of vane's WIT package (`vane:balancer`) this vane speaks; a plugin must be
/// built against it.
pub const WIT_VERSION: &str = fit::PACKAGE_VERSION;

/// The stack size of the threads that call plugins. A call runs on the caller's stack (not on
/// a fiber of its own), and wasmtime lets a plugin use up to 512 KiB of it beyond the caller's
/// frames: room for both, so that a plugin recursing too deep traps instead of reaching the
/// thread's guard page.
pub const CALLER_STACK_SIZE: usize = 4 << 20;

/// vane's version and the plugin contract it speaks: `0.1.0 (plugins: vane:balancer@0.3.0)`.
pub const VERSION_LINE: &str = fit::VERSION_LINE;
