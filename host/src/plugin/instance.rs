//! One plugin instance: a wasmtime Store with its limits and an empty WASI context, plus the
//! reusable buffers a pick is marshalled through. Used by one thread at a time; after a trap it is
//! discarded, because a Store that trapped cannot be trusted again.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use wasmtime::component::ResourceTable;
use wasmtime::{Store, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{
    BackendInfo, Balancer, BalancerPre, Columns, Header, IpAddress, Level, Outcome, Request, Target,
};
use super::cpu_budget::CallBudget;
use super::limits::{InstanceLimiter, MAX_LOG_LINE, MemoryBudget, observe_timeout};
use super::never_block::Blocked;
use super::output::{PluginOutput, Stream};
use crate::backend::{Backend, BackendSet, Eligibility};
use crate::balancer::{FallbackReason, Ranked, RequestInfo};
use crate::config::PluginLimits;
use crate::log_budget::LogBudget;

/// What a Store carries: the (empty) WASI context, the memory cap and the plugin's name for logs.
pub(crate) struct InstanceState {
    wasi: WasiCtx,
    table: ResourceTable,
    plugin: Arc<str>,
    /// Shared by all instances of the plugin: lines beyond it are dropped.
    log_budget: Arc<LogBudget>,
    limiter: InstanceLimiter,
    /// The budget of the call under way, weighed at its epoch deadlines.
    call: CallBudget,
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl super::bindings::vane::balancer::types::Host for InstanceState {}

impl super::bindings::vane::balancer::host::Host for InstanceState {
    fn log(&mut self, level: Level, mut message: String) {
        if !self.log_budget.allow() {
            return;
        }
        if message.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        let plugin = &*self.plugin;
        match level {
            Level::Trace => tracing::trace!(target: "vane::plugin", plugin, "{message}"),
            Level::Debug => tracing::debug!(target: "vane::plugin", plugin, "{message}"),
            Level::Info => tracing::info!(target: "vane::plugin", plugin, "{message}"),
            Level::Warn => tracing::warn!(target: "vane::plugin", plugin, "{message}"),
            Level::Error => tracing::error!(target: "vane::plugin", plugin, "{message}"),
        }
    }
}

/// Why `configure` did not succeed.
#[derive(Debug)]
pub(crate) enum ConfigureError {
    /// The plugin answered an error message.
    Refused(String),
    /// The call failed: trap, deadline or memory cap, with wasmtime's explanation.
    Failed(FallbackReason, String),
}

/// A live instance of a plugin and the state it was last configured for.
pub(crate) struct PluginInstance {
    store: Store<InstanceState>,
    bindings: Balancer,
    limits: PluginLimits,
    /// The backend-set generation `configure` last succeeded for.
    configured_for: Option<u64>,
    /// Header names the plugin asked for, parsed once.
    wanted_headers: Vec<HeaderName>,
    /// Whether the plugin asked for `observe` calls.
    pub(crate) feedback: bool,
    /// The number of the first batch of outcomes this instance has not heard of.
    pub(crate) heard_up_to: u64,
    /// Whether the plugin asked for the request's method, authority and path.
    wants_target: bool,
    /// The columns of `states` the plugin asked for.
    columns: Columns,
    request: Request,
    /// The state bits and the asked-for columns, column after column (see `wit/`).
    states: Vec<u64>,
}

/// An instance could not start because its memory would pass `memory_limit` or the plugin's
/// `total_memory_limit`.
#[derive(Debug, thiserror::Error)]
#[error("the plugin's memory limit leaves no room for another instance")]
pub(crate) struct OutOfMemory;

impl PluginInstance {
    /// Instantiates the plugin in a fresh Store that grants nothing, its memory taken from
    /// `memory`.
    pub(crate) fn new(
        pre: &BalancerPre<InstanceState>,
        plugin: Arc<str>,
        log_budget: Arc<LogBudget>,
        limits: PluginLimits,
        memory: Arc<MemoryBudget>,
    ) -> wasmtime::Result<Self> {
        // No preopens, no environment, no arguments, no network; stdin is empty; stdout and
        // stderr go to the log line by line, within the plugin's log budget.
        let wasi = WasiCtx::builder()
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .stdout(PluginOutput::new(
                plugin.clone(),
                Stream::Stdout,
                log_budget.clone(),
            ))
            .stderr(PluginOutput::new(
                plugin.clone(),
                Stream::Stderr,
                log_budget.clone(),
            ))
            .build();
        let state = InstanceState {
            wasi,
            table: ResourceTable::new(),
            plugin,
            log_budget,
            limiter: InstanceLimiter::new(limits.memory_limit, memory),
            call: CallBudget::new(limits.configure_timeout, limits.overrun_grace),
        };
        let mut store = Store::new(pre.engine(), state);
        store.limiter(|state| &mut state.limiter);
        store.epoch_deadline_callback(|mut store| Ok(store.data_mut().call.on_deadline()));
        budget(&mut store, limits.configure_timeout, limits.overrun_grace);
        let bindings = pre.instantiate(&mut store).map_err(|err| {
            if store.data().limiter.hit_memory_limit() {
                wasmtime::Error::new(OutOfMemory)
            } else {
                err
            }
        })?;
        // Past its deadline (in a grace), starting it has failed all the same.
        if store.data().call.overran() {
            return Err(wasmtime::format_err!(
                "the plugin ran past configure_timeout while starting"
            ));
        }
        Ok(PluginInstance {
            store,
            bindings,
            limits,
            configured_for: None,
            wanted_headers: Vec::new(),
            feedback: false,
            heard_up_to: 0,
            wants_target: false,
            columns: Columns::empty(),
            request: Request {
                sequence: 0,
                target: None,
                client_ip: IpAddress::Ipv4(0),
                headers: None,
            },
            states: Vec::new(),
        })
    }

    /// Whether `configure` has succeeded for this generation of the backend set.
    pub(crate) fn is_configured_for(&self, generation: u64) -> bool {
        self.configured_for == Some(generation)
    }

    /// Calls `configure` with the plugin's config string and the backends of `set`.
    pub(crate) fn configure(
        &mut self,
        config: &str,
        set: &BackendSet,
    ) -> Result<(), ConfigureError> {
        let backends: Vec<BackendInfo> = set
            .backends()
            .iter()
            .map(|b| BackendInfo {
                name: b.name.clone(),
                address: b.address.to_string(),
                weight: b.weight,
                tags: b.tags.clone(),
            })
            .collect();
        self.arm(self.limits.configure_timeout);
        let answer =
            self.bindings
                .vane_balancer_policy()
                .call_configure(&mut self.store, config, &backends);
        let needs = match answer {
            // Past its deadline (in a grace), it has failed whatever it answered.
            Ok(_) if self.store.data().call.overran() => {
                return Err(ConfigureError::Failed(
                    FallbackReason::Deadline,
                    "configure ran past configure_timeout".into(),
                ));
            }
            Ok(Ok(needs)) => needs,
            Ok(Err(message)) => return Err(ConfigureError::Refused(message)),
            Err(err) => {
                return Err(ConfigureError::Failed(
                    self.classify(&err),
                    format!("{err:#}"),
                ));
            }
        };
        let mut wanted = Vec::with_capacity(needs.headers.len());
        for name in &needs.headers {
            match HeaderName::try_from(name.as_str()) {
                Ok(header) => wanted.push(header),
                Err(_) => {
                    return Err(ConfigureError::Refused(format!(
                        "asked for header {name:?}, which is not a valid header name"
                    )));
                }
            }
        }
        self.wanted_headers = wanted;
        self.feedback = needs.feedback;
        self.wants_target = needs.target;
        self.columns = needs.columns;
        self.configured_for = Some(set.generation());
        Ok(())
    }

    /// Calls `pick` for this request against the current state of `set`.
    pub(crate) fn pick(
        &mut self,
        request: &RequestInfo<'_>,
        set: &BackendSet,
        eligibility: Eligibility,
    ) -> Result<Ranked, FallbackReason> {
        self.fill_request(request);
        self.fill_states(set, eligibility);
        self.call_pick()
    }

    /// Calls `pick` with the request and states filled in.
    fn call_pick(&mut self) -> Result<Ranked, FallbackReason> {
        self.arm(self.limits.pick_timeout);
        let answer = self.bindings.vane_balancer_policy().call_pick(
            &mut self.store,
            &self.request,
            &self.states,
        );
        self.outcome(answer).map(Ranked::from_vec)
    }

    /// Calls `observe` with how a batch of requests ended.
    pub(crate) fn observe(&mut self, outcomes: &[Outcome]) -> Result<(), FallbackReason> {
        self.arm(observe_timeout(&self.limits, outcomes.len()));
        let answer = self
            .bindings
            .vane_balancer_policy()
            .call_observe(&mut self.store, outcomes);
        self.outcome(answer)
    }

    /// The result of a call: a value or a classified failure. A call that ran past its
    /// deadline (in a grace) has failed, whatever it answered; one that trapped in its grace is
    /// a trap.
    fn outcome<T>(&self, answer: wasmtime::Result<T>) -> Result<T, FallbackReason> {
        match answer {
            Ok(_) if self.store.data().call.overran() => Err(FallbackReason::Deadline),
            Ok(value) => Ok(value),
            Err(err) => Err(self.classify(&err)),
        }
    }

    /// Prepares the Store for one call: its deadline, and a clean record of the memory cap.
    fn arm(&mut self, timeout: Duration) {
        budget(&mut self.store, timeout, self.limits.overrun_grace);
        self.store.data_mut().limiter.arm();
    }

    /// Names the reason a call failed: the memory cap, the deadline (a call that waited on the
    /// host is abandoned, as one that runs too long), or any other trap.
    fn classify(&self, err: &wasmtime::Error) -> FallbackReason {
        if self.store.data().limiter.hit_memory_limit() {
            FallbackReason::Memory
        } else if err.is::<Blocked>() {
            FallbackReason::Deadline
        } else if err.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            // It used its budget of CPU time, or reached the wall-clock bound.
            FallbackReason::Deadline
        } else {
            FallbackReason::Trap
        }
    }

    /// Copies the request's facts into the reused request record (no allocation once warm,
    /// unless the plugin asked for headers).
    fn fill_request(&mut self, info: &RequestInfo<'_>) {
        let request = &mut self.request;
        request.sequence = info.sequence;
        if self.wants_target {
            // Kept from pick to pick, so the strings' buffers are reused.
            let target = request.target.get_or_insert_with(|| Target {
                method: String::new(),
                authority: String::new(),
                path: String::new(),
            });
            replace(&mut target.method, info.method.as_str());
            replace(&mut target.authority, info.authority);
            replace(&mut target.path, info.path);
        } else {
            request.target = None;
        }
        request.client_ip = match info.client_ip {
            IpAddr::V4(ip) => IpAddress::Ipv4(ip.to_bits()),
            IpAddr::V6(ip) => {
                let bits = ip.to_bits();
                IpAddress::Ipv6(((bits >> 64) as u64, bits as u64))
            }
        };
        if self.wanted_headers.is_empty() {
            request.headers = None;
            return;
        }
        let headers = request.headers.get_or_insert_with(Vec::new);
        headers.clear();
        for name in &self.wanted_headers {
            for value in info.headers.get_all(name) {
                if let Ok(value) = value.to_str() {
                    headers.push(Header {
                        name: name.as_str().to_owned(),
                        value: value.to_owned(),
                    });
                }
            }
        }
    }

    /// Writes the states of `set` for this request into the reused `states`.
    fn fill_states(&mut self, set: &BackendSet, eligibility: Eligibility) {
        write_states(&mut self.states, set, eligibility, self.columns);
    }

    /// The columns of `states` this instance's plugin asked for.
    pub(crate) fn columns(&self) -> Columns {
        self.columns
    }

    /// Whether this instance's plugin asked for request headers.
    pub(crate) fn reads_headers(&self) -> bool {
        !self.wanted_headers.is_empty()
    }

    /// Calls `pick` for this request with `states` written before (by [`write_states`], with
    /// this instance's columns) rather than read from the live set.
    pub(crate) fn pick_with_states(
        &mut self,
        request: &RequestInfo<'_>,
        states: &[u64],
    ) -> Result<Ranked, FallbackReason> {
        self.fill_request(request);
        self.states.clear();
        self.states.extend_from_slice(states);
        self.call_pick()
    }
}

/// Writes into `states` the state bits of every backend of `set` (bit 0: it may receive this
/// request; bit 1 and bits 16 to 25: it is warming up, and its share), then each of `columns`,
/// in the order `wit/` declares them: what a pick is handed.
pub(crate) fn write_states(
    states: &mut Vec<u64>,
    set: &BackendSet,
    eligibility: Eligibility,
    columns: Columns,
) {
    let backends = set.backends();
    states.clear();
    eligibility.push_state_bits(backends, states);
    // One loop per column asked for, each with its reading inlined.
    let asked = |flag| columns.contains(flag);
    if asked(Columns::WEIGHT) {
        push_column(states, backends, |b| u64::from(b.weight));
    }
    if asked(Columns::IN_FLIGHT) {
        push_column(states, backends, |b| u64::from(b.stats.in_flight()));
    }
    if asked(Columns::REQUESTS) {
        push_column(states, backends, |b| b.stats.requests());
    }
    if asked(Columns::FAILURES) {
        push_column(states, backends, |b| b.stats.failures());
    }
    if asked(Columns::LATENCY_EWMA_US) {
        push_column(states, backends, |b| u64::from(b.stats.latency_ewma_us()));
    }
    match (
        asked(Columns::RECENT_REQUESTS),
        asked(Columns::RECENT_FAILURES),
    ) {
        (true, true) => {
            // Both from one reading of each backend's window: two columns, one pass.
            let base = states.len();
            let n = backends.len();
            states.resize(base + 2 * n, 0);
            for (i, backend) in backends.iter().enumerate() {
                let (requests, failures) = backend.stats.recent();
                states[base + i] = requests;
                states[base + n + i] = failures;
            }
        }
        (true, false) => push_column(states, backends, |b| b.stats.recent().0),
        (false, true) => push_column(states, backends, |b| b.stats.recent().1),
        (false, false) => {}
    }
}

/// Appends `value` of every backend to `states`: one column.
fn push_column(states: &mut Vec<u64>, backends: &[Arc<Backend>], value: impl Fn(&Backend) -> u64) {
    states.extend(backends.iter().map(|backend| value(backend)));
}

/// Gives the next call of `store` a budget of `timeout` of its thread's CPU time, stopped
/// after `grace` more (see [`CallBudget`]): the first look at the next tick boundary.
fn budget(store: &mut Store<InstanceState>, timeout: Duration, grace: Duration) {
    store.data_mut().call = CallBudget::new(timeout, grace);
    store.set_epoch_deadline(CallBudget::FIRST_DEADLINE);
}

/// Replaces a string's contents, reusing its allocation.
fn replace(target: &mut String, value: &str) {
    target.clear();
    target.push_str(value);
}
