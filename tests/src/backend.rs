//! A real HTTP backend on a free loopback port, built with a name, a delay and a status.
//!
//! It names itself in the `x-backend` header and the body; `POST /echo` sends the request body
//! back, `GET /headers` lists the request headers it received, one `name: value` per line, and
//! `GET /healthz` answers 200 or 503 as [`Backend::set_healthy`] says (probes are counted apart
//! from other requests). A backend built with [`BackendBuilder::resetting`] closes every
//! connection as soon as it is accepted; one built with [`BackendBuilder::breaking`] reads the
//! request first. Over HTTP/2 (h2c with prior knowledge, or h2 over TLS with
//! [`BackendBuilder::tls`]) it serves the same; `x-version` names the HTTP version a request
//! came in, and `POST /trailers` answers the request's trailers back as response trailers,
//! with `grpc-status: 0` added. `GET /large` answers [`LARGE_BODY`] bytes, made as the
//! connection takes them.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

/// Describes a backend to start.
#[derive(Debug, Clone)]
pub struct BackendBuilder {
    name: String,
    delay: Duration,
    status: StatusCode,
    resetting: bool,
    breaking: bool,
    tls: Option<Arc<rustls::ServerConfig>>,
    max_streams: Option<u32>,
    gate: Option<Arc<tokio::sync::Semaphore>>,
}

/// A backend named `name` answering 200 at once.
pub fn backend(name: &str) -> BackendBuilder {
    BackendBuilder {
        name: name.to_owned(),
        delay: Duration::ZERO,
        status: StatusCode::OK,
        resetting: false,
        breaking: false,
        tls: None,
        max_streams: None,
        gate: None,
    }
}

impl BackendBuilder {
    /// Waits this long before every response.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Answers with this status.
    pub fn status(mut self, status: u16) -> Self {
        self.status = StatusCode::from_u16(status).expect("a valid status");
        self
    }

    /// Accepts connections and closes them at once, without reading a byte.
    pub fn resetting(mut self) -> Self {
        self.resetting = true;
        self
    }

    /// Reads each connection's first request, then closes it without an answer: the request
    /// reached the backend, which broke off.
    pub fn breaking(mut self) -> Self {
        self.breaking = true;
        self
    }

    /// Serves over TLS with `config` (HTTP/1.1 or HTTP/2 as ALPN and the client's first bytes
    /// say); a failed handshake closes the connection.
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Holds every request (but health probes) until `gate` has a permit for it: the test
    /// decides when each answer goes out, whatever the machine's speed.
    pub fn gated(mut self, gate: Arc<tokio::sync::Semaphore>) -> Self {
        self.gate = Some(gate);
        self
    }

    /// Over HTTP/2, allows at most `streams` open at once on a connection.
    pub fn max_streams(mut self, streams: u32) -> Self {
        self.max_streams = Some(streams);
        self
    }

    /// Binds a free loopback port and starts serving.
    pub async fn start(self) -> Backend {
        self.start_on("127.0.0.1:0".parse().expect("an address"))
            .await
    }

    /// Binds `address` and starts serving: a backend that died comes back where it was.
    pub async fn start_on(self, address: SocketAddr) -> Backend {
        let listener = TcpListener::bind(address).await.expect("bind a backend");
        let address = listener.local_addr().expect("a bound address");
        let counters = Arc::new(Counters {
            healthy: AtomicBool::new(true),
            ..Counters::default()
        });
        let spec = Arc::new(self.clone());
        let shared = counters.clone();
        let task = tokio::spawn(async move {
            // Owned here, so stopping the backend ends every connection too.
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                shared.connections.fetch_add(1, Ordering::SeqCst);
                if spec.resetting {
                    let _ = stream.set_zero_linger();
                    drop(stream);
                    continue;
                }
                if spec.breaking {
                    connections.spawn(async move {
                        let mut stream = stream;
                        let mut request = [0u8; 4096];
                        let _ = stream.read(&mut request).await;
                        let _ = stream.set_zero_linger();
                    });
                    continue;
                }
                let spec = spec.clone();
                let shared = shared.clone();
                connections.spawn(async move {
                    let tls = spec.tls.clone();
                    let max_streams = spec.max_streams;
                    let service = service_fn(move |request| {
                        let probe = request.uri().path() == "/healthz";
                        let counter = if probe { &shared.probes } else { &shared.hits };
                        counter.fetch_add(1, Ordering::SeqCst);
                        let healthy = shared.healthy.load(Ordering::SeqCst);
                        answer(spec.clone(), request, healthy, shared.clone())
                    });
                    let mut server = auto::Builder::new(TokioExecutor::new());
                    if let Some(streams) = max_streams {
                        server.http2().max_concurrent_streams(streams);
                    }
                    let _ = match tls {
                        None => server.serve_connection(TokioIo::new(stream), service).await,
                        Some(config) => {
                            let Ok(stream) = TlsAcceptor::from(config).accept(stream).await else {
                                return;
                            };
                            server.serve_connection(TokioIo::new(stream), service).await
                        }
                    };
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Backend {
            name: self.name,
            address,
            counters,
            task,
        }
    }
}

/// What a backend has seen, shared with its tasks.
#[derive(Debug, Default)]
struct Counters {
    hits: AtomicUsize,
    probes: AtomicUsize,
    connections: AtomicUsize,
    healthy: AtomicBool,
    /// Bytes of `GET /large` bodies handed to the connection so far.
    large_sent: AtomicUsize,
}

/// A running backend; it stops when dropped or [`Backend::stop`]ped.
#[derive(Debug)]
pub struct Backend {
    /// Its name, as it answers in `x-backend`.
    pub name: String,
    /// Where it listens.
    pub address: SocketAddr,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

impl Backend {
    /// Requests it has received, health probes aside.
    pub fn hits(&self) -> usize {
        self.counters.hits.load(Ordering::SeqCst)
    }

    /// Waits until it has received `count` requests; panics if that takes longer than
    /// `within` (the request never arrived).
    pub async fn wait_for_hits(&self, count: usize, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while self.hits() < count {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{}: {} of {count} requests arrived within {within:?}",
                self.name,
                self.hits()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Health probes it has received.
    pub fn probes(&self) -> usize {
        self.counters.probes.load(Ordering::SeqCst)
    }

    /// Bytes of `GET /large` bodies it has handed to its connections.
    pub fn large_sent(&self) -> usize {
        self.counters.large_sent.load(Ordering::SeqCst)
    }

    /// Connections it has accepted.
    pub fn connections(&self) -> usize {
        self.counters.connections.load(Ordering::SeqCst)
    }

    /// Makes `GET /healthz` answer 200 (healthy) or 503.
    pub fn set_healthy(&self, healthy: bool) {
        self.counters.healthy.store(healthy, Ordering::SeqCst);
    }

    /// Kills the backend: the listener closes and every open connection is dropped, as when
    /// its process dies (new connections are refused).
    pub fn stop(&self) {
        self.task.abort();
    }

    /// The `[[backends]]` entry for it, with this weight.
    pub fn toml(&self, weight: u32) -> String {
        format!(
            "[[backends]]\nname = \"{}\"\naddress = \"{}\"\nweight = {weight}\n",
            self.name, self.address
        )
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A response body, with or without trailers.
type AnswerBody = BoxBody<Bytes, Infallible>;

async fn answer(
    spec: Arc<BackendBuilder>,
    request: Request<Incoming>,
    healthy: bool,
    counters: Arc<Counters>,
) -> Result<Response<AnswerBody>, Infallible> {
    if request.uri().path() == "/healthz" {
        let mut response = Response::new(Full::new(Bytes::from_static(b"health\n")).boxed());
        if !healthy {
            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        }
        return Ok(response);
    }
    if !spec.delay.is_zero() {
        tokio::time::sleep(spec.delay).await;
    }
    if let Some(gate) = &spec.gate {
        gate.acquire().await.expect("the gate stays open").forget();
    }
    let version = format!("{:?}", request.version());
    if request.uri().path() == "/trailers" {
        return Ok(echo_trailers(&spec, request, &version).await);
    }
    if request.uri().path() == "/large" {
        return Ok(large(counters));
    }
    let body = match request.uri().path() {
        "/echo" => request
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default(),
        "/headers" => {
            let mut lines = String::new();
            for (name, value) in request.headers() {
                lines.push_str(&format!(
                    "{}: {}\n",
                    name,
                    value.to_str().unwrap_or("<binary>")
                ));
            }
            Bytes::from(lines)
        }
        _ => Bytes::from(spec.name.clone()),
    };
    let mut response = Response::new(Full::new(body).boxed());
    *response.status_mut() = spec.status;
    name_response(&mut response, &spec, &version);
    Ok(response)
}

/// The size of a `GET /large` body.
pub const LARGE_BODY: usize = 64 << 20;

/// A body of [`LARGE_BODY`] bytes in 64 KiB chunks, made only as the connection takes them
/// (counted in `large_sent`), so a client that does not read holds the backend back.
fn large(counters: Arc<Counters>) -> Response<AnswerBody> {
    const CHUNK: usize = 64 << 10;
    let chunks = futures_util::stream::unfold(0usize, move |sent| {
        let counters = counters.clone();
        async move {
            (sent < LARGE_BODY).then(|| {
                counters.large_sent.fetch_add(CHUNK, Ordering::SeqCst);
                let chunk = Bytes::from(vec![(sent / CHUNK) as u8; CHUNK]);
                (Ok(Frame::data(chunk)), sent + CHUNK)
            })
        }
    });
    Response::new(StreamBody::new(chunks).boxed())
}

/// Names the backend and the request's HTTP version in the response's headers.
fn name_response(response: &mut Response<AnswerBody>, spec: &BackendBuilder, version: &str) {
    let headers = response.headers_mut();
    headers.insert("x-backend", spec.name.parse().expect("a header-safe name"));
    headers.insert("x-version", version.parse().expect("a header-safe version"));
}

/// The request's body back, and its trailers back as trailers with `grpc-status: 0` added.
async fn echo_trailers(
    spec: &BackendBuilder,
    request: Request<Incoming>,
    version: &str,
) -> Response<AnswerBody> {
    let collected = request.into_body().collect().await;
    let (body, mut trailers) = match collected {
        Ok(collected) => {
            let trailers = collected.trailers().cloned().unwrap_or_default();
            (collected.to_bytes(), trailers)
        }
        Err(_) => (Bytes::new(), http::HeaderMap::new()),
    };
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    let body = Full::new(body)
        .with_trailers(async move { Some(Ok(trailers)) })
        .boxed();
    let mut response = Response::new(body);
    name_response(&mut response, spec, version);
    response
}

/// A raw HTTP/1.1 backend on a fresh port of 127.0.0.1 that answers every request head on
/// every connection (requests without a body) with `answer`, written as it is: for answers a
/// well-behaved server would not send.
pub async fn answering(answer: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("an address");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while let Some(at) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..at + 4);
                        if stream.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    address
}

/// A loopback port that refuses connections: bound, so no other test can take it, but not
/// listening. Keep the socket alive while the port is in use.
pub fn refusing_port() -> (TcpSocket, String) {
    let socket = TcpSocket::new_v4().expect("a socket");
    socket
        .bind("127.0.0.1:0".parse().expect("an address"))
        .expect("bind a loopback port");
    let address = socket.local_addr().expect("a bound address").to_string();
    (socket, address)
}
