//! The proxy: accepts HTTP/1.1 and h2c clients and forwards each request to the backend the
//! policy picks, streaming bodies both ways over pooled upstream connections.
//!
//! One request's way through the files: `server` accepts the connection and serves it, HTTP/1
//! with vane's own `http1` and h2c with hyper's; `service` checks the head and asks the policy;
//! `head` rewrites it for the backends; `attempts` tries the ranked backends one at a time on
//! `upstream` connections, retrying where it is safe; `body` streams the response back and
//! releases the in-flight count at its end; `error` is what the client gets when nothing could
//! be forwarded.

mod attempts;
mod body;
mod error;
mod grpc;
#[cfg(fuzzing)]
pub(crate) mod fuzz {
    //! The proxy's fuzz entry points, for `crate::fuzzing`.
    pub(crate) use super::head::checks::fuzz as head_rewrite;
    pub(crate) use super::http1::fuzz::{chunked_body, http1_request};
    pub(crate) use super::upstream::http1::response::checks::fuzz as http1_response;
}
mod head;
mod http1;
mod http2;
mod request_body;
mod server;
mod service;
mod transport;
mod tunnel;
mod upstream;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use tokio_util::sync::CancellationToken;

pub use body::ProxyBody;
pub use error::ProxyError;
pub use server::{Listener, serve};

use crate::config::{Config, EjectionConfig, ProxyConfig};
use crate::state::State;

/// What every request handler of one listener shares: the vane's [`State`], the proxy settings,
/// the pool of connections to backends and the request counter.
pub struct Proxy {
    state: Arc<State>,
    config: ProxyConfig,
    ejection: EjectionConfig,
    upstream: upstream::Upstream,
    /// The sequence number of the next request.
    sequence: AtomicU64,
}

impl Proxy {
    /// A proxy for `state` with the `[proxy]` and `[ejection]` settings of `config`.
    pub fn new(state: Arc<State>, config: &Config) -> Arc<Self> {
        Arc::new(Proxy {
            upstream: upstream::Upstream::new(
                upstream::UpstreamLimits {
                    connect_timeout: config.proxy.connect_timeout,
                    idle_timeout: config.proxy.upstream_idle_timeout,
                    max_header_list_size: u32::try_from(config.proxy.max_header_size)
                        .unwrap_or(u32::MAX),
                },
                state.clock().clone(),
            ),
            state,
            config: config.proxy,
            ejection: config.ejection,
            sequence: AtomicU64::new(0),
        })
    }

    /// Closes pooled connections left idle past `upstream_idle_timeout`, about once per that
    /// timeout (at most once a second), until `stop` is cancelled.
    pub async fn close_idle_connections(self: Arc<Self>, stop: CancellationToken) {
        self.upstream.sweep(stop).await;
    }
}
