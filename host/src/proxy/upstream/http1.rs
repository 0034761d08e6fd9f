//! HTTP/1.1 connections to backends, over TCP or TLS, kept alive in a pool per backend.
//!
//! A connection runs inside the task of the request that holds it: hyper's connection future is
//! polled by the request until the response headers arrive, then by the response body until its
//! end, when the connection goes back to the pool. So a request costs no task spawn and no
//! hand-off between tasks (hyper-util's pooled client, used before, took 16 % of vane's
//! instructions per request; see BENCHMARKS.md). An idle connection is polled by nobody: a backend
//! that closed it is noticed when it is next taken from the pool, and it is dropped then, and a
//! sweep (a task the app owns) closes the connections left idle past the timeout.

use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

use super::{PoolKey, UpstreamError, UpstreamLimits};
use crate::backend::Backend;
use crate::clock::Clock;
use crate::dial::{self, BackendStream};
use crate::log_budget::LogBudget;
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

/// One connection to a backend: the handle that sends requests and the future that runs the
/// protocol on the socket.
struct Connection {
    sender: http1::SendRequest<AttemptBody>,
    driver: Pin<Box<http1::Connection<TokioIo<BackendStream>, AttemptBody>>>,
    /// Set once the driver has finished: the connection is closed and can only be dropped.
    ended: bool,
}

/// A connection lent to one request until its response body ends.
pub(super) struct Lease {
    connection: Connection,
    key: PoolKey,
    pool: Weak<Idles>,
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

    /// Sends `request` (origin-form URI, Host set) to `backend`, on an idle connection if one
    /// is alive, else on a new one. The connection comes back with the response, to be run by
    /// its body.
    pub(super) async fn send(
        &self,
        backend: &Backend,
        mut request: Request<AttemptBody>,
    ) -> Result<(Response<Incoming>, Lease), UpstreamError> {
        let key = PoolKey::of(backend);
        if let Some(mut connection) = self.pool.checkout(key) {
            match exchange(&mut connection, request).await {
                Ok(response) => return Ok((response, self.lease(connection, key))),
                // Closed by the backend before it took the request: the request is intact, and
                // a fresh connection may take it, as hyper-util's client does.
                Err(Exchange::NotSent(unsent)) => request = *unsent,
                Err(Exchange::Failed(error)) => return Err(error),
            }
        }
        let mut connection = self.connect(backend).await?;
        match exchange(&mut connection, request).await {
            Ok(response) => Ok((response, self.lease(connection, key))),
            Err(Exchange::NotSent(_)) => Err(UpstreamError::Broken),
            Err(Exchange::Failed(error)) => Err(error),
        }
    }

    fn lease(&self, connection: Connection, key: PoolKey) -> Lease {
        Lease {
            connection,
            key,
            pool: Arc::downgrade(&self.pool),
        }
    }

    async fn connect(&self, backend: &Backend) -> Result<Connection, UpstreamError> {
        // Boxed: a TLS handshake's state is large, and a request that finds a pooled connection
        // (most do) should not carry room for it.
        let (sender, driver) = Box::pin(dial::http1(backend, self.pool.connect_timeout))
            .await
            .map_err(|err| super::dial_failed(backend, &err, &self.pool.warnings))?;
        Ok(Connection {
            sender,
            driver: Box::pin(driver),
            ended: false,
        })
    }
}

/// Why an exchange failed: before the request left (it is handed back), or after.
enum Exchange {
    NotSent(Box<Request<AttemptBody>>),
    Failed(UpstreamError),
}

/// Sends `request` on `connection` and runs the connection until the response headers arrive.
async fn exchange(
    connection: &mut Connection,
    request: Request<AttemptBody>,
) -> Result<Response<Incoming>, Exchange> {
    // A pooled connection may still be finishing its last exchange: run it until it takes one.
    let ready = poll_fn(|cx| {
        if let Poll::Ready(ready) = connection.sender.poll_ready(cx) {
            return Poll::Ready(ready.is_ok());
        }
        let ended = connection.drive(cx).is_ready();
        match connection.sender.poll_ready(cx) {
            Poll::Ready(ready) => Poll::Ready(ready.is_ok()),
            Poll::Pending if ended => Poll::Ready(false),
            Poll::Pending => Poll::Pending,
        }
    })
    .await;
    if !ready {
        return Err(Exchange::NotSent(Box::new(request)));
    }
    let mut response = pin!(connection.sender.try_send_request(request));
    let outcome = poll_fn(|cx| {
        if let Poll::Ready(outcome) = response.as_mut().poll(cx) {
            return Poll::Ready(Some(outcome));
        }
        let ended = connection.drive(cx).is_ready();
        match response.as_mut().poll(cx) {
            Poll::Ready(outcome) => Poll::Ready(Some(outcome)),
            // hyper answers every request before its connection ends; this is a safeguard.
            Poll::Pending if ended => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    })
    .await;
    match outcome {
        Some(Ok(response)) => Ok(response),
        Some(Err(mut error)) => match error.take_message() {
            Some(request) => Err(Exchange::NotSent(Box::new(request))),
            None if error.error().is_user() => Err(Exchange::Failed(UpstreamError::ClientBody)),
            None => Err(Exchange::Failed(UpstreamError::Broken)),
        },
        None => Err(Exchange::Failed(UpstreamError::Broken)),
    }
}

impl Connection {
    /// Runs the protocol as far as the socket allows; `Ready` once the connection has ended.
    fn drive(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.ended && self.driver.as_mut().poll(cx).is_ready() {
            self.ended = true;
        }
        if self.ended {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Whether the connection can take another request: run once, with nobody to wake, it
    /// takes in whatever arrived while it sat idle (a close, or stray bytes, end it).
    fn alive(&mut self) -> bool {
        let mut nobody = Context::from_waker(Waker::noop());
        // Ready, not only open: a connection still sending the previous request's body (its
        // response came first) cannot take another request until that body ends, which may be
        // never.
        self.drive(&mut nobody).is_pending() && self.sender.is_ready()
    }
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("address", &self.key.address)
            .field("ended", &self.connection.ended)
            .finish()
    }
}

impl Lease {
    /// Runs the connection, which feeds the response body; `Ready` once it has ended.
    pub(super) fn drive(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.connection.drive(cx)
    }

    /// The connection's byte stream after a `101 Switching Protocols` answer, with what the
    /// backend sent after that head: the connection ends as HTTP and is not pooled again.
    pub(super) async fn into_tunnel(self) -> Option<(BackendStream, Bytes)> {
        let mut connection = self.connection;
        if !connection.ended {
            // Runs the connection to the switch, keeping its socket open.
            let driver = connection.driver.as_mut().get_mut();
            poll_fn(|cx| driver.poll_without_shutdown(cx)).await.ok()?;
        }
        let parts = Pin::into_inner(connection.driver).into_parts();
        Some((parts.io.into_inner(), parts.read_buf))
    }

    /// Gives the connection back to the pool, once the response body has been read to its end.
    pub(super) fn release(self) {
        if let Some(pool) = self.pool.upgrade() {
            pool.checkin(self.key, self.connection);
        }
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
