//! `GET /metrics`: the proxy's counters in the Prometheus / OpenMetrics text format, encoded
//! by prometheus-client from the live atomics at scrape time, so the request path pays nothing
//! for metrics beyond the counters it keeps anyway.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet, text};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::backend::{Backend, FULL_SHARE, Outcome};
use crate::discovery::GroupStatus;
use crate::histogram::HistogramSnapshot;
use crate::policy::{BreakerState, Shadow};
use crate::reload::{ReloadStatus, Reloader};
use crate::state::{ClientFault, State};
use crate::tls::TlsListener;

/// The content type of the answer: OpenMetrics text, which Prometheus reads.
pub(super) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Encodes every metric of `state`, and the reload counts and TLS listeners of `reloader`, as
/// OpenMetrics text.
pub fn encode_metrics(state: &Arc<State>, reloader: &Reloader) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(StateCollector(
        state.clone(),
        reloader.status(),
        reloader.tls_listeners().to_vec(),
        reloader.discovery().groups(),
    )));
    let mut text = String::new();
    text::encode(&mut text, &registry)?;
    Ok(text)
}

/// Reads the proxy's state at each scrape.
struct StateCollector(
    Arc<State>,
    ReloadStatus,
    Vec<Arc<TlsListener>>,
    Vec<GroupStatus>,
);

impl std::fmt::Debug for StateCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateCollector")
    }
}

type Labels<'a> = [(&'static str, &'a str); 1];

impl StateCollector {
    /// Each discovered group's members, whether it serves the last good answer, and its lookups.
    fn encode_discovery(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        type GroupFigure = (
            &'static str,
            &'static str,
            MetricType,
            fn(&GroupStatus) -> u64,
        );
        let figures: [GroupFigure; 4] = [
            (
                "vane_discovery_members",
                "Members each discovered group's last good lookup found.",
                MetricType::Gauge,
                |g| g.members.len() as u64,
            ),
            (
                "vane_discovery_stale",
                "1 if a group's last lookup failed, so it serves the last good answer.",
                MetricType::Gauge,
                |g| u64::from(g.serving_last_good),
            ),
            (
                "vane_discovery_lookups",
                "Lookups of each discovered group (DNS queries, file reads).",
                MetricType::Counter,
                |g| g.lookups,
            ),
            (
                "vane_discovery_lookup_failures",
                "Lookups of each discovered group that failed.",
                MetricType::Counter,
                |g| g.failures,
            ),
        ];
        for (name, help, kind, value) in figures {
            let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
            for group in &self.3 {
                let labels: Labels<'_> = [("group", group.name.as_str())];
                let mut family = metric.encode_family(&labels)?;
                match kind {
                    MetricType::Counter => counter(family, value(group))?,
                    _ => family.encode_gauge(&value(group))?,
                }
            }
        }
        Ok(())
    }
}

/// A per-backend gauge: name, help, and how to read it off a backend.
type BackendGauge = (&'static str, &'static str, fn(&Backend) -> u64);

impl Collector for StateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let state = &self.0;
        let set = state.backends();
        let backends = set.backends();
        let eligibility = set.eligibility();

        let mut metric = encoder.encode_descriptor(
            "vane_backend_requests",
            "Attempts sent to each backend, by response status class (error: no response).",
            None,
            MetricType::Counter,
        )?;
        for backend in backends {
            for (class, count) in Outcome::LABELS.iter().zip(backend.stats.outcomes()) {
                let labels = [("backend", backend.name.as_str()), ("class", class)];
                counter(metric.encode_family(&labels)?, count)?;
            }
        }

        let mut metric = encoder.encode_descriptor(
            "vane_backend_response_seconds",
            "Time from sending a request to each backend until its response headers.",
            None,
            MetricType::Histogram,
        )?;
        for backend in backends {
            let labels: Labels<'_> = [("backend", backend.name.as_str())];
            histogram(
                metric.encode_family(&labels)?,
                &backend.stats.latency().snapshot(),
            )?;
        }

        let per_backend: [BackendGauge; 4] = [
            (
                "vane_backend_in_flight",
                "Requests sent to each backend whose response has not finished.",
                |b| u64::from(b.stats.in_flight()),
            ),
            (
                "vane_backend_healthy",
                "1 if the backend's active health checks pass (always 1 without [health]).",
                |b| u64::from(b.health.healthy()),
            ),
            (
                "vane_backend_ejected",
                "1 if passive detection has ejected the backend for a cool-down.",
                |b| u64::from(b.health.ejected()),
            ),
            (
                "vane_backend_draining",
                "1 if the backend is being drained through the admin API: no new requests.",
                |b| u64::from(b.health.draining()),
            ),
        ];
        for (name, help, value) in per_backend {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for backend in backends {
                let labels: Labels<'_> = [("backend", backend.name.as_str())];
                metric
                    .encode_family(&labels)?
                    .encode_gauge(&value(backend))?;
            }
        }

        let mut metric = encoder.encode_descriptor(
            "vane_backend_slow_start_share",
            "The share of requests offered to each backend while it warms up after joining or \
             returning to rotation (slow_start), from 0.1 to 1; 1 once warm.",
            None,
            MetricType::Gauge,
        )?;
        for backend in backends {
            let labels: Labels<'_> = [("backend", backend.name.as_str())];
            let share = set.warm_share(backend).unwrap_or(FULL_SHARE);
            metric
                .encode_family(&labels)?
                .encode_gauge(&(f64::from(share) / f64::from(FULL_SHARE)))?;
        }

        self.encode_discovery(&mut encoder)?;

        let mut metric = encoder.encode_descriptor(
            "vane_backend_ejections",
            "Times passive detection ejected each backend.",
            None,
            MetricType::Counter,
        )?;
        for backend in backends {
            let labels: Labels<'_> = [("backend", backend.name.as_str())];
            counter(metric.encode_family(&labels)?, backend.health.ejections())?;
        }

        gauge(
            &mut encoder,
            "vane_panic_routing",
            "1 if no backend is in rotation, so requests go to all of them.",
            u64::from(eligibility.is_panic()),
        )?;
        let budget = state.retry_budget();
        counter(
            encoder.encode_descriptor(
                "vane_retries",
                "Requests sent again to another backend after a failed attempt.",
                None,
                MetricType::Counter,
            )?,
            budget.retries(),
        )?;
        counter(
            encoder.encode_descriptor(
                "vane_retry_budget_exhausted",
                "Retries not made because the retry budget was spent.",
                None,
                MetricType::Counter,
            )?,
            budget.exhausted(),
        )?;

        let policy = state.policy();
        counter(
            encoder.encode_descriptor(
                "vane_plugin_picks",
                "Picks the policy plugin answered and the host used.",
                None,
                MetricType::Counter,
            )?,
            policy.picks().answered(),
        )?;
        let mut metric = encoder.encode_descriptor(
            "vane_plugin_fallbacks",
            "Picks served by the built-in round-robin because the plugin failed, by reason.",
            None,
            MetricType::Counter,
        )?;
        for (reason, count) in policy.fallbacks().snapshot() {
            let labels: Labels<'_> = [("reason", reason.label())];
            counter(metric.encode_family(&labels)?, count)?;
        }
        histogram(
            encoder.encode_descriptor(
                "vane_plugin_pick_seconds",
                "Duration of each call into the policy plugin to pick.",
                None,
                MetricType::Histogram,
            )?,
            &policy.picks().duration().snapshot(),
        )?;
        let breaker = policy.breaker();
        breaker_state(
            &mut encoder,
            "vane_plugin_breaker_state",
            "The plugin's circuit breaker: 1 for the state it is in (closed: the plugin is called).",
            breaker.state(),
        )?;
        let mut metric = encoder.encode_descriptor(
            "vane_plugin_breaker_transitions",
            "Times the plugin's circuit breaker entered each state.",
            None,
            MetricType::Counter,
        )?;
        for (state, count) in breaker.transitions() {
            let labels: Labels<'_> = [("state", state.label())];
            counter(metric.encode_family(&labels)?, count)?;
        }
        let feedback = policy.feedback();
        let mut metric = encoder.encode_descriptor(
            "vane_plugin_observe_outcomes",
            "Outcomes meant for the plugin's observe: delivered, or dropped (it fell behind, its breaker was open, or the backend set changed).",
            None,
            MetricType::Counter,
        )?;
        let outcomes = [
            ("delivered", feedback.delivered()),
            ("dropped", policy.outcomes_dropped()),
        ];
        for (outcome, count) in outcomes {
            let labels: Labels<'_> = [("outcome", outcome)];
            counter(metric.encode_family(&labels)?, count)?;
        }
        let mut metric = encoder.encode_descriptor(
            "vane_plugin_observe_failures",
            "Calls to the plugin's observe that failed, by reason (their outcomes are lost).",
            None,
            MetricType::Counter,
        )?;
        for (reason, count) in feedback.failures() {
            let labels: Labels<'_> = [("reason", reason.label())];
            counter(metric.encode_family(&labels)?, count)?;
        }
        breaker_state(
            &mut encoder,
            "vane_plugin_observe_breaker_state",
            "The breaker of the plugin's observe calls: 1 for the state it is in (closed: called).",
            feedback.breaker().state(),
        )?;
        let mut metric = encoder.encode_descriptor(
            "vane_plugin_log_lines",
            "Lines the plugin wrote (log calls, stdout, stderr): logged, or dropped by the rate limit.",
            None,
            MetricType::Counter,
        )?;
        let (logged, dropped) = policy.log_lines();
        for (outcome, count) in [("logged", logged), ("dropped", dropped)] {
            let labels: Labels<'_> = [("outcome", outcome)];
            counter(metric.encode_family(&labels)?, count)?;
        }
        gauge(
            &mut encoder,
            "vane_plugin_memory_bytes",
            "Linear memory the plugin's instances hold together (at most total_memory_limit).",
            policy.memory_bytes(),
        )?;
        if let Some(shadow) = policy.shadow() {
            encode_shadow(&mut encoder, shadow)?;
        }
        gauge(
            &mut encoder,
            "vane_policy_generation",
            "Which policy is in force: 1 at start, one more for each reload that swapped it.",
            policy.generation(),
        )?;
        let connections = self.0.client_connections();
        gauge(
            &mut encoder,
            "vane_client_connections",
            "Client connections open now.",
            connections.open_now(),
        )?;
        counter(
            encoder.encode_descriptor(
                "vane_client_connections_refused",
                "Client connections refused with 503 because max_connections were open.",
                None,
                MetricType::Counter,
            )?,
            connections.refused_total(),
        )?;
        counter(
            encoder.encode_descriptor(
                "vane_client_connections_evicted",
                "Idle keep-alive client connections closed to make room for a new client at max_connections.",
                None,
                MetricType::Counter,
            )?,
            connections.evicted_total(),
        )?;
        gauge(
            &mut encoder,
            "vane_tunnels_open",
            "Client connections switched to another protocol (WebSocket, Upgrade) open now.",
            connections.tunnels_open(),
        )?;
        counter(
            encoder.encode_descriptor(
                "vane_tunnels_opened",
                "Client connections switched to another protocol (WebSocket, Upgrade) since start.",
                None,
                MetricType::Counter,
            )?,
            connections.tunnels_opened_total(),
        )?;
        let mut metric = encoder.encode_descriptor(
            "vane_client_faults",
            "Requests refused and connections closed for what the client did, by fault.",
            None,
            MetricType::Counter,
        )?;
        for fault in ClientFault::ALL {
            let labels: Labels<'_> = [("fault", fault.label())];
            counter(metric.encode_family(&labels)?, connections.faults(fault))?;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            gauge(
                &mut encoder,
                "vane_runtime_tasks",
                "Tasks alive in vane's runtime: connections, requests in flight on HTTP/2, background tasks.",
                runtime.metrics().num_alive_tasks() as u64,
            )?;
        }
        if let Some(bytes) = resident_memory_bytes() {
            gauge(
                &mut encoder,
                "process_resident_memory_bytes",
                "Resident memory of the vane process, in bytes.",
                bytes,
            )?;
        }
        let mut metric = encoder.encode_descriptor(
            "vane_reloads",
            "Reloads of the config and the plugin, by result.",
            None,
            MetricType::Counter,
        )?;
        let reloads = &self.1;
        for (result, count) in [("ok", reloads.succeeded), ("refused", reloads.refused)] {
            let labels: Labels<'_> = [("result", result)];
            counter(metric.encode_family(&labels)?, count)?;
        }
        self.encode_tls(&mut encoder)
    }
}

impl StateCollector {
    /// Handshakes per TLS listener, and when each certificate expires.
    fn encode_tls(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let listeners = &self.2;
        if listeners.is_empty() {
            return Ok(());
        }
        let mut metric = encoder.encode_descriptor(
            "vane_tls_handshakes",
            "TLS handshakes done, by listener (failures are client faults: tls_handshake, tls_timeout).",
            None,
            MetricType::Counter,
        )?;
        for listener in listeners {
            let address = listener.address().to_string();
            let labels: Labels<'_> = [("listener", &address)];
            counter(metric.encode_family(&labels)?, listener.handshakes())?;
        }
        let mut metric = encoder.encode_descriptor(
            "vane_tls_certificate_expiry_timestamp_seconds",
            "When each certificate of each TLS listener expires, in seconds since the Unix epoch.",
            None,
            MetricType::Gauge,
        )?;
        for listener in listeners {
            let address = listener.address().to_string();
            for certificate in listener.certificates().list() {
                let file = certificate.files.cert.display().to_string();
                let labels = [("listener", address.as_str()), ("cert", file.as_str())];
                let expiry = certificate
                    .not_after
                    .duration_since(std::time::SystemTime::UNIX_EPOCH)
                    .map_or(0, |since| since.as_secs());
                metric.encode_family(&labels)?.encode_gauge(&expiry)?;
            }
        }
        Ok(())
    }
}

/// The process's resident set size, from `/proc/self/status` (Linux; `None` elsewhere).
fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The shadow policy's series: what was sampled, compared and agreed, its failures, pick time
/// and breaker, and each backend's picks by the active policy and by the shadow.
fn encode_shadow(
    encoder: &mut DescriptorEncoder<'_>,
    shadow: &Shadow,
) -> Result<(), std::fmt::Error> {
    let stats = shadow.stats();
    let counts: [(&str, &str, u64); 4] = [
        (
            "vane_shadow_sampled",
            "Requests sampled for the shadow policy.",
            stats.sampled(),
        ),
        (
            "vane_shadow_dropped",
            "Sampled requests the shadow was never asked about: its queue was full, or it reads other columns for the set in force.",
            stats.dropped(),
        ),
        (
            "vane_shadow_compared",
            "Sampled requests the shadow answered usably, compared with the active policy.",
            stats.compared(),
        ),
        (
            "vane_shadow_agreed",
            "Compared requests whose first choice was the same for the shadow and the active policy.",
            stats.agreed(),
        ),
    ];
    for (name, help, value) in counts {
        counter(
            encoder.encode_descriptor(name, help, None, MetricType::Counter)?,
            value,
        )?;
    }
    let mut metric = encoder.encode_descriptor(
        "vane_shadow_failures",
        "Sampled requests the shadow did not answer usably, by reason (its answer is never used).",
        None,
        MetricType::Counter,
    )?;
    for (reason, count) in stats.failures() {
        let labels: Labels<'_> = [("reason", reason.label())];
        counter(metric.encode_family(&labels)?, count)?;
    }
    histogram(
        encoder.encode_descriptor(
            "vane_shadow_pick_seconds",
            "Duration of each call into the shadow policy to pick, off the request path.",
            None,
            MetricType::Histogram,
        )?,
        &stats.picks().snapshot(),
    )?;
    breaker_state(
        encoder,
        "vane_shadow_breaker_state",
        "The shadow's circuit breaker: 1 for the state it is in (closed: the shadow is asked).",
        shadow.breaker().state(),
    )?;
    let mut metric = encoder.encode_descriptor(
        "vane_shadow_backend_picks",
        "Compared requests by backend: where the active policy sent them and where the shadow would have.",
        None,
        MetricType::Counter,
    )?;
    for (backend, shares) in stats.shares() {
        for (policy, count) in [("active", shares.actual), ("shadow", shares.would_be)] {
            let labels = [("backend", backend.as_str()), ("policy", policy)];
            counter(metric.encode_family(&labels)?, count)?;
        }
    }
    Ok(())
}

fn counter(mut metric: MetricEncoder<'_>, value: u64) -> Result<(), std::fmt::Error> {
    metric.encode_counter::<NoLabelSet, _, u64>(&value, None)
}

fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    encoder
        .encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&value)
}

/// A breaker's state as a gauge family: 1 for `current`, 0 for the other states.
fn breaker_state(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    current: BreakerState,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for state in BreakerState::ALL {
        let labels: Labels<'_> = [("state", state.label())];
        metric
            .encode_family(&labels)?
            .encode_gauge(&u64::from(state == current))?;
    }
    Ok(())
}

fn histogram(
    mut metric: MetricEncoder<'_>,
    snapshot: &HistogramSnapshot,
) -> Result<(), std::fmt::Error> {
    metric.encode_histogram::<NoLabelSet>(
        snapshot.sum_seconds,
        snapshot.count,
        &snapshot.buckets,
        None,
    )
}
