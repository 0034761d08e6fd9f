//! Wires a checked [`Config`] into a running vane: backends, policy (plugin or built-in), proxy
//! listener; owns start-up and shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::backend::{Backend, BackendSet};
use crate::balancer::Policy;
use crate::config::{Config, PolicyConfig};
use crate::plugin::{PluginBalancer, PluginEngine, PluginError};
use crate::proxy::{self, Shared};

/// How long open connections may take to finish after shutdown begins.
const DRAIN_DEADLINE: Duration = Duration::from_secs(30);

/// Why vane could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address from the config.
        address: SocketAddr,
        /// What the system said.
        source: std::io::Error,
    },
    /// The policy plugin could not be loaded.
    #[error(transparent)]
    Plugin(#[from] PluginError),
}

/// The backend set described by the config, generation 1.
pub fn backend_set(config: &Config) -> BackendSet {
    let backends = config
        .backends
        .iter()
        .map(|b| {
            Arc::new(Backend::new(
                b.name.clone(),
                b.address,
                b.weight,
                b.tags.clone(),
            ))
        })
        .collect();
    BackendSet::new(1, backends)
}

/// Loads the configured plugin against `set`, or the built-in round-robin if there is none.
pub fn load_policy(policy: Option<&PolicyConfig>, set: &BackendSet) -> Result<Policy, PluginError> {
    let Some(policy) = policy else {
        return Ok(Policy::builtin());
    };
    let engine = PluginEngine::new()?;
    let plugin = PluginBalancer::load(&engine, &policy.plugin, &policy.config, policy.limits, set)?;
    Ok(Policy::with_plugin(
        plugin.name().to_owned(),
        Box::new(plugin),
    ))
}

/// A vane that is serving; stop it with [`Running::shutdown`].
pub struct Running {
    /// The address the proxy listens on (useful when the config asked for port 0).
    pub proxy_address: SocketAddr,
    /// The state the proxy shares with its handlers.
    pub shared: Arc<Shared>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Running {
    /// Stops accepting, lets open requests finish (up to the drain deadline), and returns.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }

    /// Waits until the proxy stops, which happens only after [`Running::shutdown`] or a panic.
    pub async fn wait(&mut self) {
        let _ = (&mut self.task).await;
    }
}

/// Starts vane with `config`: loads the policy, binds the listener and starts serving.
pub async fn start(config: &Config) -> Result<Running, StartError> {
    let set = backend_set(config);
    let policy = load_policy(config.policy.as_ref(), &set)?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            address: config.listen,
            source,
        })?;
    let proxy_address = listener.local_addr().map_err(|source| StartError::Bind {
        address: config.listen,
        source,
    })?;
    let backends: Vec<String> = set
        .backends()
        .iter()
        .map(|b| format!("{}={}", b.name, b.address))
        .collect();
    tracing::info!(
        listen = %proxy_address,
        backends = %backends.join(","),
        policy = policy.plugin_name().unwrap_or("built-in round-robin"),
        "vane is serving"
    );

    if let Some(admin) = config.admin {
        tracing::warn!(%admin, "the admin API is not implemented yet; `admin` is ignored");
    }

    let shared = Shared::new(config.proxy, set, policy);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(proxy::serve(
        listener,
        shared.clone(),
        async move {
            let _ = stopped.await;
        },
        DRAIN_DEADLINE,
    ));
    Ok(Running {
        proxy_address,
        shared,
        stop,
        task,
    })
}
