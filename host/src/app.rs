//! Wires a checked [`Config`] into a running vane: backends, policy (plugin or built-in), proxy
//! listener, health checks, plugin watch and admin listener; owns start-up and shutdown.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::admin::serve_admin;
use crate::backend::{Backend, BackendSet};
use crate::balancer::Policy;
use crate::config::{Config, ConfigError, PolicyConfig};
use crate::health::run_health_checks;
use crate::plugin::{PluginBalancer, PluginCache, PluginEngine, PluginError};
use crate::proxy::{self, Shared};
use crate::reload::{PluginWatch, Reloader, follow_changes};

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
    /// The config file could not be read or has errors.
    #[error(transparent)]
    Config(#[from] ConfigError),
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

/// Loads the configured plugin against `set` in `engine` (made here if `None`), or the
/// built-in round-robin if there is none.
pub fn load_policy(
    engine: Option<&PluginEngine>,
    policy: Option<&PolicyConfig>,
    set: &BackendSet,
) -> Result<Policy, PluginError> {
    let Some(policy) = policy else {
        return Ok(Policy::builtin());
    };
    let made;
    let engine = match engine {
        Some(engine) => engine,
        None => {
            made = plugin_engine(policy.cache.as_deref())?;
            &made
        }
    };
    let plugin = PluginBalancer::load(engine, &policy.plugin, &policy.config, policy.limits, set)?;
    Ok(Policy::with_plugin(
        plugin.info(),
        Box::new(plugin),
        policy.breaker,
    ))
}

/// The plugin engine, keeping compiled plugins in the cache folder `cache` if it can be used
/// (if not, vane says why and compiles every time).
pub fn plugin_engine(cache: Option<&Path>) -> Result<PluginEngine, PluginError> {
    let cache = cache.and_then(|folder| match PluginCache::open(folder) {
        Ok(cache) => Some(cache),
        Err(err) => {
            tracing::warn!(error = %err, "plugins will be compiled on every load");
            None
        }
    });
    Ok(PluginEngine::new()?.with_cache(cache))
}

/// A vane that is serving; stop it with [`Running::shutdown`].
pub struct Running {
    /// The address the proxy listens on (useful when the config asked for port 0).
    pub proxy_address: SocketAddr,
    /// The address the admin API listens on, if the config asked for one.
    pub admin_address: Option<SocketAddr>,
    /// The state the proxy shares with its handlers.
    pub shared: Arc<Shared>,
    /// Reloads the config and the plugin (SIGHUP, `POST /reload`, file watch).
    pub reloader: Arc<Reloader>,
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

impl Running {
    /// Stops accepting, lets open requests finish (up to the drain timeout), stops the health
    /// checks and the admin listener, and returns.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        self.wait().await;
    }

    /// Waits until vane stops, which happens only after [`Running::shutdown`] or a panic.
    pub async fn wait(&mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Starts vane with `config`: loads the policy, binds the listeners, and starts serving,
/// checking health and watching the plugin file. Without a config file, a reload re-reads
/// only the plugin.
pub async fn start(config: &Config) -> Result<Running, StartError> {
    start_with(config.clone(), None).await
}

/// Starts vane with the config file at `path`, which reloads read again.
pub async fn start_from_file(path: &Path) -> Result<Running, StartError> {
    let config = Config::load(path)?;
    start_with(config, Some(path.to_owned())).await
}

async fn start_with(config: Config, path: Option<PathBuf>) -> Result<Running, StartError> {
    let config = &config;
    // Watching starts before the plugin is read, so no change to it goes unseen.
    let (plugin_watch, plugin_changes) = PluginWatch::start(config);
    let set = backend_set(config);
    let engine = match &config.policy {
        Some(policy) => Some(plugin_engine(policy.cache.as_deref())?),
        None => None,
    };
    let policy = load_policy(engine.as_ref(), config.policy.as_ref(), &set)?;
    let (listener, proxy_address) = bind(config.listen).await?;
    let admin = match config.admin {
        Some(address) => Some(bind(address).await?),
        None => None,
    };
    let backends: Vec<String> = set
        .backends()
        .iter()
        .map(|b| format!("{}={}", b.name, b.address))
        .collect();
    tracing::info!(
        listen = %proxy_address,
        admin = ?admin.as_ref().map(|(_, address)| *address),
        backends = %backends.join(","),
        policy = policy.plugin_name().unwrap_or("built-in round-robin"),
        health_checks = config.health.is_some(),
        "vane is serving"
    );

    let shared = Shared::new(config, set, policy);
    let reloader = Reloader::new(shared.clone(), config.clone(), path, engine, plugin_watch);
    let stop = CancellationToken::new();
    let mut tasks = JoinSet::new();
    tasks.spawn(proxy::serve(
        listener,
        shared.clone(),
        stop.clone().cancelled_owned(),
        config.proxy.drain_timeout,
    ));
    if let Some(health) = &config.health {
        tasks.spawn(run_health_checks(
            shared.clone(),
            health.clone(),
            stop.clone(),
        ));
    }
    tasks.spawn(follow_changes(
        plugin_changes,
        reloader.clone(),
        stop.clone(),
    ));
    let admin_address = admin.as_ref().map(|(_, address)| *address);
    if let Some((listener, _)) = admin {
        tasks.spawn(serve_admin(listener, reloader.clone(), stop.clone()));
    }
    Ok(Running {
        proxy_address,
        admin_address,
        shared,
        reloader,
        stop,
        tasks,
    })
}

/// Binds a listener on `address`, answering the address it got (port 0 becomes a real port).
async fn bind(address: SocketAddr) -> Result<(TcpListener, SocketAddr), StartError> {
    let bind_error = |source| StartError::Bind { address, source };
    let listener = TcpListener::bind(address).await.map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    Ok((listener, bound))
}
