//! HTTP/1.1 connections to backends, over TCP or TLS, kept alive in a pool per backend, with
//! vane's own client: `connection` writes the request and reads the response head
//! (`response`), and the response's body (`body`) is read from the connection it holds.
//!
//! A connection is used inside the task of the request that holds it, and no task runs it
//! otherwise: a request costs no task spawn and no hand-off between tasks (hyper-util's pooled
//! client, used first, took 16 % of vane's instructions per request, and hyper's own client
//! connection a third; see BENCHMARKS.md). At the body's last byte the connection goes back to
//! the pool. An idle connection is looked at when it is next taken: a backend that closed it
//! is noticed then, and it is dropped; and a sweep (a task the app owns) closes the connections
//! left idle past the timeout.

mod body;
mod connection;
#[cfg(test)]
mod differential;
pub(in crate::proxy) mod response;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use http::Response;
use http::request::Parts;
use tokio::time::Instant;

pub(crate) use self::body::ResponseBody;
use self::connection::{Answered, Connection, Failure, Outgoing};
use super::{PoolKey, UpstreamError, UpstreamLimits};
use crate::backend::Backend;
use crate::clock::Clock;
use crate::dial;
use crate::log_budget::LogBudget;
use crate::proxy::head::ClientAddress;
use crate::proxy::request_body::AttemptBody;

/// Idle connections kept per backend at most; past it the oldest is closed. As with Envoy,
/// the pool otherwise grows to the concurrency the traffic needs.
const MAX_IDLE_PER_BACKEND: usize = 1024;

/// The sweep for expired idle connections runs at most this often.
pub(super) const MIN_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// The HTTP/1.1 connections to every backend, shared by all requests.
#[derive(Clone)]
pub(super) struct Pool {
    pool: Arc<Idles>,
}

/// The idle connections, by where they go.
struct Idles {
    idle: Mutex<HashMap<PoolKey, Vec<Idle>>>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    clock: Clock,
    warnings: Arc<LogBudget>,
}

struct Idle {
    connection: Connection,
    /// When it was put back, on the pool's clock.
    since: Instant,
}

/// Where a connection lent to a request goes back to once its response has been read.
pub(super) struct Home {
    key: PoolKey,
    pool: Weak<Idles>,
}

impl Home {
    /// A home that takes nothing back: the connection closes at the body's end.
    #[cfg(test)]
    fn nowhere() -> Self {
        Home {
            key: PoolKey {
                address: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                tls: 0,
            },
            pool: Weak::new(),
        }
    }

    /// Puts `connection` back in the pool, if it is still alive.
    fn check_in(&self, connection: Connection) {
        if let Some(pool) = self.pool.upgrade() {
            pool.checkin(self.key, connection);
        }
    }
}

impl Pool {
    /// A pool that connects and keeps idle connections as `limits` says, timed by `clock`.
    pub(super) fn new(limits: UpstreamLimits, clock: Clock, warnings: Arc<LogBudget>) -> Self {
        Pool {
            pool: Arc::new(Idles {
                idle: Mutex::new(HashMap::new()),
                connect_timeout: limits.connect_timeout,
                idle_timeout: limits.idle_timeout,
                clock,
                warnings,
            }),
        }
    }

    /// How long a connection may sit idle.
    pub(super) fn idle_timeout(&self) -> Duration {
        self.pool.idle_timeout
    }

    /// Closes every connection idle for the idle timeout or longer.
    pub(super) fn close_expired(&self) {
        self.pool.close_expired();
    }

    /// Sends the request of `head` (prepared for the backends) and `body`, from `client`, to
    /// `backend`, on an idle connection if one is alive, else on a new one. The response's body
    /// holds the connection until its end.
    pub(super) async fn send(
        &self,
        backend: &Backend,
        head: &Parts,
        client: &ClientAddress,
        body: AttemptBody,
    ) -> Result<Response<Box<ResponseBody>>, UpstreamError> {
        let key = PoolKey::of(backend);
        let mut outgoing = Outgoing::new(head, &backend.authority, client, body);
        if let Some(connection) = self.pool.checkout(key) {
            match connection::exchange(connection, outgoing, true).await {
                Ok(answered) => return Ok(self.response(answered, key)),
                // Closed by the backend before it took the request: the request is intact, and
                // a fresh connection may take it, as hyper-util's client does.
                Err(Failure::NotSent(unsent)) => outgoing = unsent,
                Err(failure) => return Err(self.failed(backend, failure)),
            }
        }
        let connection = self.connect(backend).await?;
        match connection::exchange(connection, outgoing, false).await {
            Ok(answered) => Ok(self.response(answered, key)),
            Err(failure) => Err(self.failed(backend, failure)),
        }
    }

    /// The response of an exchange, its body reading from the connection. The body is boxed:
    /// the response is handed up through several layers, and each would copy it whole.
    fn response(&self, answered: Answered, key: PoolKey) -> Response<Box<ResponseBody>> {
        let Answered {
            mut head,
            connection,
            sending,
        } = answered;
        let home = Home {
            key,
            pool: Arc::downgrade(&self.pool),
        };
        let body = Box::new(ResponseBody::new(connection, &mut head, sending, home));
        let mut response = Response::new(body);
        *response.status_mut() = head.status;
        *response.version_mut() = head.version;
        *response.headers_mut() = head.headers;
        response
    }

    /// What a failed exchange with `backend` means for the request; a response head vane
    /// refuses is logged, within the pool's warnings.
    fn failed(&self, backend: &Backend, failure: Failure) -> UpstreamError {
        match failure {
            Failure::ClientBody => UpstreamError::ClientBody,
            Failure::Malformed(reason) => {
                if self.pool.warnings.allow() {
                    tracing::warn!(
                        backend = %backend.name,
                        address = %backend.address,
                        %reason,
                        "the backend's response cannot be read"
                    );
                }
                UpstreamError::Broken
            }
            Failure::NotSent(_) | Failure::Broken => UpstreamError::Broken,
        }
    }

    async fn connect(&self, backend: &Backend) -> Result<Connection, UpstreamError> {
        // Boxed: a TLS handshake's state is large, and a request that finds a pooled connection
        // (most do) should not carry room for it.
        let stream = Box::pin(dial::stream(backend, self.pool.connect_timeout))
            .await
            .map_err(|err| super::dial_failed(backend, &err, &self.pool.warnings))?;
        Ok(Connection::new(stream))
    }
}

impl Idles {
    fn lock(&self) -> MutexGuard<'_, HashMap<PoolKey, Vec<Idle>>> {
        // Nothing panics while holding the lock; a poisoned map is still consistent.
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The most recently used idle connection for `key` that is still alive, if any.
    fn checkout(&self, key: PoolKey) -> Option<Connection> {
        loop {
            let Idle {
                mut connection,
                since,
            } = self.lock().get_mut(&key)?.pop()?;
            if self.expired(since) {
                // The others left are older still; one put back meanwhile is kept.
                let expired = self
                    .lock()
                    .get_mut(&key)
                    .map(|list| self.take_expired(list));
                drop(expired);
                return None;
            }
            if connection.alive() {
                return Some(connection);
            }
        }
    }

    fn checkin(&self, key: PoolKey, mut connection: Connection) {
        if !connection.alive() {
            return;
        }
        let idle = Idle {
            connection,
            since: self.clock.instant(),
        };
        let evicted = {
            let mut pool = self.lock();
            let list = pool.entry(key).or_default();
            list.push(idle);
            (list.len() > MAX_IDLE_PER_BACKEND).then(|| list.remove(0))
        };
        drop(evicted);
    }

    /// Whether a connection put back at `since` has been idle for `idle_timeout` or longer.
    fn expired(&self, since: Instant) -> bool {
        self.clock.instant().saturating_duration_since(since) >= self.idle_timeout
    }

    /// Takes out of `list` (oldest first, so the expired ones are a prefix) the connections idle
    /// for `idle_timeout` or longer, to be closed once the lock is released.
    fn take_expired(&self, list: &mut Vec<Idle>) -> Vec<Idle> {
        let fresh = list.partition_point(|idle| self.expired(idle.since));
        list.drain(..fresh).collect()
    }

    /// Closes every connection idle for `idle_timeout` or longer.
    fn close_expired(&self) {
        let mut expired = Vec::new();
        let mut pool = self.lock();
        for list in pool.values_mut() {
            expired.extend(self.take_expired(list));
        }
        pool.retain(|_, list| !list.is_empty());
        drop(pool);
        // Closed here, outside the lock.
        drop(expired);
    }
}
