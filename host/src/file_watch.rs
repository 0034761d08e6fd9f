//! Watches on files whose change vane acts on: the plugin file, the TLS files, the config file
//! vane was started from (the reloader acts, `reload::follow_changes`), and a discovered
//! group's file of backends (discovery reads it again). Editors, build tools and certificate
//! renewers write files in many ways (in place, truncate-and-write, atomic rename, bursts of
//! events), so the folders are watched rather than the files, and events are debounced until
//! the files have been quiet for a moment.
//!
//! Files are watched before they are read, at start and at a reload that names others, so no
//! change made meanwhile goes unseen.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// How long the files must be quiet before they are read: long enough for a build tool's burst
/// of writes (or a certificate written before its key), short enough that a swap feels
/// immediate.
const QUIET: Duration = Duration::from_millis(250);

/// What a [`FileWatch`] watches, and so what a change reloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watched {
    /// The plugin file: the plugin is reloaded.
    Plugin,
    /// The TLS listeners' certificate and key files: the certificates are read again.
    Certificates,
    /// The config file vane was started from: the config (and plugin) is reloaded, as SIGHUP
    /// does.
    Config,
    /// A group's file of members: the group is read again.
    Members,
}

/// A watch on the files the config in force names for one purpose. Every event that may have
/// changed one goes to one channel, [`FileChanges`], for the life of vane, whichever files are
/// watched.
pub struct FileWatch {
    watched: Watched,
    watching: Mutex<Watching>,
    changes: mpsc::UnboundedSender<()>,
}

/// The events a [`FileWatch`] sends (`reload::follow_changes` reloads on them).
pub struct FileChanges(mpsc::UnboundedReceiver<()>);

impl FileChanges {
    /// Waits for a change, then until the files have been quiet for a moment; `false` once no
    /// change can come.
    pub async fn next(&mut self) -> bool {
        if self.0.recv().await.is_none() {
            return false;
        }
        while let Ok(Some(())) = tokio::time::timeout(QUIET, self.0.recv()).await {}
        true
    }
}

/// The files watched now, if any.
pub struct Watching {
    paths: Vec<PathBuf>,
    _watcher: Option<RecommendedWatcher>,
}

impl FileWatch {
    /// Starts watching `paths` for `watched`; call it before they are read.
    pub fn start(watched: Watched, paths: Vec<PathBuf>) -> (FileWatch, FileChanges) {
        let (send, receive) = mpsc::unbounded_channel();
        let watching = Watching::start(watched, paths, &send);
        let watch = FileWatch {
            watched,
            watching: Mutex::new(watching),
            changes: send,
        };
        (watch, FileChanges(receive))
    }

    /// A watch on `paths`, if they are not the files watched now (`None` if they are). Made
    /// before the files are read; [`FileWatch::switch`] puts it in force.
    pub fn prepare(&self, paths: Vec<PathBuf>) -> Option<Watching> {
        if lock(&self.watching).paths == paths {
            return None;
        }
        Some(Watching::start(self.watched, paths, &self.changes))
    }

    /// Watches `next`'s files from now on, and no longer the ones watched before.
    pub fn switch(&self, next: Watching) {
        *lock(&self.watching) = next;
    }
}

impl Watching {
    /// Watches `paths` (nothing if empty), sending to `changes`; logs why if it cannot.
    fn start(
        watched: Watched,
        paths: Vec<PathBuf>,
        changes: &mpsc::UnboundedSender<()>,
    ) -> Watching {
        let watcher = if paths.is_empty() {
            None
        } else {
            match watch_files(&paths, changes.clone()) {
                Ok(watcher) => Some(watcher),
                Err(err) => {
                    let files: Vec<_> = paths.iter().map(|p| p.display().to_string()).collect();
                    tracing::warn!(files = %files.join(","), error = %err, ?watched, "cannot watch these files; reload with SIGHUP or POST /reload");
                    None
                }
            }
        };
        Watching {
            paths,
            _watcher: watcher,
        }
    }
}

/// Starts watching the folders of `paths`; each event on one of the files, or on the entry of
/// the same folder a file's symlink goes through, sends one message to `changes`.
fn watch_files(
    paths: &[PathBuf],
    changes: mpsc::UnboundedSender<()>,
) -> notify::Result<RecommendedWatcher> {
    let elsewhere: Vec<(PathBuf, OsString)> =
        paths.iter().filter_map(|p| target_elsewhere(p)).collect();
    let names: BTreeSet<OsString> = paths
        .iter()
        .flat_map(|path| names_of(path))
        .chain(elsewhere.iter().map(|(_, name)| name.clone()))
        .collect();
    let folders: BTreeSet<PathBuf> = paths
        .iter()
        .map(|path| folder_of(path))
        .chain(elsewhere.into_iter().map(|(folder, _)| folder))
        .collect();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<Event>| {
        let Ok(event) = event else { return };
        let about_the_files = event
            .paths
            .iter()
            .any(|changed| changed.file_name().is_some_and(|name| names.contains(name)));
        if about_the_files && writes(&event.kind) {
            let _ = changes.send(());
        }
    })?;
    for folder in &folders {
        watcher.watch(folder, RecursiveMode::NonRecursive)?;
    }
    Ok(watcher)
}

/// The names in `path`'s folder whose change changes what `path` reads: its own, and, for a
/// symlink with a relative target, the target's first component. Kubernetes mounts a
/// ConfigMap's `vane.toml` as `vane.toml -> ..data/vane.toml` and updates it by renaming a new
/// `..data` symlink into place: the event names `..data`, never `vane.toml`.
fn names_of(path: &Path) -> Vec<OsString> {
    let mut names: Vec<OsString> = path
        .file_name()
        .map(ToOwned::to_owned)
        .into_iter()
        .collect();
    if let Ok(target) = std::fs::read_link(path)
        && target.is_relative()
        && let Some(std::path::Component::Normal(first)) = target.components().next()
    {
        names.push(first.to_owned());
    }
    names
}

/// For a symlink whose target is in another folder (an absolute target, or one that goes up
/// with `..`), that folder and the target's name: a file replaced there is a change of what
/// the link reads. `None` for anything else, or if that folder does not exist.
fn target_elsewhere(path: &Path) -> Option<(PathBuf, OsString)> {
    let target = std::fs::read_link(path).ok()?;
    let goes_elsewhere = target.is_absolute()
        || matches!(
            target.components().next(),
            Some(std::path::Component::ParentDir)
        );
    if !goes_elsewhere {
        return None;
    }
    let resolved = folder_of(path).join(&target);
    let name = resolved.file_name()?.to_owned();
    let folder = folder_of(&resolved);
    folder.is_dir().then_some((folder, name))
}

/// The folder a file is in (`.` for a bare name).
fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Whether an event may have changed the file's content. Reads (vane's own included) and
/// removals do not: a file that is replaced is also created or renamed into place.
fn writes(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Create(_)
            | EventKind::Modify(_)
            | EventKind::Access(AccessKind::Close(AccessMode::Write))
    )
}

/// Locks a mutex whose holder cannot leave it inconsistent, poisoned or not.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
