//! Watches the plugin file and reloads the plugin when it changes. Editors and build tools
//! write files in many ways (in place, truncate-and-write, atomic rename, bursts of events), so
//! the folder is watched rather than the file, events are debounced until the file has been
//! quiet for a moment, and a reload of a file whose content is already loaded does nothing.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Reloader;

/// How long the file must be quiet before it is read: long enough for a build tool's burst of
/// writes, short enough that a swap feels immediate.
const QUIET: Duration = Duration::from_millis(250);

/// Reloads the plugin whenever its file changes, following the file the config in force names,
/// until `stop` is cancelled.
pub async fn watch_plugin(reloader: Arc<Reloader>, stop: CancellationToken) {
    let mut watched = reloader.watched_plugin();
    loop {
        let path = watched.borrow_and_update().clone();
        let (changes, _watcher) = match path.as_deref().map(watch_file) {
            Some(Ok((changes, watcher))) => (Some(changes), Some(watcher)),
            Some(Err(err)) => {
                tracing::warn!(error = %err, "cannot watch the plugin file; reload with SIGHUP or POST /reload");
                (None, None)
            }
            None => (None, None),
        };
        let Some(mut changes) = changes else {
            tokio::select! {
                changed = watched.changed() => if changed.is_err() { return },
                () = stop.cancelled() => return,
            }
            continue;
        };
        loop {
            tokio::select! {
                Some(()) = changes.recv() => {
                    while let Ok(Some(())) = tokio::time::timeout(QUIET, changes.recv()).await {}
                    // The outcome is logged and recorded by the reloader.
                    let _ = reloader.reload_plugin().await;
                }
                changed = watched.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    break;
                }
                () = stop.cancelled() => return,
            }
        }
    }
}

/// Starts watching `path`'s folder; each event on the file sends one message.
fn watch_file(path: &Path) -> notify::Result<(mpsc::UnboundedReceiver<()>, RecommendedWatcher)> {
    let name: Option<OsString> = path.file_name().map(ToOwned::to_owned);
    let folder: PathBuf = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    let (send, receive) = mpsc::unbounded_channel();
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
    Ok((receive, watcher))
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
