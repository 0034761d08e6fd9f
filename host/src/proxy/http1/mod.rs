//! vane's own HTTP/1.1 server side: one client connection, request after request. It exists so
//! that an idle keep-alive connection costs almost nothing: between requests the connection
//! holds no buffer, only its socket and this task, until the client's next bytes arrive
//! (hyper's server keeps 16 KiB of buffers per connection for its whole life).
//!
//! A request's way: `request` parses and checks the head, refusing anything ambiguous; the
//! body, if any, reads through the connection's read side, lent to it (`body`) and taken back
//! after the response; the handler the caller gives (the proxy's service) answers; `response`
//! writes the answer through `sender`, which holds it to `send_timeout`. A connection is kept
//! for another request only when both sides allow it, the body was read to its end and vane is
//! not shutting down. While it waits for its next request, an idle connection gives its slot
//! up if a new client needs it. Refusals and timeouts are counted as client faults. The module
//! knows HTTP/1, not the proxy: it imports nothing from it (only the clock, the stall timer and
//! the client connections' counts). vane's HTTP/1.1 client (`proxy/upstream/http1/`) decodes
//! response bodies with `decode` and reads Content-Length with `parse_length` from here.

mod body;
pub(super) mod decode;
mod fields;
mod request;
mod response;
mod sender;
mod tunnel;

#[cfg(fuzzing)]
pub(super) mod fuzz {
    //! HTTP/1's fuzz entry points, for `crate::fuzzing`.
    pub(crate) use super::decode::checks::fuzz as chunked_body;
    pub(crate) use super::request::checks::fuzz as http1_request;
}

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Request, Response, StatusCode};
use http_body::Body;
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

pub(crate) use body::{BodyError, Reader, RequestBody};
pub(crate) use fields::{FieldSource, Fields};
pub(super) use request::{is_valid_host, parse_length};
pub(crate) use tunnel::Switch;

use self::body::LentSlot;
use self::decode::READ_SIZE;
use self::request::{Framing, Head, Refusal};
use self::response::Answering;
use self::sender::Sender;
use crate::clock::Clock;
use crate::proxy::transport::ClientStream;
use crate::state::ClientConnections;

/// The limits an HTTP/1 connection is served with (from `[proxy]`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Settings {
    /// How long a request head may take, from its first byte.
    pub(super) header_read_timeout: Duration,
    /// How long a keep-alive connection may wait for its next request.
    pub(super) idle_timeout: Duration,
    /// The largest request head.
    pub(super) max_header_size: usize,
    /// How long a response may wait for the client to read some of it.
    pub(super) send_timeout: Duration,
}

/// After refusing a request, or answering one whose body it did not read to the end, how long
/// vane goes on reading (and dropping) what the client still sends before it closes, so that
/// the answer is not lost to a reset (nginx's lingering close).
const LINGER_TIME: Duration = Duration::from_secs(2);
/// The most a client may send during the linger.
const LINGER_BYTES: usize = 1 << 20;

/// What a connection shares with the rest of vane: its clock, the signal to stop, and the
/// client connections' counts and idle list.
#[derive(Clone, Copy)]
pub(super) struct Shared<'a> {
    /// vane's clock.
    pub(super) clock: &'a Clock,
    /// Cancelled when vane shuts down.
    pub(super) stop: &'a CancellationToken,
    /// Where faults are counted and idle connections are asked to make room.
    pub(super) connections: &'a ClientConnections,
}

/// Serves the HTTP/1 client on `stream`, each request answered by `handler`, until the client
/// closes, breaks a rule, stays idle past the idle timeout (or while a new client needs its
/// slot), or `stop` is cancelled (then after the request in progress). With `started`, the
/// client's first bytes have come (the accept loop peeked at them); without, the connection
/// waits for them as an idle one does, for up to the header read timeout (after a TLS
/// handshake).
pub(super) async fn serve<H, F, B>(
    stream: ClientStream,
    started: bool,
    settings: Settings,
    shared: Shared<'_>,
    mut handler: H,
) where
    H: FnMut(Request<RequestBody>) -> F,
    F: Future<Output = Response<B>>,
    B: Body<Data = Bytes> + Unpin + FieldSource,
{
    let (read, write) = stream.into_split();
    let mut write = Sender::new(write, settings.send_timeout, shared.connections);
    let mut reader = Reader::new(read);
    // How long to wait for the next request's first bytes, if they have not come yet.
    let mut wait = (!started).then_some(settings.header_read_timeout);
    let mut waits: Option<Waits> = None;
    loop {
        if let Some(limit) = wait {
            // Idle: give the buffer's memory back while waiting.
            reader.buffer = BytesMut::new();
            let waits = waits.get_or_insert_with(|| Waits::new(shared.stop));
            waits.deadline.as_mut().reset(Instant::now() + limit);
            // Reading, not only waiting for readiness: readiness can be left over from the last
            // request, and only a read tells whether the client really sent more.
            let woke = tokio::select! {
                biased;
                read = reader.fill_exact() => read,
                () = &mut waits.deadline => return,
                () = &mut waits.stop => return,
                () = shared.connections.until_evicted() => return,
            };
            if !matches!(woke, Ok(read) if read > 0) {
                return;
            }
        }
        let head = match read_head(&settings, shared.clock, &mut reader).await {
            Some(Ok(head)) => head,
            // Boxed, as the exchange below: an idle connection's task carries neither.
            Some(Err(refusal)) => {
                shared.connections.fault(refusal.fault());
                return Box::pin(refuse(write, reader, refusal)).await;
            }
            None => return,
        };
        let exchange = exchange(&mut handler, shared, &mut write, reader, head);
        // Boxed, so that an idle connection's task does not carry a request's state.
        match Box::pin(exchange).await {
            Some(kept) => reader = kept,
            None => return,
        }
        // A pipelined request may be buffered already; if not, the connection is idle.
        wait = reader.buffer.is_empty().then_some(settings.idle_timeout);
    }
}

/// What an idle connection waits for besides its client: its deadline and vane's stop. Each is
/// registered once for the connection's life, not once per wait: tokio moves a registered
/// timer's deadline later with one atomic step, where a timer made for each wait is put in its
/// wheel and taken out again every time (BENCHMARKS.md, issue 13).
struct Waits {
    deadline: Pin<Box<Sleep>>,
    stop: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl Waits {
    fn new(stop: &CancellationToken) -> Self {
        Waits {
            deadline: Box::pin(tokio::time::sleep(Duration::ZERO)),
            stop: Box::pin(stop.clone().cancelled_owned()),
        }
    }
}

/// Reads until `reader` holds a whole request head, within the header read timeout: `None`
/// when the client closed or failed first, a 408 refusal when it ran out of time inside a head.
async fn read_head(
    settings: &Settings,
    clock: &Clock,
    reader: &mut Reader,
) -> Option<Result<Head, Refusal>> {
    let deadline = clock.instant() + settings.header_read_timeout;
    loop {
        match request::parse(&mut reader.buffer, settings.max_header_size) {
            Ok(None) => {}
            Ok(Some(head)) => return Some(Ok(head)),
            Err(refusal) => return Some(Err(refusal)),
        }
        match tokio::time::timeout_at(deadline, reader.fill_exact()).await {
            Ok(Ok(read)) if read > 0 => {}
            Err(_elapsed) if !reader.buffer.is_empty() => return Some(Err(request::TIMED_OUT)),
            _ => return None,
        }
    }
}

/// Where the connection's read side is while a request is served.
enum ReadSide {
    /// Here: the request had no body.
    Here(Reader),
    /// Lent to the request's body, taken back after the response.
    Lent(LentSlot),
}

/// Serves one request and writes its response: the read side back if the connection may
/// carry another request.
async fn exchange<H, F, B>(
    handler: &mut H,
    shared: Shared<'_>,
    write: &mut Sender<'_>,
    reader: Reader,
    head: Head,
) -> Option<Reader>
where
    H: FnMut(Request<RequestBody>) -> F,
    F: Future<Output = Response<B>>,
    B: Body<Data = Bytes> + Unpin + FieldSource,
{
    let Head {
        request,
        framing,
        keep_alive,
        expect_continue,
    } = head;
    let mut answering = Answering::new(request.method(), request.version(), keep_alive);
    let (parts, ()) = request.into_parts();
    let mut wants_continue = None;
    let (body, read_side) = if framing == Framing::Empty {
        (RequestBody::empty(), ReadSide::Here(reader))
    } else {
        let slot = body::lend(reader);
        let signal = expect_continue.then(|| {
            let (signal, wanted) = oneshot::channel();
            wants_continue = Some(wanted);
            signal
        });
        let body = RequestBody::new(slot.clone(), framing, signal);
        (body, ReadSide::Lent(slot))
    };
    let request = Request::from_parts(parts, body);
    // In a block of its own, so that the handler's future is gone (and its room reused) while
    // the response is written.
    let response = {
        let mut answer = std::pin::pin!(handler(request));
        match wants_continue {
            None => answer.await,
            Some(mut wanted) => tokio::select! {
                answered = &mut answer => answered,
                signal = &mut wanted => {
                    if signal.is_ok() {
                        write.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.ok()?;
                        write.flush().await.ok()?;
                    }
                    answer.await
                }
            },
        }
    };
    if response.status() == StatusCode::SWITCHING_PROTOCOLS
        && let ReadSide::Here(reader) = read_side
    {
        // Switched only when the handler joined a tunnel end to the answer; else the writer
        // refuses an interim status as a final answer.
        let switch = response.extensions().get::<Switch>().cloned();
        if let Some(switch) = switch
            && let Some(end) = switch.take()
        {
            let (parts, _) = response.into_parts();
            response::write_switching(write, &parts.headers)
                .await
                .ok()?;
            tunnel::join(reader, write, end, switch.idle_timeout()).await;
            return None;
        }
        let kept = response::write(write, response, answering).await.ok()?;
        return kept.then_some(reader);
    }
    // A body not read to its end leaves the connection unusable: the next request would start
    // somewhere inside it.
    let body_read = match &read_side {
        ReadSide::Here(_) => true,
        ReadSide::Lent(slot) => body::finished(slot),
    };
    // Shutting down, a connection closes after its request (its client moves on while vane
    // still accepts, through the shutdown grace).
    answering.keep_alive &=
        body_read && !shared.stop.is_cancelled() && !shared.connections.closing();
    let kept = response::write(write, response, answering).await.ok()?;
    let reader = match read_side {
        ReadSide::Here(reader) => Some(reader),
        ReadSide::Lent(slot) => body::take_back(&slot),
    };
    if kept {
        return reader;
    }
    if !body_read && let Some(reader) = reader {
        // The client may still be sending the body: read it away before closing, so that the
        // close does not reset the connection under the response.
        linger(write, reader).await;
    }
    None
}

/// Answers a refused request head, then lingers before closing.
async fn refuse(write: Sender<'_>, reader: Reader, refusal: Refusal) {
    tracing::debug!(status = %refusal.status, reason = refusal.reason, "refused a request head");
    answer_and_linger(write, reader, &response::refusal(refusal)).await;
}

/// Answers `answer`, a whole response that closes the connection, to a client on `stream`
/// whose request vane does not read (such as plaintext HTTP on a TLS listener), then lingers
/// before closing.
pub(super) async fn answer_and_close(
    stream: ClientStream,
    answer: &[u8],
    settings: Settings,
    connections: &ClientConnections,
) {
    let (read, write) = stream.into_split();
    let write = Sender::new(write, settings.send_timeout, connections);
    answer_and_linger(write, Reader::new(read), answer).await;
}

/// Writes `answer`, then lingers before closing.
async fn answer_and_linger(mut write: Sender<'_>, reader: Reader, answer: &[u8]) {
    if write.write_all(answer).await.is_err() {
        return;
    }
    linger(&mut write, reader).await;
}

/// Closes the sending side, then reads and drops what the client still sends, for a bounded
/// time and size, so that the kernel does not answer it with a reset that could destroy the
/// response in flight (nginx's lingering close).
async fn linger(write: &mut Sender<'_>, mut reader: Reader) {
    let _ = write.shutdown().await;
    let drain = async {
        let mut dropped = 0;
        while dropped < LINGER_BYTES {
            reader.buffer.clear();
            match reader.fill(READ_SIZE).await {
                Ok(read) if read > 0 => dropped += read,
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, drain).await;
}
