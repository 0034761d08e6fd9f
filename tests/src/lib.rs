//! The harness for vane's end-to-end tests: real backends on loopback, vane started from a
//! config, the plugins built from this repository, and a plain HTTP client.

pub mod alone;
pub mod backend;
pub mod client;
pub mod command;
pub mod dns;
pub mod files;
pub mod grpc;
pub mod load;
pub mod plugins;
pub mod proxy;
pub mod raw;
pub mod recorder;
pub mod tls;
pub mod websocket;

pub use backend::{Backend, BackendBuilder};
pub use client::Client;
pub use proxy::Vane;

/// Waits until `done` holds, such as vane having seen what a client did; fails after 10 s
/// (something that never happened), naming `what`.
pub async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
