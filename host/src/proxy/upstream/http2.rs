//! HTTP/2 connections to backends (h2 over TLS, or h2c): one connection carries many requests
//! at once, each a stream of its own, so every request is still balanced on its own.
//!
//! A request goes on the open connection to its backend with the fewest streams, up to
//! [`MAX_STREAMS`] each or the backend's own limit if lower; with none open, or all full, a new
//! one is dialed. One dial at a time per backend: a burst of requests waits for one handshake
//! instead of making a connection each, and if that dial fails, every request that waited for it
//! fails at once (and tries another backend, the failure counted once) rather than dialing again
//! in turn. A stream the backend refused unread (REFUSED_STREAM, or past its GOAWAY) is not held
//! against it, and may go to another backend whatever its method. The connections run in tasks
//! of their own; the sweep closes those with no stream for the idle timeout and forgets those the
//! backend closed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use tokio_util::sync::CancellationToken;

use super::{PoolKey, UpstreamError, UpstreamLimits};
use crate::backend::Backend;
use crate::clock::{Clock, Millis};
use crate::dial;
use crate::log_budget::LogBudget;
use crate::proxy::request_body::AttemptBody;

/// The most streams vane opens at once on one connection to a backend before it opens another
/// (the backend's own SETTINGS_MAX_CONCURRENT_STREAMS, if lower, holds a stream back until
/// another ends). 100 is the minimum RFC 9113 recommends servers allow, and nginx's default.
pub(super) const MAX_STREAMS: usize = 100;

/// The HTTP/2 connections to every backend, shared by all requests.
#[derive(Clone)]
pub(super) struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    entries: Mutex<HashMap<PoolKey, Entry>>,
    limits: UpstreamLimits,
    clock: Clock,
    warnings: Arc<LogBudget>,
    /// Ends every connection's task when vane stops.
    stop: CancellationToken,
}

/// The connections for one key, and its dialing.
#[derive(Default)]
struct Entry {
    connections: Vec<Connection>,
    /// Held while a connection is dialed.
    dialing: Arc<tokio::sync::Mutex<()>>,
    /// Dials that failed so far.
    failures: u64,
}

/// One connection: the handle that opens streams, how many are open, and how many the backend
/// allows.
#[derive(Clone)]
struct Connection {
    sender: http2::SendRequest<AttemptBody>,
    streams: Arc<Streams>,
    max_streams: Arc<AtomicUsize>,
}

/// The streams open on one connection, and since when it has had none.
struct Streams {
    open: AtomicUsize,
    idle_since: AtomicU64,
    clock: Clock,
}

/// One request's stream, counted on its connection until the response body ends.
pub(crate) struct Stream {
    streams: Arc<Streams>,
}

impl Pool {
    /// A pool that dials and keeps connections as `limits` says, timed by `clock`; failed
    /// handshakes are logged within `warnings`, and every connection ends when `stop` is
    /// cancelled.
    pub(super) fn new(
        limits: UpstreamLimits,
        clock: Clock,
        warnings: Arc<LogBudget>,
        stop: CancellationToken,
    ) -> Self {
        Pool {
            inner: Arc::new(Inner {
                entries: Mutex::new(HashMap::new()),
                limits,
                clock,
                warnings,
                stop,
            }),
        }
    }

    /// Sends `request` (absolute URI) to `backend` as a stream on a shared connection. A
    /// connection found closed (the backend said GOAWAY, or went away) before it took the
    /// request hands it back, and it goes once more on another connection.
    pub(super) async fn send(
        &self,
        backend: &Backend,
        mut request: Request<AttemptBody>,
    ) -> Result<(Response<Incoming>, Stream), UpstreamError> {
        let key = PoolKey::of(backend);
        for _ in 0..2 {
            let (mut sender, stream) = match self.inner.checkout(key) {
                Some(checked_out) => checked_out,
                None => self.dial(backend, key).await?,
            };
            match sender.try_send_request(request).await {
                Ok(response) => return Ok((response, stream)),
                Err(mut error) => match error.take_message() {
                    Some(unsent) => request = unsent,
                    None if refused_unread(error.error()) => return Err(UpstreamError::Unreached),
                    None if error.error().is_user() => return Err(UpstreamError::ClientBody),
                    None => return Err(UpstreamError::Broken),
                },
            }
        }
        Err(UpstreamError::Broken)
    }

    /// Dials a connection for `key`, or waits for the dial in progress and uses its
    /// connection, or its failure; the connection comes with a stream counted on it.
    async fn dial(
        &self,
        backend: &Backend,
        key: PoolKey,
    ) -> Result<(http2::SendRequest<AttemptBody>, Stream), UpstreamError> {
        let (dialing, failures) = {
            let mut entries = self.inner.lock();
            let entry = entries.entry(key).or_default();
            (entry.dialing.clone(), entry.failures)
        };
        let _turn = dialing.lock().await;
        {
            let mut entries = self.inner.lock();
            let entry = entries.entry(key).or_default();
            if let Some(checked_out) = entry.usable() {
                return Ok(checked_out);
            }
            if entry.failures > failures {
                return Err(UpstreamError::Unreached);
            }
        }
        let limits = &self.inner.limits;
        // A connection open already knows the backend's stream limit; a new one would start
        // from h2's default (100) until the backend's SETTINGS are applied.
        let learned = self
            .inner
            .lock()
            .get(&key)
            .and_then(|entry| entry.connections.iter().map(Connection::room).min());
        // Boxed, as for HTTP/1.1: most requests find a connection open and carry no dial.
        let dialed = Box::pin(dial::http2(
            backend,
            limits.connect_timeout,
            limits.max_header_list_size,
            learned,
            &self.inner.stop,
        ))
        .await;
        let mut entries = self.inner.lock();
        let entry = entries.entry(key).or_default();
        match dialed {
            Ok(dialed) => {
                let connection = Connection {
                    sender: dialed.sender,
                    streams: Arc::new(Streams {
                        open: AtomicUsize::new(0),
                        idle_since: AtomicU64::new(self.inner.clock.now()),
                        clock: self.inner.clock.clone(),
                    }),
                    max_streams: dialed.max_streams,
                };
                let stream = connection.streams.open();
                let sender = connection.sender.clone();
                entry.connections.push(connection);
                Ok((sender, stream))
            }
            Err(error) => {
                entry.failures += 1;
                drop(entries);
                Err(super::dial_failed(backend, &error, &self.inner.warnings))
            }
        }
    }

    /// Closes the connections without a stream for the idle timeout, and forgets the closed.
    pub(super) fn close_expired(&self) {
        let now = self.inner.clock.now();
        let idle_ms = self.inner.limits.idle_timeout.as_millis() as Millis;
        let mut closed = Vec::new();
        let mut entries = self.inner.lock();
        for entry in entries.values_mut() {
            entry.connections.retain(|connection| {
                let keep =
                    !connection.sender.is_closed() && !connection.streams.idle_for(now, idle_ms);
                if !keep {
                    closed.push(connection.clone());
                }
                keep
            });
        }
        entries.retain(|_, entry| {
            !entry.connections.is_empty() || Arc::strong_count(&entry.dialing) > 1
        });
        drop(entries);
        // Dropped here, outside the lock: the last handle of a connection closes it.
        drop(closed);
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, HashMap<PoolKey, Entry>> {
        // Nothing panics while holding the lock; a poisoned map is still consistent.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn checkout(&self, key: PoolKey) -> Option<(http2::SendRequest<AttemptBody>, Stream)> {
        self.lock().get_mut(&key)?.usable()
    }
}

impl Entry {
    /// A stream on the open connection with the fewest, if one has room (counted here, under
    /// the pool's lock, so that concurrent requests cannot pass the limit); closed connections
    /// are forgotten.
    fn usable(&mut self) -> Option<(http2::SendRequest<AttemptBody>, Stream)> {
        self.connections
            .retain(|connection| !connection.sender.is_closed());
        let connection = self
            .connections
            .iter()
            .map(|connection| (connection.streams.open.load(Ordering::Relaxed), connection))
            .filter(|(open, connection)| *open < connection.room())
            .min_by_key(|(open, _)| *open)
            .map(|(_, connection)| connection)?;
        Some((connection.sender.clone(), connection.streams.open()))
    }
}

impl Connection {
    /// How many streams it may have open: [`MAX_STREAMS`], or fewer if the backend says so.
    fn room(&self) -> usize {
        MAX_STREAMS.min(self.max_streams.load(Ordering::Relaxed))
    }
}

/// Whether the backend refused a stream without reading it: REFUSED_STREAM, or a stream past the
/// last one its GOAWAY said it would process (RFC 9113 §8.7), so it may go elsewhere.
fn refused_unread(error: &hyper::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(h2) = cause.downcast_ref::<h2::Error>() {
            return h2.reason() == Some(h2::Reason::REFUSED_STREAM)
                || (h2.is_go_away() && h2.is_remote());
        }
        source = cause.source();
    }
    false
}

impl Streams {
    /// Counts a stream opened until the guard drops.
    fn open(self: &Arc<Self>) -> Stream {
        self.open.fetch_add(1, Ordering::Relaxed);
        Stream {
            streams: self.clone(),
        }
    }

    /// Whether the connection has had no stream for `idle_ms` at `now`.
    fn idle_for(&self, now: Millis, idle_ms: Millis) -> bool {
        self.open.load(Ordering::Relaxed) == 0
            && now.saturating_sub(self.idle_since.load(Ordering::Relaxed)) >= idle_ms
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let streams = &self.streams;
        if streams.open.fetch_sub(1, Ordering::Relaxed) == 1 {
            streams
                .idle_since
                .store(streams.clock.now(), Ordering::Relaxed);
        }
    }
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("open", &self.streams.open.load(Ordering::Relaxed))
            .finish()
    }
}
