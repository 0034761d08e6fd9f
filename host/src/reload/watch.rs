//! Watches the plugin file and reloads the plugin when it changes. Editors and build tools
//! write files in many ways (in place, truncate-and-write, atomic rename, bursts of events), so
//! the folder is watched rather than the file, events are debounced until the file has been
//! quiet for a moment, and a reload of a file whose content is already loaded does nothing.
//!
//! A file is watched before its plugin is read, at start and at a reload that names another
//! file, so no change made meanwhile goes unseen.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Reloader, lock, watched_plugin};
use crate::config::Config;

/// How long the file must be quiet before it is read: long enough for a build tool's burst of
/// writes, short enough that a swap feels immediate.
const QUIET: Duration = Duration::from_millis(250);

/// The watch on the plugin file the config in force names (if it asks for watching). Every
/// event that may have changed the file goes to one channel, [`PluginChanges`], for the life
/// of vane, whichever file is watched.
pub struct PluginWatch {
    watching: Mutex<FileWatch>,
    changes: mpsc::UnboundedSender<()>,
}

/// The events [`PluginWatch`] sends; [`follow_changes`] reloads on them.
pub struct PluginChanges(mpsc::UnboundedReceiver<()>);

/// One watched file, or none.
pub(super) struct FileWatch {
    path: Option<PathBuf>,
    _watcher: Option<RecommendedWatcher>,
}

impl PluginWatch {
    /// Starts watching the plugin file `config` names; call it before the plugin is read.
    pub fn start(config: &Config) -> (PluginWatch, PluginChanges) {
        let (send, receive) = mpsc::unbounded_channel();
        let watching = FileWatch::start(watched_plugin(config), &send);
        let watch = PluginWatch {
            watching: Mutex::new(watching),
            changes: send,
        };
        (watch, PluginChanges(receive))
    }

    /// A watch on the file `next` names, if that is not the file watched now (`None` if it
    /// is). Made before `next`'s plugin is read; [`PluginWatch::switch`] puts it in force.
    pub(super) fn prepare(&self, next: &Config) -> Option<FileWatch> {
        let path = watched_plugin(next);
        if lock(&self.watching).path == path {
            return None;
        }
        Some(FileWatch::start(path, &self.changes))
    }

    /// Watches `next`'s file from now on, and no longer the one watched before.
    pub(super) fn switch(&self, next: FileWatch) {
        *lock(&self.watching) = next;
    }
}

/// Reloads the plugin whenever its file changes (once the changes pause for a moment), until
/// `stop` is cancelled.
pub async fn follow_changes(
    mut changes: PluginChanges,
    reloader: Arc<Reloader>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            change = changes.0.recv() => {
                if change.is_none() {
                    return;
                }
                while let Ok(Some(())) = tokio::time::timeout(QUIET, changes.0.recv()).await {}
                // The outcome is logged and recorded by the reloader.
                let _ = reloader.reload_plugin().await;
            }
            () = stop.cancelled() => return,
        }
    }
}

impl FileWatch {
    /// Watches `path` (nothing if `None`), sending to `changes`; logs why if it cannot.
    fn start(path: Option<PathBuf>, changes: &mpsc::UnboundedSender<()>) -> FileWatch {
        let watcher = path
            .as_deref()
            .and_then(|path| match watch_file(path, changes.clone()) {
                Ok(watcher) => Some(watcher),
                Err(err) => {
                    tracing::warn!(path = %path.display(), error = %err, "cannot watch the plugin file; reload with SIGHUP or POST /reload");
                    None
                }
            });
        FileWatch {
            path,
            _watcher: watcher,
        }
    }
}

/// Starts watching `path`'s folder; each event on the file sends one message to `changes`.
fn watch_file(
    path: &Path,
    changes: mpsc::UnboundedSender<()>,
) -> notify::Result<RecommendedWatcher> {
    let name: Option<OsString> = path.file_name().map(ToOwned::to_owned);
    let folder: PathBuf = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<Event>| {
        let Ok(event) = event else { return };
        let about_the_file = event
            .paths
            .iter()
            .any(|changed| changed.file_name() == name.as_deref());
        if about_the_file && writes(&event.kind) {
            let _ = changes.send(());
        }
    })?;
    watcher.watch(&folder, RecursiveMode::NonRecursive)?;
    Ok(watcher)
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
