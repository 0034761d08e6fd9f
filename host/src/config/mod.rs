//! The configuration file: TOML read into a raw mirror that refuses unknown keys, then checked
//! into typed values. Every error names the file, the line and the key, and all are reported at once.

mod admin_token;
mod error;
mod raw;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::uri::PathAndQuery;

pub use admin_token::{AdminToken, MIN_TOKEN_LENGTH};
pub use error::{ConfigError, ConfigIssue};

/// A checked configuration, ready to start vane with.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where the proxy listens: `listen` (plaintext) first if given, then each
    /// `[[listeners]]` entry in file order; at least one, no address twice.
    pub listeners: Vec<ListenerConfig>,
    /// Where the admin API listens (`admin`); none by default.
    pub admin: Option<SocketAddr>,
    /// The token every admin API call must carry (`admin_token_file`); required when `admin`
    /// is not a loopback address.
    pub admin_token: Option<AdminToken>,
    /// `workers`: the threads that serve requests (tokio workers), 1 to 1024; by default one
    /// per core. Only `vane run` uses it; a change needs a restart.
    pub workers: Option<usize>,
    /// The policy plugin (`[policy]`); without it, the built-in round-robin balances.
    pub policy: Option<PolicyConfig>,
    /// The proxy's limits and timeouts (`[proxy]`).
    pub proxy: ProxyConfig,
    /// Active health checks (`[health]`); without it no probes are sent.
    pub health: Option<HealthConfig>,
    /// Passive ejection (`[ejection]`), on by default.
    pub ejection: EjectionConfig,
    /// Retries (`[retries]`), on by default.
    pub retries: RetryConfig,
    /// `slow_start`: how long a backend that joins the set or returns to rotation takes to be
    /// offered its whole share of requests; zero (the default) for at once. At most an hour.
    pub slow_start: Duration,
    /// `watch_config`: whether vane watches the config file it was started from and reloads
    /// it when it changes (as SIGHUP does), including a Kubernetes ConfigMap's `..data` swap;
    /// off by default. Read at start.
    pub watch_config: bool,
    /// The backends listed (`[[backends]]` entries with an `address`), in file order. The
    /// file must have at least one `[[backends]]` entry, listed or a group.
    pub backends: Vec<BackendConfig>,
    /// The groups of backends discovered (`[[backends]]` entries with `dns`, `srv` or `file`),
    /// in file order; their members follow the listed backends in the set.
    pub groups: Vec<GroupConfig>,
    /// How groups are looked up (`[discovery]`).
    pub discovery: DiscoveryConfig,
}

/// One address the proxy listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    /// `address`, as `ip:port`.
    pub address: SocketAddr,
    /// `tls`: terminate TLS with these certificates; plaintext without it.
    pub tls: Option<TlsConfig>,
}

impl std::fmt::Display for ListenerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.tls {
            Some(_) => write!(f, "{} (TLS)", self.address),
            None => write!(f, "{}", self.address),
        }
    }
}

/// A listener's `tls` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// `certificates` (at least one): each a certificate chain and its key. A client's SNI name
    /// chooses the certificate whose names cover it; the first serves every other client.
    pub certificates: Vec<CertificateFiles>,
}

/// One certificate of a TLS listener: PEM files, resolved against the config file's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    /// `cert`: the certificate chain, the server's own certificate first.
    pub cert: PathBuf,
    /// `key`: its private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// The `[policy]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyConfig {
    /// The plugin component (`plugin`, required), resolved against the config file's folder.
    pub plugin: PathBuf,
    /// The string handed to the plugin's `configure` (`config`); default empty.
    pub config: String,
    /// `pick_timeout`, `configure_timeout` and `memory_limit`.
    pub limits: PluginLimits,
    /// `breaker_failures` and `breaker_cool_down`.
    pub breaker: BreakerConfig,
    /// `watch`: reload the plugin when its file changes; default true.
    pub watch: bool,
    /// Where compiled plugins are cached: `cache_dir` (relative to the config file's folder),
    /// by default `$XDG_CACHE_HOME/vane/plugins` or `~/.cache/vane/plugins`; `None` with
    /// `cache = false` (or no home folder).
    pub cache: Option<PathBuf>,
    /// `[policy.shadow]`: a candidate plugin asked alongside, its answers recorded, never used.
    pub shadow: Option<ShadowConfig>,
}

/// The `[policy.shadow]` table: a candidate policy tried on live traffic without taking any.
#[derive(Debug, Clone, PartialEq)]
pub struct ShadowConfig {
    /// The candidate plugin (`plugin`, required), resolved against the config file's folder.
    pub plugin: PathBuf,
    /// The string handed to its `configure` (`config`); default empty.
    pub config: String,
    /// `sample_percent`: the share of requests it is asked about, from 0.01 to 100; default 100.
    /// It runs under the `[policy]` table's limits and breaker settings.
    pub sample_percent: f64,
}

/// The limits a plugin runs under, from the `[policy]` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginLimits {
    /// `pick_timeout`: the deadline of one pick, and of an `observe` for each 256 outcomes it is
    /// handed (at most `configure_timeout`), in CPU time of the call's thread (and on the clock
    /// at most 20 times as long, with at least 20ms and at most 2s beyond it); default 1ms, at
    /// most 100ms.
    pub pick_timeout: Duration,
    /// `configure_timeout`: the deadline of one `configure`; default 1s, at most 10s. It may
    /// build tables, but must not stall a reload or a request that needs a fresh instance.
    pub configure_timeout: Duration,
    /// `memory_limit`: the cap on one instance's linear memory, in bytes; default 16MiB.
    pub memory_limit: usize,
    /// `total_memory_limit`: the cap on the linear memory of all the plugin's instances
    /// together (vane keeps a pool of them, about two per core); default 1GiB, at least
    /// `memory_limit`. An instance that would pass it is refused memory, and the pick falls back
    /// (counted as `memory`).
    pub total_memory_limit: usize,
    /// CPU time a call may run past its deadline before it is stopped, to see how it ends. It
    /// has failed all the same: a `deadline` if it then answers, a `trap` if it traps, its
    /// error report whole in the log. Not in the config: zero for `vane run`; `vane plugin
    /// test` grants [`PluginLimits::TEST_GRACE`].
    pub overrun_grace: Duration,
}

impl PluginLimits {
    /// The grace `vane plugin test` gives a call past its deadline: enough for a Python
    /// exception's traceback (about 20 ms of CPU to format) with room to spare.
    pub const TEST_GRACE: Duration = Duration::from_millis(250);

    /// The longest `pick_timeout` accepted: picks run on the proxy's worker threads, so a plugin
    /// allowed to run longer could stall every request behind it.
    pub const MAX_PICK_TIMEOUT: Duration = Duration::from_millis(100);

    /// The longest `configure_timeout` accepted: a new instance is configured on the request
    /// path (after a trap, or when the pool grows), so this bounds what one request can wait.
    pub const MAX_CONFIGURE_TIMEOUT: Duration = Duration::from_secs(10);
}

impl PluginLimits {
    /// What is wrong with limits given on a command line (`vane demo`, `vane plugin test`), in
    /// the words the config file's checks use; `None` if nothing.
    pub fn problem(&self) -> Option<String> {
        if self.pick_timeout.is_zero() || self.pick_timeout > Self::MAX_PICK_TIMEOUT {
            return Some(format!(
                "pick_timeout must be longer than zero and at most {}",
                humantime::format_duration(Self::MAX_PICK_TIMEOUT)
            ));
        }
        if self.memory_limit == 0 || self.total_memory_limit < self.memory_limit {
            return Some("memory_limit must be above zero and at most total_memory_limit".into());
        }
        None
    }
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            pick_timeout: Duration::from_millis(1),
            configure_timeout: Duration::from_secs(1),
            memory_limit: 16 << 20,
            total_memory_limit: 1 << 30,
            overrun_grace: Duration::ZERO,
        }
    }
}

/// When the plugin's circuit breaker opens and for how long, from the `[policy]` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// `breaker_failures`: consecutive plugin failures that open the breaker; default 5, 0 never
    /// opens it.
    pub failures: u32,
    /// `breaker_cool_down`: how long the first opening lasts; default 1s. Each failed trial
    /// doubles it, up to 32 times.
    pub cool_down: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failures: 5,
            cool_down: Duration::from_secs(1),
        }
    }
}

impl PolicyConfig {
    /// The plugin at `plugin` with an empty config string and every other setting at its
    /// default, as `vane plugin test` and `vane demo` load it.
    pub fn for_plugin(plugin: PathBuf) -> Self {
        PolicyConfig {
            plugin,
            config: String::new(),
            limits: PluginLimits::default(),
            breaker: BreakerConfig::default(),
            watch: true,
            cache: PolicyConfig::default_cache_folder(),
            shadow: None,
        }
    }

    /// The default folder for compiled plugins: `$XDG_CACHE_HOME/vane/plugins`, else
    /// `~/.cache/vane/plugins`; `None` without either variable.
    pub fn default_cache_folder() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))?;
        Some(base.join("vane").join("plugins"))
    }
}

/// The `[proxy]` table: how vane treats clients and backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyConfig {
    /// `connect_timeout`: how long to wait for a backend's TCP connection; default 2s. On expiry
    /// the client gets 502.
    pub connect_timeout: Duration,
    /// `request_timeout`: how long to wait from sending a request for the backend's response
    /// headers; default 30s. On expiry the client gets 504.
    pub request_timeout: Duration,
    /// `header_read_timeout`: how long a client may take to send its request headers, from
    /// their first byte; default 10s, after which the connection is closed.
    pub header_read_timeout: Duration,
    /// `idle_timeout`: how long a client's keep-alive connection may wait between requests
    /// before vane closes it; default 60s (nginx's `keepalive_timeout` is 75 s).
    pub idle_timeout: Duration,
    /// `max_header_size`: the largest request head accepted; default 64KiB, at least 8KiB.
    /// A larger head gets 431 (414 if the request line alone is that large).
    pub max_header_size: usize,
    /// `max_connections`: client connections served at once; default 4096. Past it, a new
    /// connection gets 503 and is closed (counted in `vane_client_connections_refused_total`)
    /// while the open ones go on being served.
    pub max_connections: usize,
    /// `upstream_idle_timeout`: how long an idle pooled connection to a backend is kept; default
    /// 4s, below the 5 s keep-alive of common backends (Node.js), so vane drops a connection
    /// before the backend closes it under a request.
    pub upstream_idle_timeout: Duration,
    /// `shutdown_grace`: on shutdown (SIGTERM, Ctrl-C), how long vane goes on serving, and
    /// accepting, with `GET /ready` answering 503, before it stops accepting and drains: time
    /// for an orchestrator or a load balancer in front to stop sending (HAProxy's `grace`).
    /// Default 0s, at most 5 minutes.
    pub shutdown_grace: Duration,
    /// `drain_timeout`: on shutdown (SIGTERM, Ctrl-C), how long requests in flight may take to
    /// finish before their connections are closed; default 30s.
    pub drain_timeout: Duration,
    /// `body_read_timeout`: the longest a request body may send nothing, between two reads;
    /// default 60s (nginx's `client_body_timeout`). On expiry the client gets 408 if no response
    /// has started, and the connection is closed.
    pub body_read_timeout: Duration,
    /// `send_timeout`: the longest a client may read nothing of its response while vane has
    /// more to send; default 60s (nginx's `send_timeout`). On expiry the connection is closed.
    pub send_timeout: Duration,
    /// `tunnel_idle_timeout`: the longest an upgraded connection (a WebSocket) may carry no byte
    /// either way before it is closed; default 1h (HAProxy's recommended `timeout tunnel`).
    pub tunnel_idle_timeout: Duration,
    /// `max_body_size`: the largest request body accepted, in bytes; none by default. A larger
    /// Content-Length gets 413 before anything is forwarded; a chunked body that grows past
    /// it is cut off (413 if no response has started).
    pub max_body_size: Option<u64>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_header_size: 64 << 10,
            max_connections: 4096,
            upstream_idle_timeout: Duration::from_secs(4),
            shutdown_grace: Duration::ZERO,
            drain_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            tunnel_idle_timeout: Duration::from_secs(3600),
            max_body_size: None,
        }
    }
}

/// The `[health]` table: active health checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthConfig {
    /// `path`: what to GET; a 2xx answer counts as healthy. Default `/healthz`.
    pub path: PathAndQuery,
    /// `interval`: time between probe rounds; default 2s.
    pub interval: Duration,
    /// `timeout`: how long one probe (connect and answer) may take; default 1s, at most `interval`.
    pub timeout: Duration,
    /// `unhealthy_threshold`: consecutive failures that take a backend out; default 3.
    pub unhealthy_threshold: u32,
    /// `healthy_threshold`: consecutive successes that bring it back; default 2.
    pub healthy_threshold: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            path: PathAndQuery::from_static("/healthz"),
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            unhealthy_threshold: 3,
            healthy_threshold: 2,
        }
    }
}

/// The `[ejection]` table: passive outlier detection on real traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EjectionConfig {
    /// `consecutive_failures`: failed attempts in a row (no connection, broken off, timed out;
    /// not 5xx answers, which a healthy application may send) that eject a backend; default 5,
    /// as Envoy's. 0 turns passive ejection off.
    pub consecutive_failures: u32,
    /// `base_time`: the first cool-down; each further ejection adds one more; default 30s, as Envoy's.
    pub base_time: Duration,
    /// `max_time`: the longest cool-down; default 300s, as Envoy's.
    pub max_time: Duration,
    /// `max_percent`: the most of the backend set ejected at once, in percent; default 10, as
    /// Envoy's, and one backend may always be ejected. A backend whose streak completes past it
    /// stays in rotation (health checks can still take it out): passive ejection must not
    /// empty the set because of a fault all backends share, or one that kills them in turn.
    pub max_percent: u32,
}

impl Default for EjectionConfig {
    fn default() -> Self {
        EjectionConfig {
            consecutive_failures: 5,
            base_time: Duration::from_secs(30),
            max_time: Duration::from_secs(300),
            max_percent: 10,
        }
    }
}

/// The `[retries]` table: sending a failed request again, to another backend.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryConfig {
    /// `max_retries`: further attempts after the first; default 2. 0 turns retries off.
    pub max_retries: u32,
    /// `budget_percent`: a retry is refused when retries in flight are past this share of the
    /// requests in flight (Envoy's budget) and the retries of the last 10 to 20 seconds are past
    /// this share of that time's requests (Finagle's); default 20.
    pub budget_percent: f64,
    /// `min_retry_concurrency`: retries in flight always allowed, whatever the share; default
    /// 10. Envoy's default is 3, but when a backend dies, every request in flight on it fails
    /// at the same instant and needs its retry at once: with 3, a service with a few dozen
    /// requests in flight showed clients 502s on a single backend's death (measured in the
    /// kill test). Ten retries in flight are no danger to anyone; above 50 requests in flight,
    /// the share is what binds.
    pub min_retry_concurrency: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_retries: 2,
            budget_percent: 20.0,
            min_retry_concurrency: 10,
        }
    }
}

/// The largest weight accepted; weights are relative, so more range buys nothing.
pub const MAX_WEIGHT: u32 = 1_000_000;

/// `value` as a backend's weight, if it is one (1 to [`MAX_WEIGHT`]); else what is wrong,
/// as the config file, a file of backends and the admin API all say it.
pub fn weight(value: i64) -> Result<u32, String> {
    u32::try_from(value)
        .ok()
        .filter(|weight| (1..=MAX_WEIGHT).contains(weight))
        .ok_or_else(|| format!("must be between 1 and {MAX_WEIGHT}, not {value}"))
}

/// One backend: a `[[backends]]` entry with an `address`, a member of a group, or one added
/// through the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendConfig {
    /// `name` (required, unique).
    pub name: String,
    /// `address` (required), as `ip:port`.
    pub address: SocketAddr,
    /// `weight`; default 1, at least 1.
    pub weight: u32,
    /// `tags`; default none. Handed to the plugin.
    pub tags: Vec<String>,
    /// `protocol`: how requests travel to it; default `http1`.
    pub protocol: BackendProtocol,
    /// `tls`: connect over TLS (`tls = true`, or a table); plaintext without it.
    pub tls: Option<BackendTls>,
}

impl BackendConfig {
    /// How vane reaches it, if not plain HTTP/1.1 (`vane check` prints it), such as
    /// `h2 over TLS, checked as api.internal against ca.pem, client certificate vane.pem`.
    pub fn transport(&self) -> Option<String> {
        let Some(tls) = &self.tls else {
            return (self.protocol != BackendProtocol::Http1).then(|| self.protocol.to_string());
        };
        let name = tls
            .server_name
            .clone()
            .unwrap_or_else(|| self.address.ip().to_string());
        let roots = tls.ca.as_ref().map_or_else(
            || "the system's roots".to_owned(),
            |ca| ca.display().to_string(),
        );
        let mut text = format!(
            "{} over TLS, checked as {name} against {roots}",
            self.protocol
        );
        if let Some(client) = &tls.client {
            text.push_str(&format!(", client certificate {}", client.cert.display()));
        }
        Some(text)
    }
}

/// The protocol vane speaks to a backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BackendProtocol {
    /// HTTP/1.1 (`http1`), over TCP or TLS: one request at a time per connection.
    #[default]
    Http1,
    /// HTTP/2 over TLS (`h2`, ALPN `h2`): many requests at once on one connection.
    H2,
    /// HTTP/2 over plain TCP with prior knowledge (`h2c`).
    H2c,
}

impl BackendProtocol {
    /// Whether requests travel as HTTP/2 streams.
    pub fn is_http2(self) -> bool {
        matches!(self, BackendProtocol::H2 | BackendProtocol::H2c)
    }

    /// Why the protocol cannot go with TLS on (`tls`) or off, if it cannot: `h2` is HTTP/2
    /// over TLS, `h2c` HTTP/2 without it.
    pub fn tls_mismatch(self, tls: bool) -> Option<&'static str> {
        match (self, tls) {
            (BackendProtocol::H2, false) => Some(
                "h2 is HTTP/2 over TLS: add tls = true (or a tls table), or say \"h2c\" for HTTP/2 without TLS",
            ),
            (BackendProtocol::H2c, true) => Some("h2c is HTTP/2 without TLS: over TLS, say \"h2\""),
            _ => None,
        }
    }
}

impl std::str::FromStr for BackendProtocol {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "http1" => Ok(BackendProtocol::Http1),
            "h2" => Ok(BackendProtocol::H2),
            "h2c" => Ok(BackendProtocol::H2c),
            other => Err(format!(
                "{other:?} is not a protocol: \"http1\" (the default), \"h2\" (HTTP/2 over TLS) or \"h2c\" (HTTP/2 without TLS)"
            )),
        }
    }
}

impl std::fmt::Display for BackendProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BackendProtocol::Http1 => "http1",
            BackendProtocol::H2 => "h2",
            BackendProtocol::H2c => "h2c",
        })
    }
}

/// A `[[backends]]` entry naming a group of backends that are discovered rather than listed:
/// each member is a backend of its own, named `group/address` (or `group/name` for a file
/// entry that names itself), with the group's weight, tags, protocol and TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// `name` (required, unique among all `[[backends]]` names, without `/`).
    pub name: String,
    /// Where the members come from: `dns` and `port`, `srv`, or `file`.
    pub source: GroupSource,
    /// `weight` of each member; default 1. SRV records and file entries may give their own.
    pub weight: u32,
    /// `tags` of each member; a file entry's own tags are added to them.
    pub tags: Vec<String>,
    /// `protocol` of each member; default `http1`.
    pub protocol: BackendProtocol,
    /// `tls` of each member. Without a `server_name`, a member found through `dns` or `srv` is
    /// checked against the host name it was found under.
    pub tls: Option<BackendTls>,
}

/// Where a group's members come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupSource {
    /// `dns` with `port`: every A and AAAA address the host name resolves to, at `port`.
    Dns {
        /// The host name looked up.
        host: String,
        /// The port of every member.
        port: u16,
    },
    /// `srv`: the targets of the name's SRV records of the lowest priority, each at its
    /// record's port with its record's weight.
    Srv {
        /// The SRV name, such as `_http._tcp.api.default.svc.cluster.local`.
        name: String,
    },
    /// `file`: a JSON or TOML file listing the members, watched (resolved against the config
    /// file's folder).
    File {
        /// The file.
        path: PathBuf,
    },
}

impl std::fmt::Display for GroupSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GroupSource::Dns { host, port } => write!(f, "dns {host} port {port}"),
            GroupSource::Srv { name } => write!(f, "srv {name}"),
            GroupSource::File { path } => write!(f, "file {}", path.display()),
        }
    }
}

/// The `[discovery]` table: how groups are looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryConfig {
    /// `dns_servers`: the DNS servers asked, as `ip` or `ip:port`; by default those of
    /// `/etc/resolv.conf`.
    pub dns_servers: Vec<SocketAddr>,
    /// `min_refresh`: the soonest a name is looked up again, whatever its records' TTL;
    /// default 1s, at least 100ms. A failed lookup is tried again after this, then after twice
    /// as long each time, up to `max_refresh`.
    pub min_refresh: Duration,
    /// `max_refresh`: the longest a name goes without being looked up again, whatever its
    /// records' TTL; default 30s, at least `min_refresh`, at most 1h.
    pub max_refresh: Duration,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            dns_servers: Vec::new(),
            min_refresh: Duration::from_secs(1),
            max_refresh: Duration::from_secs(30),
        }
    }
}

/// A backend's `tls`: how vane checks the backend's certificate and proves its own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackendTls {
    /// `server_name`: the name sent as SNI and checked against the backend's certificate; by
    /// default the backend's IP address (checked against the certificate's IP names, no SNI).
    pub server_name: Option<String>,
    /// `ca`: the PEM file of the certificates that may sign the backend's (resolved against the
    /// config file's folder); by default the system's roots.
    pub ca: Option<PathBuf>,
    /// `cert` and `key`: a client certificate for backends that ask for one (mutual TLS).
    pub client: Option<CertificateFiles>,
}

impl Config {
    /// The group the backend `name` is a member of (`group/member`), if it names one of this
    /// config's groups.
    pub fn group_of(&self, name: &str) -> Option<&GroupConfig> {
        let (group, _) = name.split_once('/')?;
        self.groups.iter().find(|g| g.name == group)
    }

    /// Reads and checks the config file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|err| ConfigError::unreadable(path, &err))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, path, base)
    }

    /// Checks config `text`; `file` names it in errors and relative paths resolve against `base`.
    pub fn parse(text: &str, file: &Path, base: &Path) -> Result<Config, ConfigError> {
        let raw = raw::parse(text).map_err(|issue| ConfigError::new(file, vec![issue]))?;
        validate::validate(raw, text, base).map_err(|issues| ConfigError::new(file, issues))
    }
}

/// A size as the config file writes it, such as `64KiB` or `16MiB`, in bytes; zero is refused.
pub fn parse_size(text: &str) -> Result<usize, String> {
    match text.parse::<bytesize::ByteSize>() {
        Ok(size) if size.as_u64() > 0 => Ok(usize::try_from(size.as_u64()).unwrap_or(usize::MAX)),
        _ => Err(format!(
            "{text:?} is not a size such as \"64KiB\" or \"16MiB\""
        )),
    }
}

impl std::str::FromStr for Config {
    type Err = ConfigError;

    /// Checks config text with no file behind it: relative paths resolve against the current folder.
    fn from_str(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("<config>"), Path::new("."))
    }
}

#[cfg(test)]
mod tests;
