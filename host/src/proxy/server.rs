//! The accept loop: one task per client connection, HTTP/1.1 or h2c, at most `max_connections`
//! at once, until shutdown; then a bounded drain of the connections still open, after which the
//! rest are closed. The loop owns its connections' tasks: none outlives it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::Proxy;
use super::head::ClientAddress;
use super::service::handle;

/// The HTTP/2 connection preface (RFC 9113 §3.4), which tells an h2c client from an HTTP/1 one.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How often an idle HTTP/2 client is pinged, and how long its answer may take before the
/// connection is closed: dead peers must not hold connection slots.
const H2_KEEP_ALIVE: Duration = Duration::from_secs(20);

/// Serves clients from `listener` until `shutdown` completes, then lets open connections finish
/// their requests for up to the configured `drain_timeout`.
pub async fn serve(proxy: Arc<Proxy>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    let drain = proxy.config.drain_timeout;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(proxy.config.header_read_timeout)
        .max_buf_size(proxy.config.max_header_size);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_KEEP_ALIVE)
        .keep_alive_timeout(H2_KEEP_ALIVE)
        .max_header_list_size(u32::try_from(proxy.config.max_header_size).unwrap_or(u32::MAX));
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let slots = Arc::new(Semaphore::new(proxy.config.max_connections));
    tokio::pin!(shutdown);

    loop {
        // At the limit, stop accepting: new clients wait in the kernel's backlog, as with
        // HAProxy's maxconn, instead of being accepted and starved.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, client) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %err, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let proxy = proxy.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        // Reap the finished ones, so the set holds only open connections.
        while connections.try_join_next().is_some() {}
        connections.spawn(async move {
            let _slot = slot;
            if !request_started(&stream, proxy.config.header_read_timeout).await {
                return;
            }
            let address = ClientAddress::new(client);
            let service =
                service_fn(move |request| handle(proxy.clone(), address.clone(), request));
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            if let Err(err) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(%client, error = %err, "client connection ended with an error");
            }
        });
    }

    drop(listener);
    tracing::info!(
        open = graceful.count(),
        "stopped accepting; draining open connections"
    );
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            ?drain,
            "drain deadline passed; closing the remaining connections"
        );
    }
    // Connections still open here are past the deadline, or never sent a request.
    connections.shutdown().await;
}

/// Waits, up to `limit`, until the client has sent enough to tell HTTP/1 from HTTP/2 (hyper's
/// own header timeout only starts after that). A client that sends nothing, or stalls inside
/// the HTTP/2 preface, is dropped.
async fn request_started(stream: &TcpStream, limit: Duration) -> bool {
    let mut start = [0u8; H2_PREFACE.len()];
    let peek = async {
        loop {
            match stream.peek(&mut start).await {
                Ok(0) | Err(_) => return false,
                Ok(n) if n == start.len() || start[..n] != H2_PREFACE[..n] => return true,
                // Part of the preface: wait for the rest (rare, so a short sleep is cheap).
                Ok(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    };
    tokio::time::timeout(limit, peek).await.unwrap_or(false)
}
