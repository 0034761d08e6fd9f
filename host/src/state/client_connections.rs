//! How many client connections a vane holds, and how many it refused at `max_connections`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counts of client connections, read by `/metrics`.
#[derive(Debug, Default)]
pub struct ClientConnections {
    open: AtomicU64,
    refused: AtomicU64,
}

impl ClientConnections {
    /// Counts a connection as open until the returned guard is dropped.
    pub fn open(&self) -> OpenConnection<'_> {
        self.open.fetch_add(1, Ordering::Relaxed);
        OpenConnection(self)
    }

    /// Counts a connection refused because `max_connections` were open.
    pub fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Connections open now.
    pub fn open_now(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    /// Connections refused since start.
    pub fn refused_total(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// An open client connection, counted until dropped.
#[derive(Debug)]
pub struct OpenConnection<'a>(&'a ClientConnections);

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}
