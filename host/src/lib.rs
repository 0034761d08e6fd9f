//! vane: a programmable HTTP load balancer whose policy is a sandboxed WebAssembly component.
//!
//! The map, from the top down; a module imports only modules below it (see
//! `docs/architecture.md`):
//! - [`app`]: wires the parts together; owns start-up, the clock, every task and shutdown;
//! - [`admin`]: the admin listener: JSON status, Prometheus metrics and `POST /reload`;
//! - [`reload`]: config and plugin reloads, admitted before they are swapped in;
//! - [`proxy`]: the HTTP server that forwards each request to the backend the policy picks;
//! - [`health`]: active health checks, a probe loop over the current backend set;
//! - [`dial`]: opening a connection to a backend (TCP, TLS, the HTTP handshake of its protocol),
//!   for the proxy and the health checks;
//! - [`state`]: what proxy, health, admin and reload share: the live set and policy, the retry
//!   budget, the client connection counts, the clock;
//! - [`simulate`]: `vane plugin test`, a plugin run offline against simulated backends;
//! - [`policy`]: the policy in force: the plugin's answer checked, or the built-in fallback, with
//!   the plugin's circuit breaker;
//! - [`plugin`]: the wasmtime runtime that loads and calls policy components;
//! - [`balancer`]: the `Balancer` seam and the built-in round-robin;
//! - [`backend`]: the backend set and each backend's live statistics and health;
//! - [`demo`]: small loopback backends for `vane demo`;
//! - [`tls`]: TLS listeners' certificates (chosen by SNI, replaced by reloads) and handshakes,
//!   and the client side of TLS to backends;
//! - [`config`]: the TOML file, checked into plain typed values with every error located;
//! - [`clock`], [`histogram`], [`log_budget`], [`fd_limit`]: time, latency histograms, log rate
//!   limits and the open-file limit.

pub mod admin;
pub mod app;
pub mod backend;
pub mod balancer;
pub mod clock;
pub mod config;
pub mod demo;
pub mod dial;
pub mod discovery;
pub mod fd_limit;
pub mod file_watch;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
pub mod health;
pub mod histogram;
pub mod log_budget;
pub mod plugin;
pub mod policy;
pub mod proxy;
pub mod reload;
pub mod scaffold;
pub mod simulate;
pub mod stall;
pub mod state;
pub mod tls;
