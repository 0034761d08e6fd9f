//! A loaded plugin: its compiled component, its config and a pool of ready instances.
//!
//! Loading checks everything a plugin can get wrong before it serves a request: the file is a
//! component, it fits the world, and `configure` accepts the current backends. At run time each
//! pick borrows an instance from a lock-free pool, so workers never wait on one another.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use crossbeam_queue::ArrayQueue;
use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use super::bindings::{BalancerPre, Columns, Outcome};
use super::heard::Heard;
use super::instance::{ConfigureError, OutOfMemory, PluginInstance, write_states};
use super::limits::{LOG_LINES_PER_SECOND, MemoryBudget};
use super::never_block::Blocked;
use super::{PluginEngine, PluginError};
use crate::backend::{BackendSet, Eligibility};
use crate::balancer::{Balancer, Delivered, FallbackReason, Ranked, RequestInfo};
use crate::clock::Clock;
use crate::config::PluginLimits;
use crate::log_budget::LogBudget;

/// What identifies a loaded plugin to an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    /// The name in logs: the file name without its extension.
    pub name: String,
    /// The file it was loaded from.
    pub path: PathBuf,
    /// The SHA-256 of the file's bytes, in hex.
    pub sha256: String,
    /// When it was loaded.
    pub loaded_at: SystemTime,
}

/// The states of a backend set for one request as one plugin reads them, written at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    columns: Columns,
    /// The number of backends: the state bits are the first `count` numbers.
    count: usize,
    states: Vec<u64>,
}

impl Snapshot {
    /// Whether the backend at `index` could receive the request (its state bit 0).
    pub fn eligible(&self, index: u32) -> bool {
        (index as usize) < self.count
            && self.states[index as usize] & crate::backend::STATE_ELIGIBLE != 0
    }
}

/// A loaded, checked plugin, ready to balance; implements [`Balancer`].
pub struct PluginBalancer {
    name: Arc<str>,
    path: PathBuf,
    sha256: String,
    loaded_at: SystemTime,
    pre: BalancerPre<super::instance::InstanceState>,
    config: String,
    limits: PluginLimits,
    feedback: bool,
    /// What the last `configure` asked for: the columns of `states` (their bits)...
    asked_columns: AtomicU32,
    /// ...and whether request headers.
    asked_headers: AtomicBool,
    log_budget: Arc<LogBudget>,
    /// Boxed, so that checking one out and back in moves a pointer, not the instance.
    idle: ArrayQueue<Box<PluginInstance>>,
    /// The linear memory all its instances may hold together.
    memory: Arc<MemoryBudget>,
    /// Outcomes on their way to the instances' `observe`.
    heard: Heard,
}

impl PluginBalancer {
    /// Reads, compiles and instantiates the plugin at `path`, and configures it with `config` and
    /// the backends of `set`. Any failure is refused with the file and the reason. Its log
    /// budget is timed by `clock`.
    pub fn load(
        engine: &PluginEngine,
        path: &Path,
        config: &str,
        limits: PluginLimits,
        set: &BackendSet,
        clock: &Clock,
    ) -> Result<Self, PluginError> {
        Self::open(engine, path, config, limits, set, clock).map_err(PluginError::named_in_full)
    }

    /// [`PluginBalancer::load`], its errors naming the file as `path` says.
    fn open(
        engine: &PluginEngine,
        path: &Path,
        config: &str,
        limits: PluginLimits,
        set: &BackendSet,
        clock: &Clock,
    ) -> Result<Self, PluginError> {
        // Read from the file `path` resolves to now, which also names it: a symlink flipped
        // while this one compiles does not rename it.
        let file = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        let bytes = std::fs::read(&file).map_err(|cause| PluginError::Read {
            path: path.to_owned(),
            cause,
        })?;
        check_header(path, &bytes)?;
        let sha256 = hex_sha256(&bytes);
        let compiled = match &engine.cache {
            Some(cache) => cache.load_or_compile(&engine.engine, &bytes, &sha256),
            None => Component::new(&engine.engine, &bytes),
        };
        let component = compiled.map_err(|err| PluginError::Compile {
            path: path.to_owned(),
            reason: format!("{err:#}"),
        })?;
        let problems = super::fit::problems(&engine.engine, &component);
        if !problems.is_empty() {
            return Err(PluginError::WrongWorld {
                path: path.to_owned(),
                reason: problems.join("; "),
            });
        }
        // The names and shapes fit; wasmtime's linking still has the last word.
        let wrong_world = |err: wasmtime::Error| PluginError::WrongWorld {
            path: path.to_owned(),
            reason: format!("{err:#}"),
        };
        let pre = engine
            .linker
            .instantiate_pre(&component)
            .map_err(wrong_world)?;
        let pre = BalancerPre::new(pre).map_err(wrong_world)?;

        let name: Arc<str> = super::naming::plugin_name(&file, &bytes).into();
        let pool_size = std::thread::available_parallelism().map_or(4, |n| n.get() * 2);
        let mut plugin = PluginBalancer {
            name,
            path: path.to_owned(),
            sha256,
            loaded_at: SystemTime::now(),
            pre,
            config: config.to_owned(),
            limits,
            feedback: false,
            asked_columns: AtomicU32::new(0),
            asked_headers: AtomicBool::new(false),
            log_budget: Arc::new(LogBudget::new(
                LOG_LINES_PER_SECOND,
                Duration::from_secs(1),
                clock.clone(),
            )),
            idle: ArrayQueue::new(pool_size.max(4)),
            memory: MemoryBudget::new(limits.total_memory_limit),
            heard: Heard::new(),
        };
        let first = plugin.configured_afresh(set)?;
        plugin.feedback = first.feedback;
        plugin.note_asked(&first);
        let _ = plugin.idle.push(first);
        Ok(plugin)
    }

    /// A new instance, configured for `set`; the plugin's refusal or failure says why not.
    fn configured_afresh(&self, set: &BackendSet) -> Result<Box<PluginInstance>, PluginError> {
        let path = &self.path;
        let mut instance = self.instantiate().map_err(|err| PluginError::Failed {
            path: path.clone(),
            reason: format!("cannot instantiate: {err:#}"),
        })?;
        instance
            .configure(&self.config, set)
            .map_err(|err| match err {
                ConfigureError::Refused(message) => PluginError::Refused {
                    path: path.clone(),
                    message,
                },
                ConfigureError::Failed(reason, detail) => PluginError::Failed {
                    path: path.clone(),
                    reason: format!("{reason}: {detail}"),
                },
            })?;
        Ok(instance)
    }

    /// The plugin's name in logs and `/policy`: the component's own, else its file's stem.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file the plugin was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What identifies this plugin to an operator: name, file, content hash, load time.
    pub fn info(&self) -> PluginInfo {
        PluginInfo {
            name: self.name.to_string(),
            path: self.path.clone(),
            sha256: self.sha256.clone(),
            loaded_at: self.loaded_at,
        }
    }

    fn instantiate(&self) -> wasmtime::Result<Box<PluginInstance>> {
        PluginInstance::new(
            &self.pre,
            self.name.clone(),
            self.log_budget.clone(),
            self.limits,
            self.memory.clone(),
        )
        .map(Box::new)
    }

    /// Borrows an idle instance configured for `set`, making one if none is idle.
    fn checkout(&self, set: &BackendSet) -> Result<Box<PluginInstance>, FallbackReason> {
        let instance = match self.idle.pop() {
            Some(instance) => instance,
            None => self.instantiate().map_err(|err| {
                if err.is::<OutOfMemory>() {
                    FallbackReason::Memory
                } else if err.is::<Blocked>() {
                    FallbackReason::Deadline
                } else {
                    FallbackReason::Trap
                }
            })?,
        };
        self.configured(instance, set)
    }

    /// `instance`, configured for `set` if it was not.
    fn configured(
        &self,
        mut instance: Box<PluginInstance>,
        set: &BackendSet,
    ) -> Result<Box<PluginInstance>, FallbackReason> {
        if !instance.is_configured_for(set.generation()) {
            instance
                .configure(&self.config, set)
                .map_err(|err| match err {
                    ConfigureError::Refused(_) => FallbackReason::Declined,
                    ConfigureError::Failed(reason, _) => reason,
                })?;
            self.note_asked(&instance);
        }
        Ok(instance)
    }

    /// Whether the plugin asked for request headers in its last `configure`.
    pub fn reads_headers(&self) -> bool {
        self.asked_headers.load(Ordering::Relaxed)
    }

    /// Keeps what `instance`'s `configure` asked for, for [`PluginBalancer::snapshot`].
    fn note_asked(&self, instance: &PluginInstance) {
        self.asked_columns
            .store(column_bits(instance.columns()), Ordering::Relaxed);
        self.asked_headers
            .store(instance.reads_headers(), Ordering::Relaxed);
    }

    /// The states of `set` for one request as this plugin reads them (the columns its last
    /// `configure` asked for), written now to be asked about later with
    /// [`PluginBalancer::pick_snapshot`].
    pub fn snapshot(&self, set: &BackendSet, eligibility: Eligibility) -> Snapshot {
        let columns = columns_of(self.asked_columns.load(Ordering::Relaxed));
        let mut states = Vec::new();
        write_states(&mut states, set, eligibility, columns);
        Snapshot {
            columns,
            count: set.len(),
            states,
        }
    }

    /// Asks the plugin to pick for `request` with the states of `snapshot`, taken of `set`: the
    /// facts of an earlier moment. `None` if an instance configured for `set` reads other
    /// columns than the snapshot holds (its `configure` asked differently for this set).
    pub fn pick_snapshot(
        &self,
        request: &RequestInfo<'_>,
        set: &BackendSet,
        snapshot: &Snapshot,
    ) -> Option<Result<Ranked, FallbackReason>> {
        let mut instance = match self.checkout(set) {
            Ok(instance) => instance,
            Err(reason) => return Some(Err(reason)),
        };
        if instance.columns() != snapshot.columns {
            self.checkin(instance);
            return None;
        }
        let answer = instance.pick_with_states(request, &snapshot.states);
        if answer.is_ok() {
            self.checkin(instance);
        }
        Some(answer)
    }

    /// Returns a healthy instance to the pool (dropping it if the pool is full).
    fn checkin(&self, instance: Box<PluginInstance>) {
        let _ = self.idle.push(instance);
    }
}

impl Balancer for PluginBalancer {
    fn accepts(&self, set: &BackendSet) -> Result<(), PluginError> {
        // Dropped, not pooled: the set may yet be refused, and what its `configure` asked for
        // is noted when an instance is configured for the set in force.
        self.configured_afresh(set).map(drop)
    }

    fn pick(
        &self,
        request: &RequestInfo<'_>,
        set: &BackendSet,
        eligibility: Eligibility,
    ) -> Result<Ranked, FallbackReason> {
        let mut instance = self.checkout(set)?;
        let answer = instance.pick(request, set, eligibility);
        // A Store that trapped is discarded; the next pick makes a fresh instance.
        if answer.is_ok() {
            self.checkin(instance);
        }
        answer
    }

    fn wants_feedback(&self) -> bool {
        self.feedback
    }

    fn log_lines(&self) -> (u64, u64) {
        self.log_budget.totals()
    }

    fn memory_bytes(&self) -> u64 {
        self.memory.used() as u64
    }

    fn observe(&self, set: &BackendSet, index: u32, status: u16, latency: Duration) -> bool {
        let outcome = Outcome {
            backend: index,
            status,
            latency_us: u32::try_from(latency.as_micros()).unwrap_or(u32::MAX),
        };
        self.heard.queue(set.generation(), outcome)
    }

    fn deliver(&self, set: &BackendSet) -> Result<Delivered, FallbackReason> {
        let generation = set.generation();
        let (gathered, latest) = self.heard.gather(generation);
        let mut delivered = Delivered {
            outcomes: gathered,
            called: false,
        };
        // Every idle instance hears of what it has not: one at a time, so that picks find the
        // others idle. Instances busy now hear of it at the next delivery.
        for _ in 0..self.idle.len() {
            let Some(instance) = self.idle.pop() else {
                break;
            };
            if instance.heard_up_to >= latest {
                self.checkin(instance);
                continue;
            }
            let mut instance = self.configured(instance, set)?;
            let outcomes = self.heard.since(instance.heard_up_to, generation);
            if !outcomes.is_empty() {
                // A failure costs no request; the instance is discarded as after a failed pick.
                instance.observe(&outcomes)?;
                delivered.called = true;
            }
            instance.heard_up_to = latest;
            self.checkin(instance);
        }
        Ok(delivered)
    }

    fn outcomes_dropped(&self) -> u64 {
        self.heard.dropped()
    }
}

/// Every column, in the order of their bits in [`column_bits`].
const COLUMNS: [Columns; 7] = [
    Columns::WEIGHT,
    Columns::IN_FLIGHT,
    Columns::REQUESTS,
    Columns::FAILURES,
    Columns::LATENCY_EWMA_US,
    Columns::RECENT_REQUESTS,
    Columns::RECENT_FAILURES,
];

/// `columns` as a number, one bit per column of [`COLUMNS`], to keep in an atomic.
fn column_bits(columns: Columns) -> u32 {
    COLUMNS
        .iter()
        .enumerate()
        .filter(|(_, column)| columns.contains(**column))
        .fold(0, |bits, (bit, _)| bits | 1 << bit)
}

/// The columns [`column_bits`] made `bits` of.
fn columns_of(bits: u32) -> Columns {
    COLUMNS
        .iter()
        .enumerate()
        .filter(|(bit, _)| bits & 1 << bit != 0)
        .fold(Columns::empty(), |columns, (_, column)| columns | *column)
}

/// The SHA-256 of the file at `path` in lowercase hex, as `sha256sum` prints it.
pub fn file_sha256(path: &Path) -> std::io::Result<String> {
    std::fs::read(path).map(|bytes| hex_sha256(&bytes))
}

/// The SHA-256 of `bytes` in lowercase hex, as `sha256sum` prints it.
fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Tells a WebAssembly component from a core module or a file that is not wasm at all, by the
/// preamble: `\0asm`, then a version of 1 for core modules or 0x0d (with layer 1) for components.
fn check_header(path: &Path, bytes: &[u8]) -> Result<(), PluginError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(PluginError::NotWasm {
            path: path.to_owned(),
        });
    }
    if bytes[4..8] == [1, 0, 0, 0] {
        return Err(PluginError::NotComponent {
            path: path.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_round_trip_through_their_bits() {
        for bits in 0..1u32 << COLUMNS.len() {
            assert_eq!(column_bits(columns_of(bits)), bits);
        }
        assert_eq!(
            columns_of(column_bits(Columns::IN_FLIGHT | Columns::WEIGHT)),
            Columns::IN_FLIGHT | Columns::WEIGHT
        );
    }
}
