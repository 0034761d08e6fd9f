//! A client connection's byte stream: plain TCP, or TLS over TCP. HTTP/1 reads and writes it
//! through split halves, HTTP/2 (hyper) whole. Plain TCP keeps tokio's owned halves, which
//! need no lock between them; a TLS stream's halves share one session behind tokio's split.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_rustls::server::TlsStream;

/// A client connection.
pub(crate) enum ClientStream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS, its handshake done.
    Tls(Box<TlsStream<TcpStream>>),
}

/// The reading half of a [`ClientStream`].
#[derive(Debug)]
pub(crate) enum ClientRead {
    /// Plain TCP.
    Plain(OwnedReadHalf),
    /// TLS.
    Tls(tokio::io::ReadHalf<TlsStream<TcpStream>>),
}

/// The writing half of a [`ClientStream`].
#[derive(Debug)]
pub(crate) enum ClientWrite {
    /// Plain TCP.
    Plain(OwnedWriteHalf),
    /// TLS.
    Tls(tokio::io::WriteHalf<TlsStream<TcpStream>>),
}

impl ClientStream {
    /// Its two halves, to read and write from different places.
    pub(crate) fn into_split(self) -> (ClientRead, ClientWrite) {
        match self {
            ClientStream::Plain(stream) => {
                let (read, write) = stream.into_split();
                (ClientRead::Plain(read), ClientWrite::Plain(write))
            }
            ClientStream::Tls(stream) => {
                let (read, write) = tokio::io::split(*stream);
                (ClientRead::Tls(read), ClientWrite::Tls(write))
            }
        }
    }
}

/// Calls `$call` on whichever stream `$value` holds, pinned.
macro_rules! each {
    ($value:expr, $inner:ident => $call:expr) => {
        match $value {
            Self::Plain($inner) => $call,
            Self::Tls($inner) => $call,
        }
    };
}

/// `AsyncRead` by delegation to the stream inside.
macro_rules! delegate_read {
    ($type:ty) => {
        impl AsyncRead for $type {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                each!(self.get_mut(), io => Pin::new(io).poll_read(cx, buf))
            }
        }
    };
}

delegate_read!(ClientStream);
delegate_read!(ClientRead);

/// `AsyncWrite` by delegation to the stream inside.
macro_rules! delegate_write {
    ($type:ty) => {
        impl AsyncWrite for $type {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                each!(self.get_mut(), io => Pin::new(io).poll_write(cx, buf))
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                each!(self.get_mut(), io => Pin::new(io).poll_write_vectored(cx, bufs))
            }

            fn is_write_vectored(&self) -> bool {
                each!(self, io => io.is_write_vectored())
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                each!(self.get_mut(), io => Pin::new(io).poll_flush(cx))
            }

            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                each!(self.get_mut(), io => Pin::new(io).poll_shutdown(cx))
            }
        }
    };
}

delegate_write!(ClientStream);
delegate_write!(ClientWrite);
