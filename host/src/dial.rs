//! Opening a connection to a backend, as the proxy and the health checks both do: TCP within
//! the connect timeout, the TLS handshake if the backend takes TLS (within the same timeout),
//! then the HTTP handshake of its protocol. An HTTP/1.1 connection is run by whoever holds it;
//! an HTTP/2 one carries many requests at once, so it runs in a task of its own, which ends when
//! the connection closes (every handle dropped, or the backend gone) or `stop` is cancelled.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::Body;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_util::sync::CancellationToken;

use crate::backend::Backend;

/// Why a connection to a backend could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// TCP: refused, unreachable, or not within the connect timeout.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The TLS handshake failed (the backend's certificate not trusted, or not for its name)
    /// or took past the connect timeout.
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    /// The HTTP/2 handshake failed, or the backend did not agree to HTTP/2 by ALPN.
    #[error("HTTP handshake failed: {0}")]
    Http(String),
}

/// A byte stream to a backend: plain TCP or TLS.
#[derive(Debug)]
pub enum BackendStream {
    /// Plain TCP.
    Tcp(TcpStream),
    /// TLS over TCP.
    Tls(Box<TlsStream<TcpStream>>),
}

/// Opens the byte stream to `backend`: TCP, then TLS if it takes TLS, within `timeout`.
pub async fn stream(backend: &Backend, timeout: Duration) -> Result<BackendStream, DialError> {
    let opened = tokio::time::timeout(timeout, async {
        let tcp = TcpStream::connect(backend.address)
            .await
            .map_err(|err| DialError::Connect(err.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let Some(tls) = &backend.tls else {
            return Ok(BackendStream::Tcp(tcp));
        };
        let stream = tls
            .connector()
            .connect(tls.server_name().clone(), tcp)
            .await
            .map_err(|err| DialError::Tls(err.to_string()))?;
        Ok(BackendStream::Tls(Box::new(stream)))
    })
    .await;
    opened.unwrap_or_else(|_elapsed| {
        Err(DialError::Connect(format!(
            "no connection within {}",
            humantime::format_duration(timeout)
        )))
    })
}

/// An HTTP/1.1 connection to `backend`: the handle that sends requests and the future that
/// runs the protocol, to be polled by its user.
pub async fn http1<B>(
    backend: &Backend,
    timeout: Duration,
) -> Result<
    (
        http1::SendRequest<B>,
        http1::Connection<TokioIo<BackendStream>, B>,
    ),
    DialError,
>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = stream(backend, timeout).await?;
    http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|err| DialError::Http(err.to_string()))
}

/// An HTTP/2 connection to a backend: the handle that opens streams, and the most streams the
/// backend allows open at once (its SETTINGS_MAX_CONCURRENT_STREAMS, kept up to date).
pub struct Http2Connection<B> {
    /// Opens streams.
    pub sender: http2::SendRequest<B>,
    /// The backend's limit on open streams, as it last said.
    pub max_streams: Arc<AtomicUsize>,
}

/// An HTTP/2 connection to `backend` (h2 over TLS, or h2c), run by a task of its own until it
/// closes or `stop` is cancelled; `max_header_list_size` bounds the heads it accepts. Until the
/// backend's SETTINGS are applied, it takes `max_streams` (what another connection learned of
/// the backend) as the backend's limit, if given.
///
/// It sends no PINGs: gRPC servers take a PING more often than every five minutes as abuse and
/// close the connection (GOAWAY `too_many_pings`), as Envoy's default also has it. A backend
/// that closes the connection is noticed at once; one that vanishes without a word, by the
/// request timeout.
pub async fn http2<B>(
    backend: &Backend,
    timeout: Duration,
    max_header_list_size: u32,
    max_streams: Option<usize>,
    stop: &CancellationToken,
) -> Result<Http2Connection<B>, DialError>
where
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = stream(backend, timeout).await?;
    if let BackendStream::Tls(tls) = &stream
        && tls.get_ref().1.alpn_protocol() != Some(b"h2")
    {
        return Err(DialError::Http(
            "the backend did not agree to HTTP/2 (ALPN h2) in the TLS handshake".to_owned(),
        ));
    }
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .initial_max_send_streams(max_streams)
        .max_header_list_size(max_header_list_size);
    let handshake = builder.handshake(TokioIo::new(stream));
    let (sender, connection) = tokio::time::timeout(timeout, handshake)
        .await
        .map_err(|_elapsed| DialError::Http("no HTTP/2 handshake within the timeout".into()))?
        .map_err(|err| DialError::Http(err.to_string()))?;
    let max_streams = Arc::new(AtomicUsize::new(connection.current_max_send_streams()));
    let limit = max_streams.clone();
    let stop = stop.clone();
    let name = backend.name.clone();
    tokio::spawn(async move {
        let mut connection = std::pin::pin!(connection);
        // Run, and keep the backend's stream limit where the pool can read it.
        let run = std::future::poll_fn(|cx| {
            let polled = connection.as_mut().poll(cx);
            limit.store(connection.current_max_send_streams(), Ordering::Relaxed);
            polled
        });
        tokio::select! {
            ended = run => {
                if let Err(err) = ended {
                    tracing::debug!(backend = %name, error = %err, "HTTP/2 connection to a backend ended");
                }
            }
            () = stop.cancelled() => {}
        }
    });
    Ok(Http2Connection {
        sender,
        max_streams,
    })
}

impl AsyncRead for BackendStream {
    #[inline]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendStream::Tcp(tcp) => Pin::new(tcp).poll_read(cx, buf),
            BackendStream::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for BackendStream {
    #[inline]
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            BackendStream::Tcp(tcp) => Pin::new(tcp).poll_write(cx, buf),
            BackendStream::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    #[inline]
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            BackendStream::Tcp(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            BackendStream::Tls(tls) => Pin::new(tls.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    #[inline]
    fn is_write_vectored(&self) -> bool {
        match self {
            BackendStream::Tcp(tcp) => tcp.is_write_vectored(),
            BackendStream::Tls(tls) => tls.is_write_vectored(),
        }
    }

    #[inline]
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendStream::Tcp(tcp) => Pin::new(tcp).poll_flush(cx),
            BackendStream::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    #[inline]
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendStream::Tcp(tcp) => Pin::new(tcp).poll_shutdown(cx),
            BackendStream::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}
