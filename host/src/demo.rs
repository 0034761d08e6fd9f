//! `vane demo`: three small backends on loopback and the config that puts vane in front of them.
//!
//! Each backend answers `hello from demo-N` and, for `?delay=300ms`, waits that long first, so a
//! user can watch least-conn steer around slow requests.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::config::{
    BackendConfig, BackendProtocol, Config, EjectionConfig, HealthConfig, ListenerConfig,
    PolicyConfig, ProxyConfig, RetryConfig,
};

/// The longest `?delay=` a demo backend honours.
const MAX_DELAY: Duration = Duration::from_secs(10);

/// Starts `count` demo backends on free loopback ports; they serve until the process ends.
pub async fn start_backends(count: usize) -> std::io::Result<Vec<BackendConfig>> {
    let mut backends = Vec::with_capacity(count);
    for n in 1..=count {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let name = format!("demo-{n}");
        backends.push(BackendConfig {
            name: name.clone(),
            address: listener.local_addr()?,
            weight: 1,
            tags: vec!["demo".into()],
            protocol: BackendProtocol::Http1,
            tls: None,
        });
        tokio::spawn(serve_backend(listener, name));
    }
    Ok(backends)
}

/// The demo's config: vane on `listen` (admin API on `admin`) in front of `backends`, balanced
/// by the plugin at `plugin`, with health checks and the default ejection and retries.
pub fn config(
    listen: SocketAddr,
    admin: SocketAddr,
    plugin: PathBuf,
    backends: Vec<BackendConfig>,
) -> Config {
    Config {
        listeners: vec![ListenerConfig {
            address: listen,
            tls: None,
        }],
        admin: Some(admin),
        admin_token: None,
        workers: None,
        policy: Some(PolicyConfig::for_plugin(plugin)),
        proxy: ProxyConfig::default(),
        health: Some(HealthConfig::default()),
        ejection: EjectionConfig::default(),
        retries: RetryConfig::default(),
        slow_start: Duration::ZERO,
        backends,
    }
}

/// Where the shipped least-conn plugin is after `cargo build --release --target wasm32-wasip2`:
/// `target/wasm32-wasip2/release/least_conn.wasm`, found from the running executable
/// (`target/<profile>/vane`) or else from the current folder.
pub fn default_plugin() -> PathBuf {
    let relative = Path::new("wasm32-wasip2/release/least_conn.wasm");
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join(relative)))
        .filter(|path| path.is_file())
        .unwrap_or_else(|| Path::new("target").join(relative))
}

async fn serve_backend(listener: TcpListener, name: String) {
    let name: &'static str = Box::leak(name.into_boxed_str());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(name, request));
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(
    name: &'static str,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let delay = request
        .uri()
        .query()
        .into_iter()
        .flat_map(|query| query.split('&'))
        .find_map(|pair| pair.strip_prefix("delay="))
        .and_then(|value| humantime::parse_duration(value).ok());
    if let Some(delay) = delay {
        tokio::time::sleep(delay.min(MAX_DELAY)).await;
    }
    let body = format!("hello from {name}\n");
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response
        .headers_mut()
        .insert("x-backend", http::HeaderValue::from_static(name));
    Ok(response)
}
