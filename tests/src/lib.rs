//! The harness for vane's end-to-end tests: real backends on loopback, vane started from a
//! config, the plugins built from this repository, and a plain HTTP client.

pub mod backend;
pub mod client;
pub mod command;
pub mod files;
pub mod load;
pub mod plugins;
pub mod proxy;
pub mod raw;
pub mod recorder;

pub use backend::{Backend, BackendBuilder};
pub use client::Client;
pub use proxy::Vane;
