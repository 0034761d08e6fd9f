//! The admin API's runtime calls, as HAProxy's runtime API has them: add a backend, remove
//! one, change its weight, drain it and put it back. A change of the set is admitted as a
//! reload is (the plugin in force must configure itself for the new set and answer probe
//! picks) and changes the config in force, not the file: the next reload of the file starts
//! again from the file. A drain is a backend's state, not the config's: it lasts while the
//! backend (same name and address) stays, across reloads.

use std::sync::Arc;

use serde::Deserialize;

use super::{ReloadError, Reloaded, Reloader, lock};
use crate::backend::Backend;
use crate::config::{BackendConfig, BackendProtocol, BackendTls, Config};

/// A backend to add, as `POST /backends` takes it (JSON); the fields of a `[[backends]]`
/// entry, with `tls` on or off (on checks the backend against the system's roots).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewBackend {
    /// Its name, unique in the set.
    pub name: String,
    /// Where it is, as `ip:port`.
    pub address: String,
    /// Its weight, 1 to 1 000 000; default 1.
    pub weight: Option<i64>,
    /// Labels handed to the plugin.
    #[serde(default)]
    pub tags: Vec<String>,
    /// `http1` (the default), `h2` or `h2c`.
    pub protocol: Option<String>,
    /// Whether it takes TLS; default off.
    #[serde(default)]
    pub tls: bool,
}

/// Where a backend of the set in force comes from, for `GET /backends`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendOrigin {
    /// The config file lists it.
    Config,
    /// It was added through the admin API.
    Api,
    /// It is a member of the discovered group of this name.
    Group(String),
}

/// What tells where each backend of the set in force comes from, read once for a whole set.
pub struct Origins {
    groups: Vec<String>,
    added: std::collections::BTreeSet<String>,
}

impl Origins {
    /// Where the backend `name` comes from.
    pub fn of(&self, name: &str) -> BackendOrigin {
        match name.split_once('/') {
            Some((group, _)) if self.groups.iter().any(|known| known == group) => {
                BackendOrigin::Group(group.to_owned())
            }
            _ if self.added.contains(name) => BackendOrigin::Api,
            _ => BackendOrigin::Config,
        }
    }
}

impl Reloader {
    /// Where the backends of the set in force come from, as of now.
    pub fn origins(&self) -> Origins {
        Origins {
            groups: self.discovery.group_names(),
            added: lock(&self.added).clone(),
        }
    }

    /// Adds `new` to the set, admitted as a reload is.
    pub async fn add_backend(&self, new: NewBackend) -> Result<Reloaded, ReloadError> {
        let mut current = self.config.lock().await;
        let backend = checked(new, &current)?;
        let taken = self
            .state
            .backends()
            .backends()
            .iter()
            .any(|b| b.name == backend.name);
        if taken || current.backends.iter().any(|b| b.name == backend.name) {
            return Err(ReloadError::BadBackend(format!(
                "there is a backend {:?} already",
                backend.name
            )));
        }
        let name = backend.name.clone();
        let mut next = current.clone();
        next.backends.push(backend);
        let reloaded = self.admit_backends(&next).await;
        self.remember("admin API", &reloaded);
        let reloaded = reloaded?;
        *current = next;
        lock(&self.added).insert(name.clone());
        tracing::info!(backend = %name, "admin API: backend added");
        Ok(reloaded)
    }

    /// Removes the listed backend `name`, which must be drained and idle first unless `force`
    /// (its requests in flight finish either way).
    pub async fn remove_backend(&self, name: &str, force: bool) -> Result<Reloaded, ReloadError> {
        let mut current = self.config.lock().await;
        self.listed(&current, name, "removed")?;
        let backend = self.in_force(name)?;
        if !force && !backend.health.draining() {
            return Err(ReloadError::Conflict(format!(
                "backend {name:?} is not drained: drain it first (POST /backends/{name}/drain), \
                 then remove it once its in_flight is 0; or add ?force=true"
            )));
        }
        let in_flight = backend.stats.in_flight();
        if !force && in_flight > 0 {
            return Err(ReloadError::Conflict(format!(
                "backend {name:?} still has {in_flight} requests in flight: remove it once its \
                 in_flight is 0, or add ?force=true (they finish either way)"
            )));
        }
        if self.state.backends().len() == 1 {
            return Err(ReloadError::Conflict(format!(
                "backend {name:?} is the last one: add another first"
            )));
        }
        let mut next = current.clone();
        next.backends.retain(|b| b.name != name);
        let reloaded = self.admit_backends(&next).await;
        self.remember("admin API", &reloaded);
        let reloaded = reloaded?;
        *current = next;
        lock(&self.added).remove(name);
        tracing::info!(backend = %name, in_flight, "admin API: backend removed");
        Ok(reloaded)
    }

    /// Sets the weight of the listed backend `name` (1 to 1 000 000), admitted as a reload is.
    pub async fn set_weight(&self, name: &str, weight: i64) -> Result<Reloaded, ReloadError> {
        let mut current = self.config.lock().await;
        let weight = checked_weight(weight)?;
        let index = self.listed(&current, name, "reweighted")?;
        let mut next = current.clone();
        next.backends[index].weight = weight;
        let reloaded = self.admit_backends(&next).await;
        self.remember("admin API", &reloaded);
        let reloaded = reloaded?;
        *current = next;
        tracing::info!(backend = %name, weight, "admin API: weight set");
        Ok(reloaded)
    }

    /// Drains the backend `name` of the set in force (no new requests; those in flight
    /// finish), or puts it back; answers whether this changed anything, and its requests in
    /// flight.
    pub fn set_draining(&self, name: &str, draining: bool) -> Result<(bool, u32), ReloadError> {
        let backend = self.in_force(name)?;
        let changed = backend.health.set_draining(draining);
        if changed {
            let what = if draining {
                "draining"
            } else {
                "back in rotation"
            };
            let change = Reloaded {
                changes: vec![format!("backend {name} {what}")],
            };
            self.remember("admin API", &Ok(change));
            let verb = if draining {
                "draining"
            } else {
                "back in rotation"
            };
            tracing::info!(backend = %name, in_flight = backend.stats.in_flight(), "admin API: {verb}");
        }
        Ok((changed, backend.stats.in_flight()))
    }

    /// The backend `name` of the set in force.
    fn in_force(&self, name: &str) -> Result<Arc<Backend>, ReloadError> {
        let set = self.state.backends();
        let backend = set.backends().iter().find(|b| b.name == name);
        backend
            .cloned()
            .ok_or_else(|| ReloadError::UnknownBackend(name.to_owned()))
    }

    /// The index in `config.backends` of the backend `name`, which the admin API may change
    /// (`done` says how, for the refusal): not a member of a discovered group.
    fn listed(&self, config: &Config, name: &str, done: &str) -> Result<usize, ReloadError> {
        if let Some(group) = config.group_of(name) {
            return Err(ReloadError::Conflict(format!(
                "backend {name:?} is a member of the group {:?} ({}), which finds its members: \
                 it cannot be {done} through the admin API, only drained",
                group.name, group.source
            )));
        }
        config
            .backends
            .iter()
            .position(|b| b.name == name)
            .ok_or_else(|| ReloadError::UnknownBackend(name.to_owned()))
    }
}

/// The backend `new` describes, checked as the config file's entries are, against `config`'s
/// groups.
fn checked(new: NewBackend, config: &Config) -> Result<BackendConfig, ReloadError> {
    let bad = |message: String| Err(ReloadError::BadBackend(message));
    let name = new.name.trim().to_owned();
    if name.is_empty() {
        return bad("name must not be empty".to_owned());
    }
    if let Some(group) = config.group_of(&name) {
        return bad(format!(
            "name {name:?} would read as a member of the group {:?}: name it otherwise",
            group.name
        ));
    }
    if config.groups.iter().any(|group| group.name == name) {
        return bad(format!("name {name:?} is a group's: name it otherwise"));
    }
    let Ok(address) = new.address.trim().parse() else {
        return bad(format!(
            "address {:?} is not of the form ip:port, such as 127.0.0.1:8080",
            new.address
        ));
    };
    let weight = checked_weight(new.weight.unwrap_or(1))?;
    let protocol: BackendProtocol = match new.protocol.as_deref().map(str::parse).transpose() {
        Ok(protocol) => protocol.unwrap_or_default(),
        Err(message) => return bad(format!("protocol: {message}")),
    };
    if let Some(message) = protocol.tls_mismatch(new.tls) {
        return bad(format!("protocol: {message}"));
    }
    Ok(BackendConfig {
        name,
        address,
        weight,
        tags: new.tags,
        protocol,
        tls: new.tls.then(BackendTls::default),
    })
}

/// `value` if it is a weight a backend may have.
fn checked_weight(value: i64) -> Result<u32, ReloadError> {
    crate::config::weight(value)
        .map_err(|message| ReloadError::BadBackend(format!("weight {message}")))
}
