//! Wires a checked [`Config`] into a running vane: backends, policy (plugin or built-in), proxy
//! listeners (their TLS certificates read), health checks, plugin watch and admin listener.
//! Owns start-up, the clock, every background task, and shutdown.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::admin::serve_admin;
use crate::backend::{BackendSet, BackendTlsError};
use crate::clock::Clock;
use crate::config::{Config, ConfigError, ListenerConfig};
use crate::discovery::{Discovery, follow_members};
use crate::fd_limit;
use crate::file_watch::{FileWatch, Watched};
use crate::health::run_health_checks;
use crate::plugin::{PluginEngine, PluginError};
use crate::policy::Policy;
use crate::proxy::{self, Proxy};
use crate::reload::{Reloader, follow_changes, watched_files};
use crate::state::{State, deliver_feedback, sample_recent};
use crate::tls::{Certificates, TlsError, TlsListener};

/// Why vane could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A TLS listener's certificates could not be used.
    #[error("listener {address}: {error}")]
    Tls {
        /// The listener's address.
        address: SocketAddr,
        /// What is wrong, naming the file (part of the message, not a source of its own).
        error: TlsError,
    },
    /// A backend's TLS files could not be used.
    #[error(transparent)]
    BackendTls(#[from] BackendTlsError),
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

/// A vane that is serving; stop it with [`Running::shutdown`].
pub struct Running {
    /// The address the proxy's first listener listens on (useful when the config asked for
    /// port 0).
    pub proxy_address: SocketAddr,
    /// The address of every listener, in the config's order.
    pub listener_addresses: Vec<SocketAddr>,
    /// The address the admin API listens on, if the config asked for one.
    pub admin_address: Option<SocketAddr>,
    /// The live backend set and policy, the retry budget and the clock.
    pub state: Arc<State>,
    /// Reloads the config and the plugin (SIGHUP, `POST /reload`, file watch).
    pub reloader: Arc<Reloader>,
    stop: CancellationToken,
    tasks: JoinSet<()>,
    /// `[proxy] shutdown_grace`: how long to go on serving, not ready, before stopping.
    shutdown_grace: Duration,
    /// The admin API, which outlives the other tasks so that `/ready` says 503 to the end (in a
    /// set of its own, so that dropping `Running` stops it as it stops the others).
    admin: Option<(JoinSet<()>, CancellationToken)>,
    /// Cuts the shutdown grace short (a second signal).
    skip_grace: CancellationToken,
    /// The watch on the config file vane was started from (none without one).
    _config_watch: FileWatch,
    /// Stops the tasks not held in `tasks` (discovery's) when `Running` is dropped.
    _stop_when_dropped: tokio_util::sync::DropGuard,
}

impl Running {
    /// Says it is no longer ready (`GET /ready` answers 503) and goes on serving for
    /// `shutdown_grace`; then stops accepting, lets open requests finish (up to the drain
    /// timeout), stops every background task (health checks, plugin watch, idle-connection
    /// sweep) and last the admin API, and returns.
    pub async fn shutdown(mut self) {
        self.state.begin_shutdown();
        if !self.shutdown_grace.is_zero() {
            tracing::info!(
                grace = %humantime::format_duration(self.shutdown_grace),
                "shutting down: not ready (GET /ready answers 503), serving on for the grace"
            );
            tokio::select! {
                () = tokio::time::sleep(self.shutdown_grace) => {}
                () = self.skip_grace.cancelled() => {
                    tracing::info!("the rest of the grace skipped: stopping now");
                }
            }
        }
        self.stop.cancel();
        self.wait().await;
        if let Some((mut admin, stop)) = self.admin.take() {
            stop.cancel();
            while admin.join_next().await.is_some() {}
        }
    }

    /// What cuts [`Running::shutdown`]'s grace short when cancelled (as a second SIGTERM does).
    pub fn grace_skipper(&self) -> CancellationToken {
        self.skip_grace.clone()
    }

    /// Waits until vane stops, which happens only after [`Running::shutdown`] or a panic.
    pub async fn wait(&mut self) {
        while self.tasks.join_next().await.is_some() {}
    }

    /// Waits until one of vane's tasks (the proxy's listeners, the health checks, a watch...)
    /// ends before it was asked to stop, which only a fault does (a panic), and answers what
    /// happened: such a vane still answers `GET /live`, but no longer does its work, so it
    /// must stop and be restarted (`vane run` exits with an error). Never resolves otherwise.
    pub async fn task_failure(&mut self) -> String {
        loop {
            let Some(ended) = self.tasks.join_next().await else {
                return std::future::pending().await;
            };
            if self.stop.is_cancelled() {
                continue;
            }
            return match ended {
                Err(err) if err.is_panic() => {
                    let panic = err.into_panic();
                    let message = panic
                        .downcast_ref::<&str>()
                        .map(|text| (*text).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "(no message)".to_owned());
                    format!("a task of vane's panicked: {message}")
                }
                Err(err) => format!("a task of vane's was cancelled: {err}"),
                Ok(()) => "a task of vane's ended before vane was asked to stop".to_owned(),
            };
        }
    }
}

/// Starts vane with `config`: loads the policy, binds the listeners, and starts serving,
/// checking health and watching the plugin file. Without a config file, a reload re-reads
/// only the plugin.
pub async fn start(config: &Config) -> Result<Running, StartError> {
    start_with(config.clone(), None, Clock::new()).await
}

/// Starts vane with the config file at `path`, which reloads read again.
pub async fn start_from_file(path: &Path) -> Result<Running, StartError> {
    let config = Config::load(path)?;
    start_with(config, Some(path.to_owned()), Clock::new()).await
}

/// Starts vane with the config file at `path`, which reloads read again, keeping time by
/// `clock` (see [`start_with_clock`]).
pub async fn start_from_file_with_clock(path: &Path, clock: Clock) -> Result<Running, StartError> {
    let config = Config::load(path)?;
    start_with(config, Some(path.to_owned()), clock).await
}

/// Starts vane with `config` keeping time by `clock` (ejections, the plugin's breaker, log
/// budgets, idle connections), as tests that step through time do; timeouts stay on tokio's
/// timers.
pub async fn start_with_clock(config: &Config, clock: Clock) -> Result<Running, StartError> {
    start_with(config.clone(), None, clock).await
}

async fn start_with(
    config: Config,
    path: Option<PathBuf>,
    clock: Clock,
) -> Result<Running, StartError> {
    let config = &config;
    // Watching starts before the plugin and the certificates are read, so no change to them
    // goes unseen.
    let watch = |watched| FileWatch::start(watched, watched_files(config, watched));
    let (plugin_watch, plugin_changes) = watch(Watched::Plugin);
    let (certificate_watch, certificate_changes) = watch(Watched::Certificates);
    // The config file itself with `watch_config`, for as long as vane runs (a reload does not
    // move it).
    let config_file = path
        .iter()
        .filter(|_| config.watch_config)
        .cloned()
        .collect();
    let (config_watch, config_changes) = FileWatch::start(Watched::Config, config_file);
    let stop = CancellationToken::new();
    // Until vane is running, a failure to start stops every task started so far.
    let stop_on_failure = stop.clone().drop_guard();
    // Groups are looked up before the set is built, so that vane starts with their members.
    let discovery = Discovery::new();
    let first = discovery.look_up_new(config).await;
    let set =
        BackendSet::from_backends(&discovery.wanted(config, &first), config.slow_start, &clock)?;
    discovery.follow_config(config, first, &stop);
    let engine = match &config.policy {
        Some(policy) => Some(PluginEngine::with_cache_folder(policy.cache.as_deref())?),
        None => None,
    };
    let policy = Policy::load(engine.as_ref(), config.policy.as_ref(), &set, &clock)?;
    fd_limit::raise(config.proxy.max_connections);
    let certificates = read_certificates(config)?;
    let mut listeners = Vec::new();
    let mut listener_addresses = Vec::new();
    let mut tls = Vec::new();
    for (listener, certificates) in config.listeners.iter().zip(certificates) {
        let (tcp, address) = bind(listener.address).await?;
        let listener_tls = certificates.map(|certificates| TlsListener::new(address, certificates));
        tls.push(listener_tls.clone());
        listeners.push(proxy::Listener {
            tcp,
            tls: listener_tls,
        });
        listener_addresses.push(address);
    }
    let proxy_address = listener_addresses[0];
    let admin = match config.admin {
        Some(address) => Some(bind(address).await?),
        None => None,
    };
    if let Some(token) = config.admin_token.as_ref().filter(|t| t.readable_by_others) {
        tracing::warn!(
            file = %token.path.display(),
            "the admin token file is readable by other users; chmod 600 it"
        );
    }
    let backends: Vec<String> = set
        .backends()
        .iter()
        .map(|b| format!("{}={}", b.name, b.address))
        .collect();
    let join = |addresses: Vec<&SocketAddr>| {
        let addresses: Vec<String> = addresses.iter().map(ToString::to_string).collect();
        addresses.join(",")
    };
    let tls_addresses = listener_addresses
        .iter()
        .zip(&tls)
        .filter(|(_, tls)| tls.is_some());
    tracing::info!(
        listen = %join(listener_addresses.iter().collect()),
        tls = %join(tls_addresses.map(|(address, _)| address).collect()),
        admin = ?admin.as_ref().map(|(_, address)| *address),
        admin_token = config.admin_token.is_some(),
        backends = %backends.join(","),
        policy = policy.plugin_name().unwrap_or("built-in round-robin"),
        health_checks = config.health.is_some(),
        "vane is serving"
    );

    let state = State::new(set, policy, config.retries, clock);
    let tls: Vec<Arc<TlsListener>> = tls.into_iter().flatten().collect();
    let reloader = Reloader::new(
        state.clone(),
        (config.clone(), path),
        engine,
        [plugin_watch, certificate_watch],
        tls,
        (discovery.clone(), stop.clone()),
    );
    let proxy = Proxy::new(state.clone(), config);
    let mut tasks = JoinSet::new();
    let members_reloader = reloader.clone();
    tasks.spawn(follow_members(discovery, stop.clone(), move || {
        let reloader = members_reloader.clone();
        async move { reloader.update_members().await }
    }));
    tasks.spawn(proxy::serve(proxy.clone(), listeners, stop.clone()));
    tasks.spawn(proxy.close_idle_connections(stop.clone()));
    tasks.spawn(sample_recent(state.clone(), stop.clone()));
    tasks.spawn(deliver_feedback(state.clone(), stop.clone()));
    if let Some(health) = &config.health {
        tasks.spawn(run_health_checks(
            state.clone(),
            health.clone(),
            config.proxy.max_header_size,
            stop.clone(),
        ));
    }
    for (changes, watched) in [
        (plugin_changes, Watched::Plugin),
        (certificate_changes, Watched::Certificates),
        (config_changes, Watched::Config),
    ] {
        tasks.spawn(follow_changes(
            changes,
            watched,
            reloader.clone(),
            stop.clone(),
        ));
    }
    let admin_address = admin.as_ref().map(|(_, address)| *address);
    let admin = admin.map(|(listener, _)| {
        let admin_stop = CancellationToken::new();
        let mut task = JoinSet::new();
        task.spawn(serve_admin(
            listener,
            state.clone(),
            reloader.clone(),
            admin_stop.clone(),
        ));
        (task, admin_stop)
    });
    Ok(Running {
        proxy_address,
        listener_addresses,
        admin_address,
        state,
        reloader,
        stop,
        tasks,
        shutdown_grace: config.proxy.shutdown_grace,
        admin,
        skip_grace: CancellationToken::new(),
        _config_watch: config_watch,
        _stop_when_dropped: stop_on_failure,
    })
}

/// The certificates of each listener of `config` (`None` for a plaintext one), read before
/// anything is bound.
fn read_certificates(config: &Config) -> Result<Vec<Option<Certificates>>, StartError> {
    let read = |listener: &ListenerConfig| {
        let Some(tls) = &listener.tls else {
            return Ok(None);
        };
        let address = listener.address;
        let certificates =
            Certificates::load(tls).map_err(|error| StartError::Tls { address, error })?;
        certificates.warn_of_expiry();
        Ok(Some(certificates))
    };
    config.listeners.iter().map(read).collect()
}

/// Binds a listener on `address`, answering the address it got (port 0 becomes a real port).
async fn bind(address: SocketAddr) -> Result<(TcpListener, SocketAddr), StartError> {
    let bind_error = |source| StartError::Bind { address, source };
    let listener = TcpListener::bind(address).await.map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    Ok((listener, bound))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_that_panics_is_a_failure_and_stopping_is_not() {
        let config: Config =
            "listen = \"127.0.0.1:0\"\n[[backends]]\nname = \"a\"\naddress = \"127.0.0.1:9\"\n"
                .parse()
                .unwrap();
        let mut running = start(&config).await.unwrap();
        running.tasks.spawn(async { panic!("the sky fell") });
        let failure = running.task_failure().await;
        assert_eq!(failure, "a task of vane's panicked: the sky fell");
        // Once vane is stopping, tasks that end are no failure: it shuts down as usual.
        running.stop.cancel();
        let ended = tokio::time::timeout(Duration::from_millis(50), running.task_failure()).await;
        assert!(ended.is_err(), "{ended:?}");
    }
}
