//! vane: a programmable HTTP load balancer whose policy is a sandboxed WebAssembly component.
//!
//! The map:
//! - [`config`]: the TOML file, checked into typed values with every error located;
//! - [`backend`]: the backend set and each backend's live statistics;
//! - [`balancer`]: the `Balancer` seam, the built-in round-robin and the fallback policy;
//! - [`plugin`]: the wasmtime runtime that loads and calls policy components;
//! - [`proxy`]: the HTTP server that forwards each request to the backend the policy picks;
//! - [`health`]: active health checks and passive ejection;
//! - [`admin`]: the admin listener: JSON status, Prometheus metrics and `POST /reload`;
//! - [`reload`]: config and plugin reloads, admitted before they are swapped in;
//! - [`histogram`]: lock-free latency histograms for the metrics;
//! - [`simulate`]: `vane plugin test`, a plugin run offline against simulated backends;
//! - [`app`]: wires the parts together and owns start-up and shutdown;
//! - [`demo`]: small loopback backends for `vane demo`;
//! - [`log_budget`]: rate limits for log lines that misbehaving plugins could otherwise flood.

pub mod admin;
pub mod app;
pub mod backend;
pub mod balancer;
pub mod config;
pub mod demo;
pub mod health;
pub mod histogram;
pub mod log_budget;
pub mod plugin;
pub mod proxy;
pub mod reload;
pub mod simulate;
