//! A request body as an HTTP/1 client sends it: a Content-Length's worth of bytes, or chunks (RFC
//! 9112 §7.1), decoded (`decode`) as the attempt that forwards it reads. The body reads through the
//! connection's read side, lent to it in a slot the two share; it marks the slot at its last byte,
//! so that the connection can read the next request. After the response the connection takes its
//! read side back either way: a body not read to its end cannot read on.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::oneshot;

use super::decode::{self, Decoder, READ_SIZE, Step, consume_framing, step};
use super::request::Framing;
use crate::proxy::transport::ClientRead;

/// What a connection reads with: its socket (a client connection's read side, or a backend
/// connection) and the bytes read but not used yet.
#[derive(Debug)]
pub(crate) struct Reader<R = ClientRead> {
    /// The socket, or its read side.
    pub(in crate::proxy) io: R,
    /// Bytes read from it and not yet parsed or forwarded.
    pub(in crate::proxy) buffer: BytesMut,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    /// A reader with nothing buffered yet.
    pub(in crate::proxy) fn new(io: R) -> Self {
        Reader {
            io,
            buffer: BytesMut::new(),
        }
    }

    /// Reads what the socket has, up to `want` more bytes: `Ok(0)` when the peer closed.
    pub(in crate::proxy) fn poll_fill(
        &mut self,
        cx: &mut Context<'_>,
        want: usize,
    ) -> Poll<io::Result<usize>> {
        decode::poll_fill(&mut self.io, &mut self.buffer, cx, want)
    }

    /// Reads what the socket has, up to `want` more bytes: `Ok(0)` when the peer closed.
    pub(super) async fn fill(&mut self, want: usize) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_fill(cx, want)).await
    }
}

impl Reader {
    /// Reads what the socket has (up to `READ_SIZE`) through this thread's scratch area, so that
    /// the buffer grows only by what arrived: a request head costs an allocation of its own
    /// size, not a read buffer's. `Ok(0)` when the client closed.
    pub(super) async fn fill_exact(&mut self) -> io::Result<usize> {
        let Reader { io, buffer } = self;
        match io {
            // Plain TCP: wait for readiness, then read what is there (cheaper than `poll_read`,
            // which this path runs once per request).
            ClientRead::Plain(io) => loop {
                io.readable().await?;
                let read = SCRATCH.with_borrow_mut(|scratch| {
                    let read = io.try_read(scratch)?;
                    buffer.extend_from_slice(&scratch[..read]);
                    Ok::<_, io::Error>(read)
                });
                match read {
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                    read => return read,
                }
            },
            // TLS: what is there is what the session decrypts.
            ClientRead::Tls(_) => {
                std::future::poll_fn(|cx| {
                    SCRATCH.with_borrow_mut(|scratch| {
                        let mut read = ReadBuf::new(scratch);
                        ready!(Pin::new(&mut *io).poll_read(cx, &mut read))?;
                        buffer.extend_from_slice(read.filled());
                        Poll::Ready(Ok(read.filled().len()))
                    })
                })
                .await
            }
        }
    }
}

thread_local! {
    /// Where `Reader::fill_exact` reads before it copies what arrived.
    static SCRATCH: RefCell<[u8; READ_SIZE]> = const { RefCell::new([0; READ_SIZE]) };
}

/// Why a request body could not be read to its end.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    /// The client closed the connection before the body's end.
    #[error("the client closed the connection inside the request body")]
    Closed,
    /// The connection took its read side back: its response was sent before the body was read.
    #[error("the response was sent before the request body was read")]
    TakenBack,
    /// The chunked framing was broken.
    #[error("malformed chunked body: {0}")]
    Malformed(&'static str),
    /// Reading from the socket failed.
    #[error("reading the request body failed: {0}")]
    Io(#[from] io::Error),
}

/// The connection's read side while a request body has it, and whether the body was read to
/// its end.
#[derive(Debug)]
pub(super) struct Lent {
    reader: Option<Reader>,
    finished: bool,
}

/// A slot shared by a body and its connection.
pub(super) type LentSlot = Arc<Mutex<Lent>>;

/// Lends `reader` to a body.
pub(super) fn lend(reader: Reader) -> LentSlot {
    Arc::new(Mutex::new(Lent {
        reader: Some(reader),
        finished: false,
    }))
}

/// Locks a slot; a panic while it was held leaves nothing half-updated, so a poisoned lock is
/// used as is.
fn lock(slot: &Mutex<Lent>) -> MutexGuard<'_, Lent> {
    slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether the body was read to its end.
pub(super) fn finished(slot: &LentSlot) -> bool {
    lock(slot).finished
}

/// Takes the read side back from the body, whether or not it was read to its end (`None` if the
/// body failed and dropped it).
pub(super) fn take_back(slot: &LentSlot) -> Option<Reader> {
    lock(slot).reader.take()
}

/// A request body read from an HTTP/1 connection.
#[derive(Debug)]
pub(crate) struct RequestBody {
    /// The connection's read side; `None` for a request without a body.
    slot: Option<LentSlot>,
    decoder: Decoder,
    /// Asks the connection to send `100 Continue`, the first time the body is read.
    wants_continue: Option<oneshot::Sender<()>>,
}

impl RequestBody {
    /// A body framed by `framing`, read through the reader lent in `slot`; `wants_continue` is
    /// signalled at the first read, if given.
    pub(super) fn new(
        slot: LentSlot,
        framing: Framing,
        wants_continue: Option<oneshot::Sender<()>>,
    ) -> Self {
        let decoder = match framing {
            Framing::Empty => Decoder::Done,
            Framing::Length(length) => Decoder::Length(length),
            Framing::Chunked => Decoder::ChunkSize,
        };
        lock(&slot).finished = decoder == Decoder::Done;
        RequestBody {
            slot: Some(slot),
            decoder,
            wants_continue,
        }
    }

    /// The body of a request without one.
    pub(super) fn empty() -> Self {
        RequestBody {
            slot: None,
            decoder: Decoder::Done,
            wants_continue: None,
        }
    }
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if let Some(wants_continue) = this.wants_continue.take() {
            let _ = wants_continue.send(());
        }
        let Some(slot) = &this.slot else {
            return Poll::Ready(None);
        };
        let mut lent = lock(slot);
        loop {
            match this.decoder {
                Decoder::Done => {
                    lent.finished = true;
                    return Poll::Ready(None);
                }
                Decoder::Failed => return Poll::Ready(None),
                _ => {}
            }
            let want = decode::want(this.decoder);
            let Some(reader) = lent.reader.as_mut() else {
                this.decoder = Decoder::Failed;
                return Poll::Ready(Some(Err(BodyError::TakenBack)));
            };
            let error = match step(&mut this.decoder, &mut reader.buffer) {
                Step::Data(data) => {
                    consume_framing(&mut this.decoder, &mut reader.buffer, false);
                    lent.finished = this.decoder == Decoder::Done;
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Step::Progress => continue,
                Step::NeedMore => match ready!(reader.poll_fill(cx, want)) {
                    Ok(0) => BodyError::Closed,
                    Ok(_) => continue,
                    Err(err) => BodyError::Io(err),
                },
                Step::Malformed(reason) => BodyError::Malformed(reason),
            };
            // The body cannot go on: the reader is dropped, so the connection closes.
            lent.reader = None;
            this.decoder = Decoder::Failed;
            return Poll::Ready(Some(Err(error)));
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.decoder, Decoder::Done | Decoder::Failed)
    }

    fn size_hint(&self) -> SizeHint {
        match self.decoder {
            Decoder::Length(left) => SizeHint::with_exact(left),
            Decoder::Done | Decoder::Failed => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}
