//! Reloads when a watched file changes: the plugin file (the plugin is reloaded, unless its
//! content is the plugin loaded already), the TLS listeners' certificate and key files (read
//! again), and the config file vane was started from (reloaded, as SIGHUP does).

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::Reloader;
use crate::file_watch::{FileChanges, Watched};

/// Reloads what `changes` watches whenever its files change (once the changes pause for a
/// moment), until `stop` is cancelled.
pub async fn follow_changes(
    mut changes: FileChanges,
    watched: Watched,
    reloader: Arc<Reloader>,
    stop: CancellationToken,
) {
    // The config as last read here: an event that leaves it as it was reloads nothing (a
    // ConfigMap swap that changed another file, a `touch`).
    let mut config_read = reloader.config_file_digest();
    loop {
        tokio::select! {
            more = changes.next() => {
                if !more {
                    return;
                }
                // The outcome is logged and recorded by the reloader.
                match watched {
                    Watched::Plugin => drop(reloader.reload_plugin().await),
                    Watched::Certificates => drop(reloader.reload_certificates().await),
                    Watched::Config => {
                        let now = reloader.config_file_digest();
                        if now != config_read {
                            config_read = now;
                            drop(reloader.reload().await);
                        }
                    }
                    // Discovery reads its files itself.
                    Watched::Members => {}
                }
            }
            () = stop.cancelled() => return,
        }
    }
}
