//! A real HTTP backend on a free loopback port, built with a name, a delay and a status.
//!
//! It names itself in the `x-backend` header and the body; `POST /echo` sends the request body
//! back, `GET /headers` lists the request headers it received, one `name: value` per line.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Describes a backend to start.
#[derive(Debug, Clone)]
pub struct BackendBuilder {
    name: String,
    delay: Duration,
    status: StatusCode,
}

/// A backend named `name` answering 200 at once.
pub fn backend(name: &str) -> BackendBuilder {
    BackendBuilder {
        name: name.to_owned(),
        delay: Duration::ZERO,
        status: StatusCode::OK,
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

    /// Binds a free loopback port and starts serving.
    pub async fn start(self) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a backend");
        let address = listener.local_addr().expect("a bound address");
        let hits = Arc::new(AtomicUsize::new(0));
        let spec = Arc::new(self.clone());
        let counter = hits.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let spec = spec.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        counter.fetch_add(1, Ordering::SeqCst);
                        answer(spec.clone(), request)
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Backend {
            name: self.name,
            address,
            hits,
            task,
        }
    }
}

/// A running backend; it stops when dropped or [`Backend::stop`]ped.
#[derive(Debug)]
pub struct Backend {
    /// Its name, as it answers in `x-backend`.
    pub name: String,
    /// Where it listens.
    pub address: SocketAddr,
    hits: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Backend {
    /// Requests it has received.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Stops accepting connections (open ones end when their tasks next run).
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

async fn answer(
    spec: Arc<BackendBuilder>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if !spec.delay.is_zero() {
        tokio::time::sleep(spec.delay).await;
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
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = spec.status;
    response
        .headers_mut()
        .insert("x-backend", spec.name.parse().expect("a header-safe name"));
    Ok(response)
}
