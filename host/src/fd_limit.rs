//! The process's file-descriptor limit: raised at start from the soft limit to the hard one (as
//! nginx's `worker_rlimit_nofile` lets operators do), so that `max_connections` can be held.

/// Descriptors kept for everything but client connections: listeners, backend connections
/// while requests are in flight, plugin files, the log.
const RESERVED: u64 = 256;

/// Raises the soft limit on open files to the hard limit and logs how many client connections
/// vane can hold; warns if `max_connections` is above that.
pub fn raise(max_connections: usize) {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(err) => {
            tracing::warn!(error = %err, "cannot read or raise the open-file limit");
            return;
        }
    };
    let holdable = limit.saturating_sub(RESERVED);
    if max_connections as u64 > holdable {
        tracing::warn!(
            open_file_limit = limit,
            max_connections,
            "the open-file limit allows about {holdable} client connections, fewer than \
             max_connections; raise the hard limit (ulimit -Hn, LimitNOFILE=) to hold them all"
        );
    } else {
        tracing::info!(
            open_file_limit = limit,
            max_connections,
            "client connections: up to {max_connections}"
        );
    }
}
