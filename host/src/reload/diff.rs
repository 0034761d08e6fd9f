//! What a new config changes: settings that need a restart, and the new backend set, keeping
//! the statistics and health of every backend that stays (same name and address).

use std::collections::HashMap;
use std::sync::Arc;

use crate::backend::{Backend, BackendSet, BackendTlsError, load_tls, next_generation};
use crate::clock::Clock;
use crate::config::{BackendConfig, Config};
use crate::tls::ClientTls;

/// The settings a reload cannot change, named as in the file, that differ between `old` and `new`.
pub(super) fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let addresses = |config: &Config| {
        let listeners = config.listeners.iter();
        listeners
            .map(|listener| (listener.address, listener.tls.is_some()))
            .collect::<Vec<_>>()
    };
    if addresses(old) != addresses(new) {
        changed.push("listen or [[listeners]] (an address, or whether it is TLS)");
    }
    if old.admin != new.admin {
        changed.push("admin");
    }
    if old.workers != new.workers {
        changed.push("workers");
    }
    if old.watch_config != new.watch_config {
        changed.push("watch_config");
    }
    if old.proxy != new.proxy {
        changed.push("[proxy]");
    }
    if old.health != new.health {
        changed.push("[health]");
    }
    if old.ejection != new.ejection {
        changed.push("[ejection]");
    }
    if old.retries != new.retries {
        changed.push("[retries]");
    }
    if let (Some(old), Some(new)) = (&old.policy, &new.policy)
        && old.cache != new.cache
    {
        changed.push("policy.cache_dir");
    }
    changed
}

/// The set of the backends `wanted`, with a slow start of `slow_start`, built from
/// `current`: `None` if nothing changed. A backend keeps its statistics and health (a drain
/// included) when its name and address stay, whatever its weight, tags, protocol and TLS
/// become; a new one is timed by `clock`. TLS files are read again, and a backend whose files
/// still hold the same keeps its TLS (and its pooled connections). The changes are described
/// in `changes`.
pub(super) fn next_set(
    current: &BackendSet,
    wanted: &[BackendConfig],
    slow_start: std::time::Duration,
    clock: &Clock,
    changes: &mut Vec<String>,
) -> Result<Option<BackendSet>, BackendTlsError> {
    let old: HashMap<&str, &Arc<Backend>> = current
        .backends()
        .iter()
        .map(|backend| (backend.name.as_str(), backend))
        .collect();
    let mut backends = Vec::with_capacity(wanted.len());
    let listed = wanted;
    for wanted in listed {
        let tls = load_tls(wanted)?;
        let backend = match old.get(wanted.name.as_str()) {
            Some(kept) if kept.address == wanted.address => {
                let tls = match (&kept.tls, tls) {
                    (Some(old), Some(new)) if old.same_as(&new) => Some(old.clone()),
                    (_, new) => new,
                };
                let described = describe_change(kept, wanted, tls.as_ref());
                if described.is_empty() {
                    Arc::clone(kept)
                } else {
                    changes.extend(described);
                    Arc::new(kept.updated(wanted, tls))
                }
            }
            Some(kept) => {
                changes.push(format!(
                    "backend {}: address {} -> {}",
                    wanted.name, kept.address, wanted.address
                ));
                joining(Backend::new(wanted, tls, clock))
            }
            None => {
                changes.push(format!("backend {} added", wanted.name));
                joining(Backend::new(wanted, tls, clock))
            }
        };
        backends.push(backend);
    }
    for backend in current.backends() {
        if !listed.iter().any(|b| b.name == backend.name) {
            changes.push(format!("backend {} removed", backend.name));
        }
    }
    if slow_start != current.slow_start() {
        changes.push(format!(
            "slow_start {} -> {}",
            humantime::format_duration(current.slow_start()),
            humantime::format_duration(slow_start)
        ));
    }
    let same = backends.len() == current.len()
        && backends
            .iter()
            .zip(current.backends())
            .all(|(new, old)| Arc::ptr_eq(new, old))
        && slow_start == current.slow_start();
    Ok((!same).then(|| BackendSet::new(next_generation(), backends).with_slow_start(slow_start)))
}

/// A backend joining the set, warming up from now (slow start).
fn joining(backend: Backend) -> Arc<Backend> {
    backend.health.start_warming();
    Arc::new(backend)
}

/// What differs between `kept` and `wanted` (with `tls`, read from `wanted`'s files), one line
/// each; nothing if the backend stays as it is.
fn describe_change(
    kept: &Backend,
    wanted: &BackendConfig,
    tls: Option<&Arc<ClientTls>>,
) -> Vec<String> {
    let name = &wanted.name;
    let mut changes = Vec::new();
    if kept.weight != wanted.weight {
        changes.push(format!(
            "backend {name}: weight {} -> {}",
            kept.weight, wanted.weight
        ));
    }
    if kept.tags != wanted.tags {
        changes.push(format!("backend {name}: tags changed"));
    }
    if kept.protocol != wanted.protocol {
        changes.push(format!(
            "backend {name}: protocol {} -> {}",
            kept.protocol, wanted.protocol
        ));
    }
    match (&kept.tls, tls) {
        (None, None) => {}
        (Some(old), Some(new)) if Arc::ptr_eq(old, new) => {}
        (Some(_), Some(_)) => {
            changes.push(format!("backend {name}: TLS settings or files changed"))
        }
        (None, Some(_)) => changes.push(format!("backend {name}: TLS on")),
        (Some(_), None) => changes.push(format!("backend {name}: TLS off")),
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(backends: &str) -> Config {
        format!("listen = \"127.0.0.1:1\"\n{backends}")
            .parse()
            .unwrap()
    }

    fn backend(name: &str, port: u16, weight: u32) -> String {
        format!(
            "[[backends]]\nname = \"{name}\"\naddress = \"127.0.0.1:{port}\"\nweight = {weight}\n"
        )
    }

    #[test]
    fn an_unchanged_config_keeps_the_set() {
        let first = config(&format!("{}{}", backend("a", 1, 1), backend("b", 2, 1)));
        let set = BackendSet::from_config(&first, &Clock::new()).unwrap();
        let mut changes = Vec::new();
        assert!(
            next_set(
                &set,
                &first.backends,
                first.slow_start,
                &Clock::new(),
                &mut changes
            )
            .unwrap()
            .is_none()
        );
        assert!(changes.is_empty());
    }

    #[test]
    fn kept_backends_keep_their_statistics_and_changes_are_described() {
        let first = config(&format!(
            "{}{}{}",
            backend("a", 1, 1),
            backend("b", 2, 1),
            backend("c", 3, 1)
        ));
        let set = BackendSet::from_config(&first, &Clock::new()).unwrap();
        set.backends()[0].stats.record_failure();
        let second = config(&format!(
            "{}{}{}",
            backend("a", 1, 3),
            backend("c", 4, 1),
            backend("d", 5, 1)
        ));
        let mut changes = Vec::new();
        let next = next_set(
            &set,
            &second.backends,
            second.slow_start,
            &Clock::new(),
            &mut changes,
        )
        .unwrap()
        .expect("a new set");
        assert!(next.generation() > set.generation());
        assert_eq!(next.backends()[0].weight, 3);
        assert_eq!(
            next.backends()[0].stats.failures(),
            1,
            "a's statistics are kept"
        );
        assert!(!Arc::ptr_eq(
            &next.backends()[1].stats,
            &set.backends()[2].stats
        ));
        assert_eq!(
            changes,
            vec![
                "backend a: weight 1 -> 3",
                "backend c: address 127.0.0.1:3 -> 127.0.0.1:4",
                "backend d added",
                "backend b removed",
            ]
        );
    }

    #[test]
    fn restart_only_settings_are_named() {
        let first = config(&backend("a", 1, 1));
        let second: Config = format!(
            "listen = \"127.0.0.1:2\"\n[proxy]\nconnect_timeout = \"1s\"\n{}",
            backend("a", 1, 1)
        )
        .parse()
        .unwrap();
        assert_eq!(
            needs_restart(&first, &second),
            vec![
                "listen or [[listeners]] (an address, or whether it is TLS)",
                "[proxy]"
            ]
        );
        assert!(needs_restart(&first, &first).is_empty());
    }
}
