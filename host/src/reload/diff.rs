//! What a new config changes: settings that need a restart, and the new backend set, keeping
//! the statistics and health of every backend that stays (same name and address).

use std::collections::HashMap;
use std::sync::Arc;

use crate::backend::{Backend, BackendSet};
use crate::clock::Clock;
use crate::config::Config;

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

/// The backend set `config` describes, built from `current`: `None` if nothing changed.
/// A backend keeps its statistics and health when its name and address stay, whatever its
/// weight and tags become; a new one is timed by `clock`. The changes are described in `changes`.
pub(super) fn next_set(
    current: &BackendSet,
    config: &Config,
    clock: &Clock,
    changes: &mut Vec<String>,
) -> Option<BackendSet> {
    let old: HashMap<&str, &Arc<Backend>> = current
        .backends()
        .iter()
        .map(|backend| (backend.name.as_str(), backend))
        .collect();
    let mut backends = Vec::with_capacity(config.backends.len());
    for wanted in &config.backends {
        let backend = match old.get(wanted.name.as_str()) {
            Some(kept) if kept.address == wanted.address => {
                if kept.weight == wanted.weight && kept.tags == wanted.tags {
                    Arc::clone(kept)
                } else {
                    if kept.weight != wanted.weight {
                        changes.push(format!(
                            "backend {}: weight {} -> {}",
                            wanted.name, kept.weight, wanted.weight
                        ));
                    }
                    if kept.tags != wanted.tags {
                        changes.push(format!("backend {}: tags changed", wanted.name));
                    }
                    Arc::new(kept.reweighted(wanted.weight, wanted.tags.clone()))
                }
            }
            Some(kept) => {
                changes.push(format!(
                    "backend {}: address {} -> {}",
                    wanted.name, kept.address, wanted.address
                ));
                Arc::new(Backend::new(wanted, clock))
            }
            None => {
                changes.push(format!("backend {} added", wanted.name));
                Arc::new(Backend::new(wanted, clock))
            }
        };
        backends.push(backend);
    }
    for backend in current.backends() {
        if !config.backends.iter().any(|b| b.name == backend.name) {
            changes.push(format!("backend {} removed", backend.name));
        }
    }
    let same_order = backends.len() == current.len()
        && backends
            .iter()
            .zip(current.backends())
            .all(|(new, old)| Arc::ptr_eq(new, old));
    (!same_order).then(|| BackendSet::new(current.generation() + 1, backends))
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
        let set = BackendSet::from_config(&first, &Clock::new());
        let mut changes = Vec::new();
        assert!(next_set(&set, &first, &Clock::new(), &mut changes).is_none());
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
        let set = BackendSet::from_config(&first, &Clock::new());
        set.backends()[0].stats.record_failure();
        let second = config(&format!(
            "{}{}{}",
            backend("a", 1, 3),
            backend("c", 4, 1),
            backend("d", 5, 1)
        ));
        let mut changes = Vec::new();
        let next = next_set(&set, &second, &Clock::new(), &mut changes).expect("a new set");
        assert_eq!(next.generation(), set.generation() + 1);
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
