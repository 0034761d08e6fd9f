//! Floods over HTTP/2 (h2c): rapid reset (CVE-2023-44487), CONTINUATION frames without end,
//! more streams than allowed, and a client that never reads. Each is met as its own test says,
//! counted in `/metrics`, and ordinary clients beside it are all served.

use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vane::state::ClientFault;
use vane_e2e::backend::backend;
use vane_e2e::load::Flood;
use vane_e2e::proxy::config_for;
use vane_e2e::{Vane, wait_until};

/// The HTTP/2 connection preface and an empty SETTINGS frame.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// Frame types (RFC 9113 §6).
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;
/// Flags.
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;

/// Connects to `vane` as a raw HTTP/2 client: the preface, then an ACK of vane's SETTINGS (its
/// limits apply once acknowledged).
async fn raw_client(vane: &Vane) -> TcpStream {
    let mut stream = TcpStream::connect(vane.address).await.unwrap();
    stream.write_all(PREFACE).await.unwrap();
    let mut head = [0u8; 9];
    stream.read_exact(&mut head).await.unwrap();
    assert_eq!(head[3], SETTINGS, "vane's first frame is its SETTINGS");
    let mut payload = vec![0u8; u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize];
    stream.read_exact(&mut payload).await.unwrap();
    stream
        .write_all(&frame(SETTINGS, ACK, 0, &[]))
        .await
        .unwrap();
    stream
}

/// One frame's bytes.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let length = payload.len() as u32;
    let mut bytes = length.to_be_bytes()[1..].to_vec();
    bytes.extend([kind, flags]);
    bytes.extend(stream.to_be_bytes());
    bytes.extend(payload);
    bytes
}

/// An HPACK block for `method /echo` to host `a`: indexed `:scheme http`, and the rest as
/// literals with an indexed name (RFC 7541 §6.2.2), so no Huffman coding is needed.
fn request_block(method: &str) -> Vec<u8> {
    let mut block = vec![0x86];
    for (index, value) in [(2u8, method), (4, "/echo"), (1, "a")] {
        block.push(index);
        block.push(value.len() as u8);
        block.extend(value.as_bytes());
    }
    block
}

/// The frames a raw client reads: type, flags, stream and payload of each, until the server
/// closes or `limit` passes.
async fn frames_until_closed(
    stream: &mut TcpStream,
    limit: Duration,
) -> Vec<(u8, u8, u32, Vec<u8>)> {
    let mut read = Vec::new();
    let _ = tokio::time::timeout(limit, async {
        let mut chunk = [0u8; 16 << 10];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => read.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    let mut frames = Vec::new();
    let mut at = 0;
    while read.len() >= at + 9 {
        let length = u32::from_be_bytes([0, read[at], read[at + 1], read[at + 2]]) as usize;
        if read.len() < at + 9 + length {
            break;
        }
        let id = u32::from_be_bytes([read[at + 5], read[at + 6], read[at + 7], read[at + 8]]);
        let payload = read[at + 9..at + 9 + length].to_vec();
        frames.push((read[at + 3], read[at + 4], id & 0x7fff_ffff, payload));
        at += 9 + length;
    }
    frames
}

/// The error code of the GOAWAY among `frames`, if any.
fn goaway_code(frames: &[(u8, u8, u32, Vec<u8>)]) -> Option<u32> {
    frames
        .iter()
        .find(|frame| frame.0 == GOAWAY)
        .map(|(_, _, _, payload)| u32::from_be_bytes(payload[4..8].try_into().unwrap()))
}

/// Opens a stream for a POST whose body never comes, so that the backend never answers it:
/// its body's sending side, or `None` once vane has closed the connection.
async fn unfinished_post(
    client: &h2::client::SendRequest<Bytes>,
    vane: &Vane,
) -> Option<h2::SendStream<Bytes>> {
    let mut sender = client.clone().ready().await.ok()?;
    let request = http::Request::post(format!("http://{}/echo", vane.address))
        .body(())
        .unwrap();
    sender
        .send_request(request, false)
        .ok()
        .map(|(_, body)| body)
}

const ENHANCE_YOUR_CALM: u32 = 0xb;
const REFUSED_STREAM: u32 = 0x7;

/// A vane with `/metrics` in front of one backend named `a`.
async fn vane_for(a: &vane_e2e::Backend) -> Vane {
    vane_with(a, "").await
}

/// A vane with `/metrics` and these `[proxy]` settings in front of one backend named `a`.
///
/// Only the test of a client that answers no PING shortens `send_timeout`: vane PINGs an h2
/// client every `send_timeout` (at most 20 s) and closes it if no answer comes within as long,
/// which on a loaded machine could end the other tests' connections before what they test.
async fn vane_with(a: &vane_e2e::Backend, proxy: &str) -> Vane {
    let extra = format!("admin = \"127.0.0.1:0\"\n[proxy]\n{proxy}\n");
    Vane::start(&config_for(&[a], &extra)).await.unwrap()
}

fn h2_floods(vane: &Vane) -> u64 {
    vane.state()
        .client_connections()
        .faults(ClientFault::Http2Flood)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_closes_the_connection() {
    let a = backend("a").start().await;
    let vane = vane_for(&a).await;
    let flood = Flood::start(&vane, 2);
    let stream = TcpStream::connect(vane.address).await.unwrap();
    let (client, connection) = h2::client::handshake(stream).await.unwrap();
    let connection = tokio::spawn(connection);
    // Each stream a POST whose body never comes, so that the backend never answers it, and
    // which the client cancels at once: every one costs vane a pick and a backend request.
    let mut opened = 0;
    for _ in 0..5000 {
        let Some(mut body) = unfinished_post(&client, &vane).await else {
            break;
        };
        body.send_reset(h2::Reason::CANCEL);
        opened += 1;
        tokio::task::yield_now().await;
    }
    assert!(
        opened < 5000,
        "the connection was closed before 5000 cancelled streams"
    );
    let _ = tokio::time::timeout(Duration::from_secs(10), connection).await;
    let tally = flood.stop().await;
    assert_eq!(tally.failed(), 0, "everyone else was served: {tally:?}");
    wait_until("the flood counted", || h2_floods(&vane) >= 1).await;
    assert_eq!(h2_floods(&vane), 1, "counted once");
    let metrics = vane.metrics().await;
    assert_eq!(metrics["vane_client_faults_total{fault=h2_flood}"], 1.0);
    vane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_cancelled_after_reaching_a_backend_close_the_connection() {
    let a = backend("a").start().await;
    let vane = vane_for(&a).await;
    let stream = TcpStream::connect(vane.address).await.unwrap();
    let (client, connection) = h2::client::handshake(stream).await.unwrap();
    let connection = tokio::spawn(connection);
    // The slow rapid reset, which h2 itself cannot see: each stream is cancelled only once
    // vane has forwarded it, so each costs a backend request.
    let mut cancelled = 0;
    for sent in 1..=1000 {
        let Some(mut body) = unfinished_post(&client, &vane).await else {
            break;
        };
        wait_until("the stream forwarded, or the connection closed", || {
            a.hits() >= sent || connection.is_finished()
        })
        .await;
        if connection.is_finished() {
            break;
        }
        body.send_reset(h2::Reason::CANCEL);
        cancelled += 1;
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), connection).await;
    // The stream opened right after the 100th may reach a backend before the close.
    assert!(
        (100..=101).contains(&cancelled),
        "closed at the 100th cancelled stream: {cancelled}"
    );
    wait_until("the flood counted", || h2_floods(&vane) == 1).await;
    assert_eq!(vane.client().get("/").await.unwrap().status, 200);
    vane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_continuation_frames_get_goaway() {
    let a = backend("a").start().await;
    let vane = vane_for(&a).await;
    let flood = Flood::start(&vane, 2);
    let mut stream = raw_client(&vane).await;
    let first = frame(HEADERS, END_STREAM, 1, &request_block("GET"));
    stream.write_all(&first).await.unwrap();
    // Literal fields with new names, 1000 bytes each, 16 to a frame: a header block that never
    // ends. The writes fail once vane closes the connection.
    let mut field = vec![0x00, 3];
    field.extend(b"x-a");
    // The value's length, 1000: 127 in the prefix, then 873 as a varint (105 | 0x80, 6).
    field.extend([0x7f, 105 | 0x80, 6]);
    field.extend([b'a'; 1000]);
    let payload = field.repeat(16);
    for _ in 0..1000 {
        if stream
            .write_all(&frame(CONTINUATION, 0, 1, &payload))
            .await
            .is_err()
        {
            break;
        }
    }
    let frames = frames_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert_eq!(goaway_code(&frames), Some(ENHANCE_YOUR_CALM), "{frames:?}");
    let tally = flood.stop().await;
    assert_eq!(tally.failed(), 0, "everyone else was served: {tally:?}");
    wait_until("the flood counted", || h2_floods(&vane) == 1).await;
    assert_eq!(
        a.hits(),
        tally.sent(),
        "the endless request reached no backend"
    );
    vane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_past_the_limit_are_refused() {
    let a = backend("a").start().await;
    // The 100 streams stay open to the end: a short drain lets vane stop without waiting for
    // them for the default 30 s.
    let vane = vane_with(&a, "drain_timeout = \"1s\"").await;
    let mut stream = raw_client(&vane).await;
    // 150 POSTs whose bodies never come, so none ends: only 100 may be open at once.
    let block = request_block("POST");
    let mut burst = Vec::new();
    for index in 0..150u32 {
        burst.extend(frame(HEADERS, END_HEADERS, 1 + 2 * index, &block));
    }
    stream.write_all(&burst).await.unwrap();
    a.wait_for_hits(100, Duration::from_secs(10)).await;
    let frames = frames_until_closed(&mut stream, Duration::from_secs(1)).await;
    let refused = frames
        .iter()
        .filter(|(kind, _, _, payload)| {
            *kind == RST_STREAM
                && u32::from_be_bytes(payload[..4].try_into().unwrap()) == REFUSED_STREAM
        })
        .count();
    assert_eq!(refused, 50, "{frames:?}");
    assert_eq!(
        a.hits(),
        100,
        "only the streams within the limit were forwarded"
    );
    // Everyone else is served meanwhile.
    assert_eq!(vane.client().get("/").await.unwrap().status, 200);
    vane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_closed() {
    let a = backend("a").start().await;
    let vane = vane_with(&a, "send_timeout = \"300ms\"").await;
    let mut stream = raw_client(&vane).await;
    let get = frame(HEADERS, END_STREAM | END_HEADERS, 1, &request_block("GET"));
    stream.write_all(&get).await.unwrap();
    // Read nothing, answer no PING: within send_timeout of a PING, vane closes.
    let connections = vane.state().client_connections();
    wait_until("the unresponsive client counted", || {
        connections.faults(ClientFault::Unresponsive) == 1
    })
    .await;
    let frames = frames_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(!frames.is_empty(), "vane had answered before it closed");
    assert_eq!(vane.client().get("/").await.unwrap().status, 200);
    vane.stop().await;
}
