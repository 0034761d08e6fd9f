//! vane itself, started in this process from config text, on a free loopback port.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;

use prometheus_parse::{Scrape, Value};
use vane::app::{self, Running};
use vane::balancer::FallbackReason;
use vane::clock::Clock;
use vane::config::Config;

use crate::{Backend, Client};

/// Config text for vane on a free port in front of `backends` (weight 1 each), plus `extra`
/// TOML (a `[policy]` or `[proxy]` table) placed before the backends.
pub fn config_for(backends: &[&Backend], extra: &str) -> String {
    let mut text = format!("listen = \"127.0.0.1:0\"\n{extra}\n");
    for backend in backends {
        text.push_str(&backend.toml(1));
    }
    text
}

/// A `[policy]` table for the plugin built from this repository named `name`.
///
/// The pick deadline is raised from its 1 ms default to 100 ms. It counts the CPU time of the
/// call's thread, so preemption no longer trips it, but what a debug build of the host does
/// within a call counts too, and a fallback would blur what a test measures. The deadline
/// itself is tested at 1 ms with a plugin that loops and one that works (busy_machine.rs).
pub fn policy(name: &str, config: &str) -> String {
    format!(
        "[policy]\nplugin = {:?}\nconfig = {config:?}\npick_timeout = \"100ms\"\n",
        crate::plugins::plugin(name).display().to_string()
    )
}

/// A vane serving in this process.
pub struct Vane {
    running: Option<Running>,
    /// Where its first listener listens.
    pub address: SocketAddr,
    /// Where each of its listeners listens, in the config's order.
    pub listeners: Vec<SocketAddr>,
    /// Where its admin API listens, if the config has `admin`.
    pub admin: Option<SocketAddr>,
}

impl Vane {
    /// Checks `config` and starts vane with it.
    pub async fn start(config: &str) -> anyhow::Result<Vane> {
        let config = Config::parse(config, Path::new("test.toml"), Path::new("."))?;
        Ok(Vane::serving(app::start(&config).await?))
    }

    /// Checks `config` and starts vane with it, keeping time by `clock`: ejections, the plugin's
    /// breaker, log budgets and idle connections move only when the test moves the clock.
    pub async fn start_with_clock(config: &str, clock: Clock) -> anyhow::Result<Vane> {
        let config = Config::parse(config, Path::new("test.toml"), Path::new("."))?;
        Ok(Vane::serving(app::start_with_clock(&config, clock).await?))
    }

    /// Starts vane from the config file at `path`, which reloads read again, keeping time by
    /// `clock` (see [`Vane::start_with_clock`]).
    pub async fn start_file_with_clock(path: &Path, clock: Clock) -> anyhow::Result<Vane> {
        Ok(Vane::serving(
            app::start_from_file_with_clock(path, clock).await?,
        ))
    }

    fn serving(running: Running) -> Vane {
        Vane {
            address: running.proxy_address,
            listeners: running.listener_addresses.clone(),
            admin: running.admin_address,
            running: Some(running),
        }
    }

    /// Starts vane from the config file at `path`, which reloads read again.
    pub async fn start_file(path: &Path) -> anyhow::Result<Vane> {
        Ok(Vane::serving(app::start_from_file(path).await?))
    }

    /// A keep-alive HTTP/1.1 client for it.
    pub fn client(&self) -> Client {
        Client::new(self.address)
    }

    /// `GET path` on the admin API: status and body.
    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        let admin = self.admin.expect("the config has `admin`");
        let reply = Client::new(admin)
            .get(path)
            .await
            .expect("the admin API answers");
        (reply.status.as_u16(), reply.text())
    }

    /// `POST path` on the admin API: status and body.
    pub async fn admin_post(&self, path: &str) -> (u16, String) {
        let admin = self.admin.expect("the config has `admin`");
        let reply = Client::new(admin)
            .send(http::Method::POST, path, &[], bytes::Bytes::new())
            .await
            .expect("the admin API answers");
        (reply.status.as_u16(), reply.text())
    }

    /// `method path` on the admin API with a JSON `body` (empty for none): status and body.
    pub async fn admin_send(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let admin = self.admin.expect("the config has `admin`");
        let method = http::Method::from_bytes(method.as_bytes()).expect("a method");
        let headers: &[(&str, &str)] = &[("content-type", "application/json")];
        let reply = Client::new(admin)
            .send(method, path, headers, bytes::Bytes::from(body.to_owned()))
            .await
            .expect("the admin API answers");
        (reply.status.as_u16(), reply.text())
    }

    /// `GET /discovery` on the admin API, parsed.
    pub async fn discovery_json(&self) -> serde_json::Value {
        let (status, body) = self.admin_get("/discovery").await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("/discovery is JSON")
    }

    /// `GET /metrics` on the admin API: every sample, keyed by `name{label=value,...}` with the
    /// labels sorted (a histogram by its count).
    pub async fn metrics(&self) -> HashMap<String, f64> {
        let (status, text) = self.admin_get("/metrics").await;
        assert_eq!(status, 200, "{text}");
        samples(&text)
    }

    /// `GET /policy` on the admin API, parsed.
    pub async fn policy_json(&self) -> serde_json::Value {
        let (status, body) = self.admin_get("/policy").await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("/policy is JSON")
    }

    /// `GET /backends` on the admin API, parsed.
    pub async fn backends_json(&self) -> serde_json::Value {
        let (status, body) = self.admin_get("/backends").await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("/backends is JSON")
    }

    /// vane's live state: the backend set and policy in force, the retry budget, the clock.
    pub fn state(&self) -> &vane::state::State {
        &self.running().state
    }

    /// What reloads vane: the config, the plugin, the TLS certificates.
    pub fn reloader(&self) -> &vane::reload::Reloader {
        &self.running().reloader
    }

    /// How often the plugin's answer was replaced by the built-in round-robin for `reason`.
    pub fn fallbacks(&self, reason: FallbackReason) -> u64 {
        self.state().policy().fallbacks().get(reason)
    }

    /// Fails unless the plugin answered every pick itself.
    pub fn assert_no_fallbacks(&self) {
        for reason in FallbackReason::ALL {
            assert_eq!(self.fallbacks(reason), 0, "fallbacks for {reason:?}");
        }
    }

    /// The in-flight count of every backend, in config order.
    pub fn in_flight(&self) -> Vec<u32> {
        let set = self.state().backends();
        set.backends().iter().map(|b| b.stats.in_flight()).collect()
    }

    /// Marks every backend healthy or not, as a health check would.
    pub fn set_all_healthy(&self, healthy: bool) {
        for backend in self.state().backends().backends() {
            backend.health.set_healthy(healthy);
        }
    }

    fn running(&self) -> &Running {
        self.running.as_ref().expect("vane is running")
    }

    /// Stops vane, letting open requests finish.
    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }
}

/// Every sample of a scrape, keyed by `name{label=value,...}` with labels sorted.
pub fn samples(text: &str) -> HashMap<String, f64> {
    let lines = text.lines().map(|line| Ok(line.to_owned()));
    let scrape = Scrape::parse(lines).expect("/metrics parses as Prometheus text");
    let mut found = HashMap::new();
    for sample in scrape.samples {
        let mut labels: Vec<String> = sample
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        labels.sort();
        let key = format!("{}{{{}}}", sample.metric, labels.join(","));
        let value = match sample.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            Value::Summary(_) => continue,
        };
        found.insert(key, value);
    }
    found
}
