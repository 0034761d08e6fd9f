//! `vane demo`: three small backends on loopback and the config that puts vane in front of them.
//!
//! Each backend answers `hello from demo-N` and, for `?delay=300ms`, waits that long first, so a
//! user can watch least-conn steer around slow requests. `?fail=demo-2` makes demo-2 answer 503
//! to that request, `?fail=demo-2:0.3` to 30 % of such requests, and `?fail=0.3` any backend, so
//! a failure-aware policy can be watched too.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
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
    BackendConfig, BackendProtocol, Config, DiscoveryConfig, EjectionConfig, HealthConfig,
    ListenerConfig, PolicyConfig, ProxyConfig, RetryConfig,
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
/// by the plugin `policy` names, with health checks and the default ejection and retries.
pub fn config(
    listen: SocketAddr,
    admin: SocketAddr,
    policy: PolicyConfig,
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
        policy: Some(policy),
        proxy: ProxyConfig::default(),
        health: Some(HealthConfig::default()),
        ejection: EjectionConfig::default(),
        retries: RetryConfig::default(),
        slow_start: Duration::ZERO,
        watch_config: false,
        backends,
        groups: Vec::new(),
        discovery: DiscoveryConfig::default(),
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

/// The share of requests the backend `name` is asked to fail by `query`'s `fail=` pairs:
/// `fail=SHARE` for any backend, `fail=NAME` (all) or `fail=NAME:SHARE` for one.
fn failure_share(name: &str, query: &str) -> Option<f64> {
    query
        .split('&')
        .filter_map(|pair| pair.strip_prefix("fail="))
        .find_map(|value| match value.split_once(':') {
            Some((backend, share)) if backend == name => share.parse().ok(),
            Some(_) => None,
            None if value == name => Some(1.0),
            None => value.parse().ok(),
        })
}

/// A number in [0, 1), different at each call.
fn chance() -> f64 {
    static DRAWS: AtomicU64 = AtomicU64::new(0);
    let draw = vane_plugin_kit::mix64(DRAWS.fetch_add(1, Ordering::Relaxed));
    (draw >> 11) as f64 / (1u64 << 53) as f64
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
    let fails = failure_share(name, request.uri().query().unwrap_or(""))
        .is_some_and(|share| chance() < share);
    let (status, body) = if fails {
        (
            http::StatusCode::SERVICE_UNAVAILABLE,
            format!("{name} fails, as asked\n"),
        )
    } else {
        (http::StatusCode::OK, format!("hello from {name}\n"))
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("x-backend", http::HeaderValue::from_static(name));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_says_which_backend_fails_and_how_often() {
        assert_eq!(failure_share("demo-2", "fail=demo-2"), Some(1.0));
        assert_eq!(
            failure_share("demo-2", "delay=1s&fail=demo-2:0.3"),
            Some(0.3)
        );
        assert_eq!(failure_share("demo-1", "fail=demo-2:0.3"), None);
        assert_eq!(failure_share("demo-1", "fail=0.5"), Some(0.5));
        assert_eq!(failure_share("demo-1", "delay=1s"), None);
        let draws: Vec<f64> = (0..1000).map(|_| chance()).collect();
        assert!(draws.iter().all(|d| (0.0..1.0).contains(d)));
        let below = draws.iter().filter(|d| **d < 0.3).count();
        assert!((230..370).contains(&below), "{below} of 1000 below 0.3");
    }
}
