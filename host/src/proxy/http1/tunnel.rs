//! A client connection switched to another protocol: once a `101 Switching Protocols` answer to
//! the client's `Upgrade` (WebSocket, say) is written, the connection's bytes and those of the
//! other end are copied both ways. What the client sent after its request head goes first. A
//! client that closes its side has the close passed on, and the other end may still answer; the
//! other end closing ends the tunnel (as RFC 6455 has the server close a WebSocket's TCP
//! connection first), as does a failure either way or nothing moving for the idle timeout.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::body::Reader;
use super::decode::READ_SIZE;
use super::sender::Sender;

/// The other end of a tunnel: any byte stream.
pub(crate) trait TunnelEnd: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> TunnelEnd for T {}

/// Carried by a 101 response (as an extension): the other end to join the client's connection
/// to, taken once, and how long the tunnel may stay silent both ways.
#[derive(Clone)]
pub(crate) struct Switch {
    end: Arc<Mutex<Option<Box<dyn TunnelEnd>>>>,
    idle_timeout: Duration,
}

impl Switch {
    /// A switch to `end`, closed after `idle_timeout` without a byte either way.
    pub(crate) fn new(end: impl TunnelEnd + 'static, idle_timeout: Duration) -> Self {
        Switch {
            end: Arc::new(Mutex::new(Some(Box::new(end)))),
            idle_timeout,
        }
    }

    /// The other end, the first time it is asked for.
    pub(super) fn take(&self) -> Option<Box<dyn TunnelEnd>> {
        self.end
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
    }

    /// How long the tunnel may stay silent both ways.
    pub(super) fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }
}

impl std::fmt::Debug for Switch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Switch")
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

/// The most the other end's bytes are read at once.
const COPY_SIZE: usize = 16 << 10;

/// Copies bytes both ways between the client (`reader`, `write`) and `end` until `end` closes
/// (the client's close is passed on, and `end` may still answer), either side fails, or
/// nothing moves for `idle_timeout`.
pub(super) async fn join(
    mut reader: Reader,
    write: &mut Sender<'_>,
    end: Box<dyn TunnelEnd>,
    idle_timeout: Duration,
) {
    let (mut end_read, mut end_write) = tokio::io::split(end);
    let activity = Activity::new();
    let from_client = async {
        loop {
            if !reader.buffer.is_empty() {
                end_write.write_all(&reader.buffer).await?;
                // Over TLS, records may wait in a buffer until flushed: nothing else would.
                end_write.flush().await?;
                activity.touch();
                reader.buffer.clear();
            }
            if reader.fill(READ_SIZE).await? == 0 {
                end_write.shutdown().await?;
                // Half closed: the other end's answer may still come.
                return std::future::pending::<std::io::Result<()>>().await;
            }
        }
    };
    let to_client = async {
        let mut buffer = vec![0; COPY_SIZE];
        loop {
            let read = end_read.read(&mut buffer).await?;
            if read == 0 {
                return write.shutdown().await;
            }
            write.write_all(&buffer[..read]).await?;
            write.flush().await?;
            activity.touch();
        }
    };
    tokio::select! {
        _ = from_client => {}
        _ = to_client => {}
        () = activity.idle_for(idle_timeout) => {
            tracing::debug!(?idle_timeout, "tunnel idle; closed");
        }
    }
}

/// When bytes last moved through a tunnel, in milliseconds since it opened.
struct Activity {
    opened: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            opened: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let now = self.opened.elapsed().as_millis() as u64;
        self.last_ms.store(now, Ordering::Relaxed);
    }

    /// Ends once nothing has moved for `idle`.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let last = self.opened + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            if last.elapsed() >= idle {
                return;
            }
            tokio::time::sleep_until(last + idle).await;
        }
    }
}
