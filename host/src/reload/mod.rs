//! Reloads: the config file and the plugin, triggered by SIGHUP, `POST /reload` or a change of
//! the plugin file. A reload is admitted before it is swapped in: the plugin is compiled off the
//! request path, instantiated, configured with the new backend set and made to answer probe
//! picks; only then do the backend set and the policy replace the old ones. Anything refused
//! leaves the old ones serving, and the reason is logged, kept for `GET /policy` and counted.
//! Changes of the backends alone (discovery, the admin API's runtime calls) are admitted the
//! same way by the plugin in force, which is not read again.

mod diff;
mod runtime;
mod watch;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use arc_swap::ArcSwapOption;
use tokio_util::sync::CancellationToken;

pub use runtime::{BackendOrigin, NewBackend, Origins};
pub use watch::follow_changes;

use crate::backend::{BackendSet, BackendTlsError};
use crate::balancer::FallbackReason;
use crate::clock::Clock;
use crate::config::{AdminToken, Config, ConfigError};
use crate::discovery::{Discovery, FirstLookups};
use crate::file_watch::{FileWatch, Watched};
use crate::plugin::{PluginEngine, PluginError, file_sha256};
use crate::policy::Policy;
use crate::state::State;
use crate::tls::{Certificates, TlsError, TlsListener};

/// How many picks a new plugin must answer before it replaces the old one: enough to run a
/// round-robin through a few backends and catch a plugin that fails every n-th call early.
const PROBE_PICKS: u64 = 16;

/// Why a reload was refused; the old config and policy keep serving.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The config file has errors.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The config changes settings that only a restart can change.
    #[error("{} changed, which needs a restart; nothing was reloaded", .0.join(", "))]
    NeedsRestart(Vec<&'static str>),
    /// The plugin could not be loaded.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// The plugin loaded but failed a probe pick.
    #[error("plugin {} failed probe pick {pick}: {reason}", path.display())]
    Probe {
        /// The plugin file.
        path: PathBuf,
        /// Which probe pick failed (0-based).
        pick: u64,
        /// How it failed.
        reason: FallbackReason,
    },
    /// A TLS listener's certificates could not be read; the old ones keep serving.
    #[error("listener {address}: {error}")]
    Tls {
        /// The listener's address.
        address: std::net::SocketAddr,
        /// What is wrong, naming the file (part of the message, not a source of its own).
        error: TlsError,
    },
    /// A backend's TLS files could not be used; the backends in force keep theirs.
    #[error(transparent)]
    BackendTls(#[from] BackendTlsError),
    /// The reload task itself failed (a panic in the host).
    #[error("the reload did not finish: {0}")]
    Aborted(String),
    /// A promotion was asked for, but the config in force has no `[policy.shadow]`.
    #[error("there is no shadow policy to promote: the config in force has no [policy.shadow]")]
    NoShadow,
    /// A promotion was asked for, but the shadow running is not what would be promoted: it
    /// could not be loaded, or its file changed since.
    #[error("the shadow policy cannot be promoted: {0}")]
    ShadowNotPromotable(String),
    /// A runtime call named a backend the set does not have.
    #[error("there is no backend {0:?}")]
    UnknownBackend(String),
    /// A runtime call asked for a backend that is not acceptable (a bad field, a name taken).
    #[error("{0}")]
    BadBackend(String),
    /// A runtime call cannot be done to the backend as it is now (a member of a discovered
    /// group, one not yet drained, one with requests in flight).
    #[error("{0}")]
    Conflict(String),
}

/// A reload that took effect, and what it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// One line per change, such as `backend c added`.
    pub changes: Vec<String>,
}

/// The record of reloads since start, for the admin API.
#[derive(Debug, Clone, Default)]
pub struct ReloadStatus {
    /// Reloads that took effect.
    pub succeeded: u64,
    /// Reloads refused.
    pub refused: u64,
    /// When the last reload took effect.
    pub last_success: Option<SystemTime>,
    /// When the last refusal happened, and why.
    pub last_error: Option<(SystemTime, String)>,
    /// The last [`HISTORY`] changes of what vane runs (reloads of the config, the plugin or
    /// the certificates, promotions, changes of a group's members, runtime calls that change
    /// the set), oldest first, each admitted or refused.
    pub history: std::collections::VecDeque<Change>,
}

/// How many changes [`ReloadStatus::history`] keeps.
pub const HISTORY: usize = 32;

/// One change of what vane runs, admitted or refused.
#[derive(Debug, Clone)]
pub struct Change {
    /// When it was admitted or refused.
    pub at: SystemTime,
    /// What asked for it: `reload` (SIGHUP, `POST /reload`, a watched file), `discovery`, or
    /// `admin API` (a runtime call).
    pub by: &'static str,
    /// Whether it took effect.
    pub admitted: bool,
    /// What changed, or why it was refused (cut at [`WHAT_LENGTH`] bytes).
    pub what: String,
    /// How many times in a row the same change was asked for, with the same outcome (a
    /// refused change of members is asked for again at each lookup); `at` is the last.
    pub times: u32,
}

/// The longest [`Change::what`] kept, in bytes.
pub const WHAT_LENGTH: usize = 1024;

/// Reloads the config and the plugin, one reload at a time.
pub struct Reloader {
    state: Arc<State>,
    config_path: Option<PathBuf>,
    engine: Mutex<Option<PluginEngine>>,
    /// The config in force; held for the whole of a reload, so reloads never interleave.
    config: tokio::sync::Mutex<Config>,
    status: Mutex<ReloadStatus>,
    /// The admin API's token in force, read again by every reload of the config file.
    admin_token: ArcSwapOption<AdminToken>,
    /// The watch on the plugin file, moved to another file by a reload that names one.
    plugin_watch: FileWatch,
    /// The watch on the TLS listeners' certificate and key files, moved likewise.
    certificate_watch: FileWatch,
    /// The TLS listeners, whose certificates every reload reads again.
    tls: Vec<Arc<TlsListener>>,
    /// The groups of backends found at run time, whose members every set holds.
    discovery: Arc<Discovery>,
    /// Ends the tasks discovery starts for groups a reload adds.
    stop: CancellationToken,
    /// The backends added through the admin API since the config file was last read.
    added: Mutex<std::collections::BTreeSet<String>>,
}

impl Reloader {
    /// A reloader for the vane serving `state` with `config`, read from `config_path` if vane
    /// was started from a file (without one, reloads re-read only the plugin and the
    /// certificates), with the TLS listeners `tls`, watching the files `watches` names (the
    /// plugin's first, then the certificates'), and the groups `discovery` follows (the tasks
    /// it starts for a reload's new groups end with `stop`).
    pub(crate) fn new(
        state: Arc<State>,
        (config, config_path): (Config, Option<PathBuf>),
        engine: Option<PluginEngine>,
        watches: [FileWatch; 2],
        tls: Vec<Arc<TlsListener>>,
        (discovery, stop): (Arc<Discovery>, CancellationToken),
    ) -> Arc<Self> {
        let [plugin_watch, certificate_watch] = watches;
        Arc::new(Reloader {
            state,
            config_path,
            engine: Mutex::new(engine),
            admin_token: ArcSwapOption::from_pointee(config.admin_token.clone()),
            config: tokio::sync::Mutex::new(config),
            status: Mutex::new(ReloadStatus::default()),
            plugin_watch,
            certificate_watch,
            tls,
            discovery,
            stop,
            added: Mutex::default(),
        })
    }

    /// The groups of backends found at run time.
    pub fn discovery(&self) -> &Arc<Discovery> {
        &self.discovery
    }

    /// The TLS listeners, in the config's order.
    pub fn tls_listeners(&self) -> &[Arc<TlsListener>] {
        &self.tls
    }

    /// Reads the TLS files again with the config in force, as a change of one of them does: the
    /// listeners' certificates, and the backends' CA and client certificates (a backend whose
    /// files changed is replaced in the set, keeping its statistics; the plugin in force
    /// configures itself for the new set, and is not read again). A file at fault refuses them
    /// all, and the old ones keep serving.
    pub async fn reload_certificates(&self) -> Result<Reloaded, ReloadError> {
        let current = self.config.lock().await;
        let result = self.read_tls_files(&current);
        drop(current);
        self.record(&result);
        result
    }

    /// Reads every TLS file `config` names and puts what changed in force.
    fn read_tls_files(&self, config: &Config) -> Result<Reloaded, ReloadError> {
        let certificates = self.load_certificates(config)?;
        let set = self.state.hold_backends();
        let mut changes = Vec::new();
        let wanted = self.discovery.wanted(config, &FirstLookups::none());
        let next = diff::next_set(
            &set,
            &wanted,
            config.slow_start,
            self.state.clock(),
            &mut changes,
        )?;
        changes.extend(self.replace_certificates(certificates));
        if let Some(next) = next {
            self.state.swap_backends(next);
        }
        Ok(Reloaded { changes })
    }

    /// Reads the certificates `config` names for each TLS listener. A reload keeps the TLS
    /// listeners (a change of them needs a restart), so `config`'s are vane's, in order.
    fn load_certificates(&self, config: &Config) -> Result<Vec<Certificates>, ReloadError> {
        let configured = config.listeners.iter().filter_map(|next| next.tls.as_ref());
        self.tls
            .iter()
            .zip(configured)
            .map(|(listener, tls)| {
                let address = listener.address();
                Certificates::load(tls).map_err(|error| ReloadError::Tls { address, error })
            })
            .collect()
    }

    /// Puts `loaded` in force, one per TLS listener; answers what changed.
    fn replace_certificates(&self, loaded: Vec<Certificates>) -> Vec<String> {
        let mut changes = Vec::new();
        for (listener, certificates) in self.tls.iter().zip(loaded) {
            let names: Vec<String> = certificates
                .list()
                .iter()
                .map(|certificate| certificate.names.join(","))
                .collect();
            changes.push(format!(
                "listener {}: certificates read again ({})",
                listener.address(),
                names.join("; ")
            ));
            listener.replace(certificates);
        }
        changes
    }

    /// The SHA-256 of the config file vane was started from as it is now; `None` without one,
    /// or if it cannot be read.
    pub(super) fn config_file_digest(&self) -> Option<String> {
        let path = self.config_path.as_ref()?;
        crate::plugin::file_sha256(path).ok()
    }

    /// Reloads the config file (if vane was started from one) and the plugin, as SIGHUP and
    /// `POST /reload` do.
    pub async fn reload(&self) -> Result<Reloaded, ReloadError> {
        let mut current = self.config.lock().await;
        let result = match &self.config_path {
            Some(path) => match Config::load(path) {
                Ok(next) => self.apply(&mut current, next, Mode::Config).await,
                Err(err) => Err(err.into()),
            },
            None => {
                let next = current.clone();
                self.apply(&mut current, next, Mode::Config).await
            }
        };
        let result = result.map(|reloaded| reloaded.unwrap_or_default());
        self.record(&result);
        result
    }

    /// Reloads the plugin with the config in force, as a change of its file does; answers
    /// `None` and does nothing if the file's content is the loaded plugin's.
    pub async fn reload_plugin(&self) -> Option<Result<Reloaded, ReloadError>> {
        let mut current = self.config.lock().await;
        let next = current.clone();
        let result = self
            .apply(&mut current, next, Mode::PluginFile)
            .await
            .transpose()?;
        self.record(&result);
        Some(result)
    }

    /// Makes the shadow policy the active one, as `POST /policy/promote` does: the config in
    /// force with `[policy.shadow]`'s plugin and config in `[policy]`'s place and no shadow,
    /// admitted as a reload is (the old policy serves until the new one is in, and keeps
    /// serving if it is refused). The config file is not changed: the next reload of it puts
    /// its own policy back, unless it was edited to match.
    pub async fn promote_shadow(&self) -> Result<Reloaded, ReloadError> {
        let mut current = self.config.lock().await;
        let mut next = current.clone();
        let Some(policy) = next.policy.as_mut() else {
            return Err(ReloadError::NoShadow);
        };
        let Some(shadow) = policy.shadow.take() else {
            return Err(ReloadError::NoShadow);
        };
        // What was watched must be what is promoted: the file as it was loaded, checked here
        // and again once admitted.
        let running = self.state.hold_policy();
        let refuse = |why: String| Err(ReloadError::ShadowNotPromotable(why));
        match (running.shadow(), running.shadow_failure()) {
            (_, Some((path, reason))) => {
                return refuse(format!("{} could not be loaded: {reason}", path.display()));
            }
            (Some(watched), None) => {
                let now = file_sha256(&shadow.plugin).ok();
                if now.as_deref() != Some(watched.info().sha256.as_str()) {
                    return refuse(format!(
                        "{} changed since it was loaded as the shadow; reload to watch the \
                         new one first",
                        shadow.plugin.display()
                    ));
                }
            }
            (None, None) => return Err(ReloadError::NoShadow),
        }
        let sha256 = running
            .shadow()
            .map(|watched| watched.info().sha256.clone())
            .unwrap_or_default();
        policy.plugin = shadow.plugin;
        policy.config = shadow.config;
        let result = self
            .apply(&mut current, next, Mode::Promotion { sha256 })
            .await;
        let result = result.map(|reloaded| reloaded.unwrap_or_default());
        self.record(&result);
        result
    }

    /// The token every admin API call must carry, if the config names one.
    pub fn admin_token(&self) -> Option<Arc<AdminToken>> {
        self.admin_token.load_full()
    }

    /// What reloads have done so far.
    pub fn status(&self) -> ReloadStatus {
        lock(&self.status).clone()
    }

    /// Admits `next` and swaps it in, as `mode` says (answering `None` if it skips an unchanged
    /// plugin).
    async fn apply(
        &self,
        current: &mut Config,
        next: Config,
        mode: Mode,
    ) -> Result<Option<Reloaded>, ReloadError> {
        let skip_unchanged = mode == Mode::PluginFile;
        let rereads_config = mode == Mode::Config;
        let restart = diff::needs_restart(current, &next);
        if !restart.is_empty() {
            return Err(ReloadError::NeedsRestart(restart));
        }
        let engine = match &next.policy {
            Some(policy) => Some(self.engine(policy.cache.as_deref())?),
            None => None,
        };
        // A plugin or certificate file newly named is watched before it is read.
        let next_plugin_watch = self
            .plugin_watch
            .prepare(watched_files(&next, Watched::Plugin));
        let next_certificate_watch = self
            .certificate_watch
            .prepare(watched_files(&next, Watched::Certificates));
        let set = self.state.hold_backends();
        let old_policy = self.state.hold_policy();
        let clock = self.state.clock().clone();
        // A group the config adds, or points elsewhere, is looked up first: its members join
        // with the config, rather than after it.
        let first = self.discovery.look_up_new(&next).await;
        let wanted = self.discovery.wanted(&next, &first);
        let admitted = {
            let next = next.clone();
            tokio::task::spawn_blocking(move || {
                let asked = Asked {
                    config: &next,
                    backends: &wanted,
                };
                admit(engine.as_ref(), asked, &set, &old_policy, &clock, &mode)
            })
            .await
            .map_err(|err| ReloadError::Aborted(err.to_string()))??
        };
        let Some(Admitted {
            set,
            policy,
            mut changes,
        }) = admitted
        else {
            return Ok(None);
        };
        // Certificates are read again by a reload of the config, not of the plugin alone.
        let certificates = if skip_unchanged {
            Vec::new()
        } else {
            self.load_certificates(&next)?
        };
        self.state.swap(set, policy);
        changes.extend(self.replace_certificates(certificates));
        if let Some(watch) = next_plugin_watch {
            self.plugin_watch.switch(watch);
        }
        if let Some(watch) = next_certificate_watch {
            self.certificate_watch.switch(watch);
        }
        if next.admin_token != current.admin_token {
            self.admin_token
                .store(next.admin_token.clone().map(Arc::new));
            changes.push("the admin API token was replaced".to_owned());
        }
        if rereads_config && self.config_path.is_some() {
            // The file is read again: nothing in force was added through the admin API.
            lock(&self.added).clear();
        }
        self.discovery.follow_config(&next, first, &self.stop);
        *current = next;
        Ok(Some(Reloaded { changes }))
    }

    /// Admits the backends `config` asks for now (its own and the members discovery has
    /// found) with the plugin in force, as a reload would: the plugin must configure itself
    /// for the new set and answer probe picks; it is not read again. Answers what changed
    /// (nothing if the set is the same); `config` is the config in force, or the one a runtime
    /// call is about to put in force.
    async fn admit_backends(&self, config: &Config) -> Result<Reloaded, ReloadError> {
        let set = self.state.hold_backends();
        let wanted = self.discovery.wanted(config, &FirstLookups::none());
        let policy = self.state.hold_policy();
        let (clock, slow_start) = (self.state.clock().clone(), config.slow_start);
        // Off the runtime's threads: the members' TLS files are read, the plugin configured.
        let admitted = tokio::task::spawn_blocking(move || {
            let mut changes = Vec::new();
            let Some(next) = diff::next_set(&set, &wanted, slow_start, &clock, &mut changes)?
            else {
                return Ok(None);
            };
            policy.accepts(&next)?;
            if let Err((pick, reason)) = policy.probe(&next, PROBE_PICKS) {
                let path = policy
                    .plugin_info()
                    .map_or_else(PathBuf::new, |info| info.path.clone());
                return Err(ReloadError::Probe { path, pick, reason });
            }
            Ok(Some((next, changes)))
        })
        .await
        .map_err(|err| ReloadError::Aborted(err.to_string()))??;
        let Some((next, changes)) = admitted else {
            return Ok(Reloaded::default());
        };
        self.state.swap_backends(next);
        Ok(Reloaded { changes })
    }

    /// Puts the members discovery has found in force, as a change of a group's members does;
    /// a refusal is logged and kept for `GET /discovery`, and the set in force keeps serving.
    pub async fn update_members(&self) {
        let current = self.config.lock().await;
        let result = self.admit_backends(&current).await;
        drop(current);
        self.remember("discovery", &result);
        match result {
            Ok(reloaded) => {
                if reloaded != Reloaded::default() {
                    tracing::info!(changes = %reloaded.changes.join("; "), "backends changed");
                }
                self.discovery.record_verdict(None);
            }
            Err(err) => {
                tracing::warn!(error = %err, "the backends found were refused; the set in force keeps serving");
                self.discovery.record_verdict(Some(err.to_string()));
            }
        }
    }

    /// The process's plugin engine, made (with `cache`) by the first reload that needs one if
    /// vane started without a plugin.
    fn engine(&self, cache: Option<&Path>) -> Result<PluginEngine, PluginError> {
        let mut engine = lock(&self.engine);
        if let Some(engine) = engine.as_ref() {
            return Ok(engine.clone());
        }
        let made = PluginEngine::with_cache_folder(cache)?;
        *engine = Some(made.clone());
        Ok(made)
    }

    fn record(&self, result: &Result<Reloaded, ReloadError>) {
        self.remember("reload", result);
        let mut status = lock(&self.status);
        match result {
            Ok(reloaded) => {
                status.succeeded += 1;
                status.last_success = Some(SystemTime::now());
                tracing::info!(changes = %reloaded.changes.join("; "), "reloaded");
            }
            Err(err) => {
                status.refused += 1;
                status.last_error = Some((SystemTime::now(), err.to_string()));
                tracing::warn!(error = %err, "reload refused; the old config and policy keep serving");
            }
        }
    }
}

impl Reloader {
    /// Keeps `result`, a change asked for `by` someone, in the history (unless it changed
    /// nothing).
    fn remember(&self, by: &'static str, result: &Result<Reloaded, ReloadError>) {
        let (admitted, mut what) = match result {
            Ok(reloaded) if *reloaded == Reloaded::default() => return,
            Ok(reloaded) => (true, reloaded.changes.join("; ")),
            Err(err) => (false, err.to_string()),
        };
        if what.len() > WHAT_LENGTH {
            let mut cut = WHAT_LENGTH;
            while !what.is_char_boundary(cut) {
                cut -= 1;
            }
            what.truncate(cut);
            what.push_str(" …");
        }
        let now = SystemTime::now();
        let mut status = lock(&self.status);
        if let Some(previous) = status.history.back_mut()
            && (previous.by, previous.admitted, previous.what.as_str())
                == (by, admitted, what.as_str())
        {
            previous.at = now;
            previous.times += 1;
            return;
        }
        if status.history.len() == HISTORY {
            status.history.pop_front();
        }
        status.history.push_back(Change {
            at: now,
            by,
            admitted,
            what,
            times: 1,
        });
    }
}

impl Default for Reloaded {
    fn default() -> Self {
        Reloaded {
            changes: vec!["nothing changed".to_owned()],
        }
    }
}

/// How a reload is admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    /// A reload of the config (SIGHUP, `POST /reload`): everything is loaded again.
    Config,
    /// A change of the plugin's file: nothing is done if it holds the plugin loaded already.
    PluginFile,
    /// A promotion of the shadow, whose file held `sha256` when it was loaded: refused if the
    /// plugin admitted holds anything else.
    Promotion {
        /// The SHA-256 of the shadow as it was watched.
        sha256: String,
    },
}

/// What a reload will swap in: a new backend set (if it changed) and the new policy.
struct Admitted {
    set: Option<BackendSet>,
    policy: Policy,
    changes: Vec<String>,
}

/// What a reload asks for: the config, and the backends it means (its own and the members
/// found for its groups).
struct Asked<'a> {
    config: &'a Config,
    backends: &'a [crate::config::BackendConfig],
}

/// Builds and checks everything `asked` asks for against the backends in force; blocking
/// (it compiles), so it runs off the request path.
fn admit(
    engine: Option<&PluginEngine>,
    asked: Asked<'_>,
    current: &BackendSet,
    old_policy: &Policy,
    clock: &Clock,
    mode: &Mode,
) -> Result<Option<Admitted>, ReloadError> {
    let Asked { config, backends } = asked;
    if *mode == Mode::PluginFile
        && let (Some(policy), Some(old)) = (&config.policy, old_policy.plugin_info())
        && policy.plugin == old.path
        && file_sha256(&policy.plugin).ok().as_deref() == Some(old.sha256.as_str())
    {
        return Ok(None);
    }
    let mut changes = Vec::new();
    let next_set = diff::next_set(current, backends, config.slow_start, clock, &mut changes)?;
    let set = next_set.as_ref().unwrap_or(current);
    let generation = old_policy.generation() + 1;
    let policy =
        Policy::load(engine, config.policy.as_ref(), set, clock)?.with_generation(generation);
    if let Err((pick, reason)) = policy.probe(set, PROBE_PICKS) {
        let path = config
            .policy
            .as_ref()
            .map_or_else(PathBuf::new, |p| p.plugin.clone());
        return Err(ReloadError::Probe { path, pick, reason });
    }
    if let Mode::Promotion { sha256 } = mode
        && policy.plugin_info().map(|info| info.sha256.as_str()) != Some(sha256.as_str())
    {
        return Err(ReloadError::ShadowNotPromotable(
            "its file changed while it was being promoted; reload to watch the new one first"
                .to_owned(),
        ));
    }
    changes.push(describe_policy(old_policy, &policy));
    if let Some((path, reason)) = policy.shadow_failure() {
        changes.push(format!(
            "shadow {} could not be loaded ({reason}); serving without it",
            path.display()
        ));
    }
    Ok(Some(Admitted {
        set: next_set,
        policy,
        changes,
    }))
}

fn describe_policy(old: &Policy, new: &Policy) -> String {
    let describe = |policy: &Policy| match policy.plugin_info() {
        Some(info) => format!(
            "plugin {} (sha256 {})",
            info.path.display(),
            &info.sha256[..12.min(info.sha256.len())]
        ),
        None => "the built-in round-robin".to_owned(),
    };
    let (old, new) = (describe(old), describe(new));
    if old == new {
        format!("{new} reloaded, unchanged")
    } else {
        format!("{new} replaces {old}")
    }
}

/// The files `config` asks to watch for `watched`: the plugin file (unless `watch = false`),
/// or every TLS listener's certificate and key files.
pub fn watched_files(config: &Config, watched: Watched) -> Vec<PathBuf> {
    match watched {
        // The config does not name its own file: `app` watches the one it was started from;
        // discovery watches its groups' files.
        Watched::Config | Watched::Members => Vec::new(),
        Watched::Plugin => config
            .policy
            .iter()
            .filter(|policy| policy.watch)
            .map(|policy| policy.plugin.clone())
            .collect(),
        Watched::Certificates => {
            let listeners = config
                .listeners
                .iter()
                .filter_map(|listener| listener.tls.as_ref())
                .flat_map(|tls| &tls.certificates);
            let groups = config.groups.iter().filter_map(|group| group.tls.as_ref());
            let backends = config
                .backends
                .iter()
                .filter_map(|backend| backend.tls.as_ref())
                .chain(groups);
            let clients = backends.clone().filter_map(|tls| tls.client.as_ref());
            listeners
                .chain(clients)
                .flat_map(|files| [files.cert.clone(), files.key.clone()])
                .chain(backends.filter_map(|tls| tls.ca.clone()))
                .collect()
        }
    }
}

/// Locks a mutex whose holder cannot leave it inconsistent, poisoned or not.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
