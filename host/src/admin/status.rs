//! `GET /backends`, `GET /policy` and `GET /tls`: what the proxy knows, as JSON.

use std::time::SystemTime;

use serde_json::{Map, Value, json};

use crate::backend::{FULL_SHARE, Outcome};
use crate::discovery::Discovery;
use crate::policy::{Feedback, Shadow};
use crate::reload::{BackendOrigin, ReloadStatus, Reloader};
use crate::state::State;
use crate::tls::TlsListener;

/// Every backend of the current set: its facts, where it comes from (`reloader` knows), health
/// and live statistics.
pub(super) fn backends(state: &State, reloader: &Reloader) -> Value {
    let origins = reloader.origins();
    let set = state.backends();
    let eligibility = set.eligibility();
    let backends: Vec<Value> = set
        .backends()
        .iter()
        .map(|backend| {
            let stats = &backend.stats;
            let health = &backend.health;
            let responses: Map<String, Value> = Outcome::LABELS
                .iter()
                .zip(stats.outcomes())
                .map(|(label, count)| ((*label).to_owned(), json!(count)))
                .collect();
            let (origin, group) = match origins.of(&backend.name) {
                BackendOrigin::Config => ("config", None),
                BackendOrigin::Api => ("api", None),
                BackendOrigin::Group(group) => ("discovery", Some(group)),
            };
            json!({
                "name": backend.name,
                "address": backend.address.to_string(),
                "weight": backend.weight,
                "tags": backend.tags,
                "origin": origin,
                "group": group,
                "healthy": health.healthy(),
                "draining": health.draining(),
                "ejected": health.ejected(),
                "ejected_until": health.ejected_until().map(rfc3339),
                "ejections": health.ejections(),
                "eligible": eligibility.allows(backend),
                "slow_start_share": set.warm_share(backend)
                    .map(|share| f64::from(share) / f64::from(FULL_SHARE)),
                "in_flight": stats.in_flight(),
                "requests": stats.requests(),
                "failures": stats.failures(),
                "latency_ewma_us": stats.latency_ewma_us(),
                "responses": responses,
            })
        })
        .collect();
    json!({
        "generation": set.generation(),
        "panic_routing": eligibility.is_panic(),
        "backends": backends,
    })
}

/// Every group of backends found at run time: its source, members and lookups, and the last
/// change of members the plugin refused (until one is admitted).
pub(super) fn discovery(discovery: &Discovery) -> Value {
    let groups: Vec<Value> = discovery
        .groups()
        .into_iter()
        .map(|group| {
            json!({
                "name": group.name,
                "source": group.source,
                "members": group.members,
                "answered": group.answered,
                "serving_last_good": group.serving_last_good,
                "lookups": group.lookups,
                "failures": group.failures,
                "last_lookup": group.last_lookup.map(rfc3339),
                "last_answer": group.last_answer.map(rfc3339),
                "ttl_seconds": group.ttl.map(|ttl| ttl.as_secs()),
                "next_lookup": group.next_lookup.map(rfc3339),
                "last_error": group.last_error.map(|(at, message)| json!({
                    "at": rfc3339(at),
                    "message": message,
                })),
            })
        })
        .collect();
    json!({
        "groups": groups,
        "last_refused": discovery.refused().map(|(at, message)| json!({
            "at": rfc3339(at),
            "message": message,
        })),
    })
}

/// The active policy: the plugin (path, hash, load time) or the built-in, with its counters,
/// and what reloads have done.
pub(super) fn policy(state: &State, reloads: ReloadStatus) -> Value {
    let policy = state.policy();
    let plugin = policy.plugin_info().map(|info| {
        json!({
            "name": info.name,
            "path": info.path.display().to_string(),
            "sha256": info.sha256,
            "loaded_at": rfc3339(info.loaded_at),
        })
    });
    let fallbacks: Map<String, Value> = policy
        .fallbacks()
        .snapshot()
        .iter()
        .map(|(reason, count)| (reason.label().to_owned(), json!(count)))
        .collect();
    json!({
        "generation": policy.generation(),
        "plugin": plugin,
        "reloads": {
            "succeeded": reloads.succeeded,
            "refused": reloads.refused,
            "last_success": reloads.last_success.map(rfc3339),
            "last_error": reloads.last_error.map(|(at, message)| json!({
                "at": rfc3339(at),
                "message": message,
            })),
            "history": reloads.history.iter().rev().map(|change| json!({
                "at": rfc3339(change.at),
                "by": change.by,
                "admitted": change.admitted,
                "what": change.what,
                "times": change.times,
            })).collect::<Vec<_>>(),
        },
        "fallback": "built-in round-robin",
        "breaker": policy.breaker().state().label(),
        "picks_answered": policy.picks().answered(),
        "fallbacks": fallbacks,
        "shadow": match (policy.shadow(), policy.shadow_failure()) {
            (Some(running), _) => shadow(running),
            (None, Some((path, reason))) => json!({
                "path": path.display().to_string(),
                "error": reason,
            }),
            (None, None) => Value::Null,
        },
        "observe": policy
            .wants_feedback()
            .then(|| feedback(policy.feedback(), policy.outcomes_dropped())),
    })
}

/// The shadow policy: its plugin, sample, agreement with the active policy, would-be shares
/// against the actual ones, pick time, failures and breaker.
fn shadow(shadow: &Shadow) -> Value {
    let info = shadow.info();
    let stats = shadow.stats();
    let compared = stats.compared();
    let share = |count: u64| (compared > 0).then(|| count as f64 / compared as f64);
    let backends: Vec<Value> = stats
        .shares()
        .into_iter()
        .map(|(name, shares)| {
            json!({
                "name": name,
                "actual": shares.actual,
                "would_be": shares.would_be,
                "actual_share": share(shares.actual),
                "would_be_share": share(shares.would_be),
            })
        })
        .collect();
    let failures: Map<String, Value> = stats
        .failures()
        .iter()
        .map(|(reason, count)| (reason.label().to_owned(), json!(count)))
        .collect();
    let picks = stats.picks().snapshot();
    let micros = |seconds: Option<f64>| seconds.map(|s| (s * 1e6).round());
    json!({
        "name": info.name,
        "path": info.path.display().to_string(),
        "sha256": info.sha256,
        "loaded_at": rfc3339(info.loaded_at),
        "sample_percent": shadow.sample_percent(),
        "sampled": stats.sampled(),
        "dropped": stats.dropped(),
        "compared": compared,
        "agreed": stats.agreed(),
        "agreement": share(stats.agreed()),
        "breaker": shadow.breaker().state().label(),
        "pick_us": {
            "mean": (picks.count > 0).then(|| picks.sum_seconds * 1e6 / picks.count as f64),
            "p50_at_most": micros(picks.quantile_at_most(0.5)),
            "p99_at_most": micros(picks.quantile_at_most(0.99)),
        },
        "failures": failures,
        "backends": backends,
        "observe": shadow
            .wants_feedback()
            .then(|| feedback(shadow.feedback(), shadow.outcomes_dropped())),
    })
}

/// What became of the outcomes meant for a plugin's `observe`: its breaker, outcomes
/// delivered and `dropped`, failures by reason.
fn feedback(feedback: &Feedback, dropped: u64) -> Value {
    let failures: Map<String, Value> = feedback
        .failures()
        .iter()
        .map(|(reason, count)| (reason.label().to_owned(), json!(count)))
        .collect();
    json!({
        "breaker": feedback.breaker().state().label(),
        "outcomes_delivered": feedback.delivered(),
        "outcomes_dropped": dropped,
        "failures": failures,
    })
}

/// Every TLS listener: its certificates (files, names, expiry) and handshakes done.
pub(super) fn tls(listeners: &[std::sync::Arc<TlsListener>]) -> Value {
    let now = SystemTime::now();
    let listeners: Vec<Value> = listeners
        .iter()
        .map(|listener| {
            let certificates: Vec<Value> = listener
                .certificates()
                .list()
                .iter()
                .map(|certificate| {
                    let left = certificate.not_after.duration_since(now);
                    json!({
                        "cert": certificate.files.cert.display().to_string(),
                        "key": certificate.files.key.display().to_string(),
                        "names": certificate.names,
                        "not_after": rfc3339(certificate.not_after),
                        "days_left": left.as_ref().map_or(0, |left| left.as_secs() / 86_400),
                        "expired": left.is_err(),
                        "expires_soon": certificate.expires_soon(now),
                    })
                })
                .collect();
            json!({
                "address": listener.address().to_string(),
                "handshakes": listener.handshakes(),
                "certificates": certificates,
            })
        })
        .collect();
    json!({ "listeners": listeners })
}

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}
