//! Watches the plugin file and reloads the plugin when it changes. Editors and build tools
//! write files in many ways (in place, truncate-and-write, atomic rename, bursts of events), so
//! the folder is watched rather than the file, events are debounced until the file has been
//! quiet for a moment, and a reload of a file whose content is already loaded does nothing.

use std::ffi::OsString;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch as channel};
use tokio_util::sync::CancellationToken;

use super::{Reloader, watched_plugin};
use crate::config::Config;

/// How long the file must be quiet before it is read: long enough for a build tool's burst of
/// writes, short enough that a swap feels immediate.
const QUIET: Duration = Duration::from_millis(250);

/// The watch on the plugin file a config names. It is set up before the plugin is loaded, so
/// a change made while vane starts (or right after it says it is serving) is not missed.
pub struct PluginWatch {
    file: Option<FileWatch>,
}

impl PluginWatch {
    /// Starts watching the plugin file `config` names, if it asks for watching.
    pub fn start(config: &Config) -> PluginWatch {
        PluginWatch {
            file: watched_plugin(config).and_then(|path| FileWatch::start_or_warn(&path)),
        }
    }

    /// Reloads the plugin whenever its file changes, following the file the config in force
    /// names, until `stop` is cancelled. `reloader` must be the one made from the config this
    /// watch started with; the files it will name are followed from the moment of this call.
    pub fn follow(
        self,
        reloader: Arc<Reloader>,
        stop: CancellationToken,
    ) -> impl Future<Output = ()> + Send + 'static {
        let watched = reloader.watched_plugin();
        self.run(reloader, watched, stop)
    }

    async fn run(
        mut self,
        reloader: Arc<Reloader>,
        mut watched: channel::Receiver<Option<PathBuf>>,
        stop: CancellationToken,
    ) {
        loop {
            let changed = match &mut self.file {
                Some(file) => tokio::select! {
                    Some(()) = file.changes.recv() => {
                        while let Ok(Some(())) = tokio::time::timeout(QUIET, file.changes.recv()).await {}
                        // The outcome is logged and recorded by the reloader.
                        let _ = reloader.reload_plugin().await;
                        continue;
                    }
                    changed = watched.changed() => changed,
                    () = stop.cancelled() => return,
                },
                None => tokio::select! {
                    changed = watched.changed() => changed,
                    () = stop.cancelled() => return,
                },
            };
            if changed.is_err() {
                return;
            }
            let path = watched.borrow_and_update().clone();
            self.file = path.as_deref().and_then(FileWatch::start_or_warn);
        }
    }
}

/// A watch on one file: each event that may have changed it sends one message.
struct FileWatch {
    changes: mpsc::UnboundedReceiver<()>,
    _watcher: RecommendedWatcher,
}

impl FileWatch {
    /// Starts watching `path`, or logs why it cannot.
    fn start_or_warn(path: &Path) -> Option<FileWatch> {
        match FileWatch::start(path) {
            Ok(watch) => Some(watch),
            Err(err) => {
                tracing::warn!(path = %path.display(), error = %err, "cannot watch the plugin file; reload with SIGHUP or POST /reload");
                None
            }
        }
    }

    /// Starts watching `path`'s folder for events on the file.
    fn start(path: &Path) -> notify::Result<FileWatch> {
        let name: Option<OsString> = path.file_name().map(ToOwned::to_owned);
        let folder: PathBuf = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
            _ => PathBuf::from("."),
        };
        let (send, changes) = mpsc::unbounded_channel();
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<Event>| {
            let Ok(event) = event else { return };
            let about_the_file = event
                .paths
                .iter()
                .any(|changed| changed.file_name() == name.as_deref());
            if about_the_file && writes(&event.kind) {
                let _ = send.send(());
            }
        })?;
        watcher.watch(&folder, RecursiveMode::NonRecursive)?;
        Ok(FileWatch {
            changes,
            _watcher: watcher,
        })
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
