//! Turns the raw mirror into a typed [`Config`], collecting every issue with its line and key.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde_spanned::Spanned;

use http::uri::PathAndQuery;

use super::raw::{
    RawBackend, RawBackendTls, RawConfig, RawDiscovery, RawEjection, RawHealth, RawListener,
    RawPolicy, RawProxy, RawRetries, RawShadow, RawTls, line_of,
};
use super::{
    AdminToken, BackendConfig, BackendProtocol, BackendTls, BreakerConfig, CertificateFiles,
    Config, ConfigIssue, DiscoveryConfig, EjectionConfig, GroupConfig, GroupSource, HealthConfig,
    ListenerConfig, PluginLimits, PolicyConfig, ProxyConfig, RetryConfig, ShadowConfig, TlsConfig,
    parse_size,
};

/// The smallest `max_header_size`: smaller limits refuse real browsers' heads.
const MIN_HEADER_SIZE: usize = 8 << 10;

/// Collects issues while checking a raw config.
struct Checker<'a> {
    text: &'a str,
    issues: Vec<ConfigIssue>,
}

impl Checker<'_> {
    fn issue(&mut self, offset: Option<usize>, key: &str, message: impl Into<String>) {
        self.issues.push(ConfigIssue {
            line: offset.map(|offset| line_of(self.text, offset)),
            key: key.to_owned(),
            message: message.into(),
        });
    }

    /// The value of a required key, or an issue pointing at its table.
    fn required<'v, T>(
        &mut self,
        value: &'v Option<Spanned<T>>,
        key: &str,
        table: Option<usize>,
    ) -> Option<&'v Spanned<T>> {
        if value.is_none() {
            self.issue(table, key, "is required but missing");
        }
        value.as_ref()
    }

    fn address(&mut self, value: &Spanned<String>, key: &str) -> Option<SocketAddr> {
        match value.get_ref().parse() {
            Ok(address) => Some(address),
            Err(_) => {
                let message = format!(
                    "{:?} is not an address of the form ip:port, such as 127.0.0.1:8080",
                    value.get_ref()
                );
                self.issue(Some(value.span().start), key, message);
                None
            }
        }
    }

    fn duration(
        &mut self,
        value: &Option<Spanned<String>>,
        key: &str,
        default: Duration,
    ) -> Duration {
        let Some(value) = value else { return default };
        match humantime::parse_duration(value.get_ref()) {
            Ok(duration) if !duration.is_zero() => duration,
            Ok(_) => {
                self.issue(Some(value.span().start), key, "must be longer than zero");
                default
            }
            Err(err) => {
                let message = format!(
                    "{:?} is not a duration such as \"500ms\" or \"2s\": {err}",
                    value.get_ref()
                );
                self.issue(Some(value.span().start), key, message);
                default
            }
        }
    }

    fn integer(
        &mut self,
        value: &Option<Spanned<i64>>,
        key: &str,
        range: std::ops::RangeInclusive<i64>,
        default: u32,
    ) -> u32 {
        let Some(value) = value else { return default };
        if range.contains(value.get_ref()) {
            return u32::try_from(*value.get_ref()).unwrap_or(u32::MAX);
        }
        let message = format!(
            "must be between {} and {}, not {}",
            range.start(),
            range.end(),
            value.get_ref()
        );
        self.issue(Some(value.span().start), key, message);
        default
    }

    /// Reports `value` (already parsed as `parsed`) if it is longer than `max`.
    fn at_most(
        &mut self,
        value: &Option<Spanned<String>>,
        key: &str,
        parsed: Duration,
        max: Duration,
    ) {
        if let Some(value) = value
            && parsed > max
        {
            let message = format!("must be at most {}", humantime::format_duration(max));
            self.issue(Some(value.span().start), key, message);
        }
    }

    fn size(&mut self, value: &Option<Spanned<String>>, key: &str, default: usize) -> usize {
        let Some(value) = value else { return default };
        parse_size(value.get_ref()).unwrap_or_else(|message| {
            self.issue(Some(value.span().start), key, message);
            default
        })
    }
}

/// Checks every value of `raw`; `text` locates issues, `base` resolves relative paths.
pub(super) fn validate(
    raw: RawConfig,
    text: &str,
    base: &Path,
) -> Result<Config, Vec<ConfigIssue>> {
    let mut check = Checker {
        text,
        issues: Vec::new(),
    };
    let listeners = check_listeners(&mut check, &raw, base);
    let admin = raw
        .admin
        .as_ref()
        .and_then(|value| check.address(value, "admin"));
    let admin_token = raw
        .admin_token_file
        .as_ref()
        .and_then(|file| check_admin_token(&mut check, file, base));
    if let (Some(address), Some(value)) = (admin, &raw.admin)
        && !address.ip().is_loopback()
        && raw.admin_token_file.is_none()
    {
        check.issue(
            Some(value.span().start),
            "admin",
            format!(
                "the admin API would listen on {address}, reachable from other machines, with no \
                 token: set `admin_token_file` to a file holding one, or listen on 127.0.0.1"
            ),
        );
    }
    let workers = raw
        .workers
        .is_some()
        .then(|| check.integer(&raw.workers, "workers", 1..=1024, 1) as usize);
    let policy = raw
        .policy
        .as_ref()
        .and_then(|policy| check_policy(&mut check, policy, base));
    let proxy = check_proxy(&mut check, &raw.proxy);
    let health = raw
        .health
        .as_ref()
        .map(|health| check_health(&mut check, health));
    let ejection = check_ejection(&mut check, &raw.ejection);
    let retries = check_retries(&mut check, &raw.retries);
    let slow_start = check_slow_start(&mut check, &raw.slow_start);
    let (backends, groups) = check_backends(&mut check, &raw.backends, base);
    let discovery = check_discovery(&mut check, &raw.discovery);
    if !check.issues.is_empty() {
        check.issues.sort_by_key(|issue| issue.line);
        return Err(check.issues);
    }
    Ok(Config {
        listeners,
        admin,
        admin_token,
        workers,
        policy,
        proxy,
        health,
        ejection,
        retries,
        slow_start,
        watch_config: raw.watch_config.unwrap_or(false),
        backends,
        groups,
        discovery,
    })
}

/// `listen` and `[[listeners]]`: at least one address, none twice.
fn check_listeners(check: &mut Checker<'_>, raw: &RawConfig, base: &Path) -> Vec<ListenerConfig> {
    let mut listeners = Vec::new();
    let mut seen = HashSet::new();
    let mut add = |check: &mut Checker<'_>, listener: ListenerConfig, at: usize, key: &str| {
        // Port 0 asks the system for a free port, a different one each time.
        if listener.address.port() == 0 || seen.insert(listener.address) {
            listeners.push(listener);
        } else {
            let message = format!("{} is already a listener's address", listener.address);
            check.issue(Some(at), key, message);
        }
    };
    if let Some(value) = &raw.listen
        && let Some(address) = check.address(value, "listen")
    {
        let listener = ListenerConfig { address, tls: None };
        add(check, listener, value.span().start, "listen");
    }
    let entries = raw
        .listeners
        .as_ref()
        .map_or(&[][..], |list| list.get_ref());
    for (index, entry) in entries.iter().enumerate() {
        let key = |field: &str| format!("listeners[{index}].{field}");
        let raw: &RawListener = entry.get_ref();
        let address = check
            .required(&raw.address, &key("address"), Some(entry.span().start))
            .and_then(|value| Some((check.address(value, &key("address"))?, value)));
        let tls = match &raw.tls {
            None => None,
            Some(tls) => match check_tls(check, tls, &key("tls"), base) {
                Some(tls) => Some(tls),
                None => continue,
            },
        };
        if let Some((address, value)) = address {
            let listener = ListenerConfig { address, tls };
            add(check, listener, value.span().start, &key("address"));
        }
    }
    if raw.listen.is_none() && entries.is_empty() {
        check.issue(
            None,
            "listen",
            "is required but missing (or give one or more [[listeners]])",
        );
    }
    listeners
}

/// A listener's `tls` table (`key` names it): its certificate files, resolved against `base`.
/// Their content is read when vane starts or reloads, and refused then if it is wrong.
fn check_tls(
    check: &mut Checker<'_>,
    tls: &Spanned<RawTls>,
    key: &str,
    base: &Path,
) -> Option<TlsConfig> {
    let table = Some(tls.span().start);
    let entries = match &tls.get_ref().certificates {
        Some(list) if !list.get_ref().is_empty() => list.get_ref(),
        _ => {
            let message = "needs at least one certificate: certificates = [{ cert = \"site.pem\", key = \"site.key\" }]";
            check.issue(table, &format!("{key}.certificates"), message);
            return None;
        }
    };
    let mut certificates = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let key = |field: &str| format!("{key}.certificates[{index}].{field}");
        let at = Some(entry.span().start);
        let raw = entry.get_ref();
        let cert = check.required(&raw.cert, &key("cert"), at);
        let private = check.required(&raw.key, &key("key"), at);
        if let (Some(cert), Some(private)) = (cert, private) {
            certificates.push(CertificateFiles {
                cert: base.join(cert.get_ref()),
                key: base.join(private.get_ref()),
            });
        }
    }
    (certificates.len() == entries.len()).then_some(TlsConfig { certificates })
}

fn check_admin_token(
    check: &mut Checker<'_>,
    file: &Spanned<String>,
    base: &Path,
) -> Option<AdminToken> {
    match AdminToken::read(&base.join(file.get_ref())) {
        Ok(token) => Some(token),
        Err(message) => {
            check.issue(Some(file.span().start), "admin_token_file", message);
            None
        }
    }
}

fn check_policy(
    check: &mut Checker<'_>,
    policy: &Spanned<RawPolicy>,
    base: &Path,
) -> Option<PolicyConfig> {
    let table = Some(policy.span().start);
    let policy = policy.get_ref();
    let defaults = PluginLimits::default();
    let limits = PluginLimits {
        pick_timeout: check.duration(
            &policy.pick_timeout,
            "policy.pick_timeout",
            defaults.pick_timeout,
        ),
        configure_timeout: check.duration(
            &policy.configure_timeout,
            "policy.configure_timeout",
            defaults.configure_timeout,
        ),
        memory_limit: check.size(
            &policy.memory_limit,
            "policy.memory_limit",
            defaults.memory_limit,
        ),
        total_memory_limit: check.size(
            &policy.total_memory_limit,
            "policy.total_memory_limit",
            defaults.total_memory_limit,
        ),
        overrun_grace: defaults.overrun_grace,
    };
    if let Some(total) = &policy.total_memory_limit
        && limits.total_memory_limit < limits.memory_limit
    {
        check.issue(
            Some(total.span().start),
            "policy.total_memory_limit",
            "must be at least memory_limit: not even one instance would fit",
        );
    }
    check.at_most(
        &policy.pick_timeout,
        "policy.pick_timeout",
        limits.pick_timeout,
        PluginLimits::MAX_PICK_TIMEOUT,
    );
    check.at_most(
        &policy.configure_timeout,
        "policy.configure_timeout",
        limits.configure_timeout,
        PluginLimits::MAX_CONFIGURE_TIMEOUT,
    );
    let breaker_defaults = BreakerConfig::default();
    let breaker = BreakerConfig {
        failures: check.integer(
            &policy.breaker_failures,
            "policy.breaker_failures",
            0..=1000,
            breaker_defaults.failures,
        ),
        cool_down: check.duration(
            &policy.breaker_cool_down,
            "policy.breaker_cool_down",
            breaker_defaults.cool_down,
        ),
    };
    let plugin = check.required(&policy.plugin, "policy.plugin", table)?;
    if plugin.get_ref().trim().is_empty() {
        check.issue(
            Some(plugin.span().start),
            "policy.plugin",
            "must name a .wasm file",
        );
        return None;
    }
    let shadow = policy
        .shadow
        .as_ref()
        .and_then(|shadow| check_shadow(check, shadow, base));
    Some(PolicyConfig {
        plugin: base.join(plugin.get_ref()),
        config: policy.config.clone(),
        limits,
        breaker,
        watch: policy.watch.unwrap_or(true),
        cache: match (&policy.cache, &policy.cache_dir) {
            (Some(false), _) => None,
            (_, Some(dir)) => Some(base.join(dir.get_ref())),
            (_, None) => PolicyConfig::default_cache_folder(),
        },
        shadow,
    })
}

/// `[policy.shadow]`: a plugin, its config, and the share of requests it is asked about.
fn check_shadow(
    check: &mut Checker<'_>,
    shadow: &Spanned<RawShadow>,
    base: &Path,
) -> Option<ShadowConfig> {
    let table = Some(shadow.span().start);
    let shadow = shadow.get_ref();
    let sample_percent = match &shadow.sample_percent {
        None => 100.0,
        Some(value) if (0.01..=100.0).contains(value.get_ref()) => *value.get_ref(),
        Some(value) => {
            let message = format!("must be between 0.01 and 100, not {}", value.get_ref());
            check.issue(
                Some(value.span().start),
                "policy.shadow.sample_percent",
                message,
            );
            100.0
        }
    };
    let plugin = check.required(&shadow.plugin, "policy.shadow.plugin", table)?;
    if plugin.get_ref().trim().is_empty() {
        check.issue(
            Some(plugin.span().start),
            "policy.shadow.plugin",
            "must name a .wasm file",
        );
        return None;
    }
    Some(ShadowConfig {
        plugin: base.join(plugin.get_ref()),
        config: shadow.config.clone(),
        sample_percent,
    })
}

fn check_proxy(check: &mut Checker<'_>, proxy: &RawProxy) -> ProxyConfig {
    let defaults = ProxyConfig::default();
    let config = ProxyConfig {
        connect_timeout: check.duration(
            &proxy.connect_timeout,
            "proxy.connect_timeout",
            defaults.connect_timeout,
        ),
        request_timeout: check.duration(
            &proxy.request_timeout,
            "proxy.request_timeout",
            defaults.request_timeout,
        ),
        header_read_timeout: check.duration(
            &proxy.header_read_timeout,
            "proxy.header_read_timeout",
            defaults.header_read_timeout,
        ),
        idle_timeout: check.duration(
            &proxy.idle_timeout,
            "proxy.idle_timeout",
            defaults.idle_timeout,
        ),
        max_header_size: check.size(
            &proxy.max_header_size,
            "proxy.max_header_size",
            defaults.max_header_size,
        ),
        max_connections: check.integer(
            &proxy.max_connections,
            "proxy.max_connections",
            1..=1_000_000,
            defaults.max_connections as u32,
        ) as usize,
        upstream_idle_timeout: check.duration(
            &proxy.upstream_idle_timeout,
            "proxy.upstream_idle_timeout",
            defaults.upstream_idle_timeout,
        ),
        shutdown_grace: check_shutdown_grace(check, &proxy.shutdown_grace),
        drain_timeout: check.duration(
            &proxy.drain_timeout,
            "proxy.drain_timeout",
            defaults.drain_timeout,
        ),
        body_read_timeout: check.duration(
            &proxy.body_read_timeout,
            "proxy.body_read_timeout",
            defaults.body_read_timeout,
        ),
        send_timeout: check.duration(
            &proxy.send_timeout,
            "proxy.send_timeout",
            defaults.send_timeout,
        ),
        tunnel_idle_timeout: check.duration(
            &proxy.tunnel_idle_timeout,
            "proxy.tunnel_idle_timeout",
            defaults.tunnel_idle_timeout,
        ),
        max_body_size: proxy
            .max_body_size
            .is_some()
            .then(|| check.size(&proxy.max_body_size, "proxy.max_body_size", 0) as u64),
    };
    if let Some(value) = &proxy.max_header_size
        && config.max_header_size < MIN_HEADER_SIZE
    {
        check.issue(
            Some(value.span().start),
            "proxy.max_header_size",
            "must be at least 8KiB",
        );
    }
    config
}

fn check_health(check: &mut Checker<'_>, health: &Spanned<RawHealth>) -> HealthConfig {
    let health = health.get_ref();
    let defaults = HealthConfig::default();
    let path = match &health.path {
        None => defaults.path.clone(),
        Some(path) => match PathAndQuery::try_from(path.get_ref().as_str()) {
            Ok(parsed) if path.get_ref().starts_with('/') => parsed,
            _ => {
                let message = format!("{:?} is not a path such as \"/healthz\"", path.get_ref());
                check.issue(Some(path.span().start), "health.path", message);
                defaults.path.clone()
            }
        },
    };
    let config = HealthConfig {
        path,
        interval: check.duration(&health.interval, "health.interval", defaults.interval),
        timeout: check.duration(&health.timeout, "health.timeout", defaults.timeout),
        unhealthy_threshold: check.integer(
            &health.unhealthy_threshold,
            "health.unhealthy_threshold",
            1..=100,
            defaults.unhealthy_threshold,
        ),
        healthy_threshold: check.integer(
            &health.healthy_threshold,
            "health.healthy_threshold",
            1..=100,
            defaults.healthy_threshold,
        ),
    };
    if let Some(timeout) = &health.timeout
        && config.timeout > config.interval
    {
        // A probe still running when the next round starts would overlap it.
        check.issue(
            Some(timeout.span().start),
            "health.timeout",
            "must not be longer than health.interval",
        );
    }
    config
}

fn check_ejection(check: &mut Checker<'_>, ejection: &RawEjection) -> EjectionConfig {
    let defaults = EjectionConfig::default();
    let config = EjectionConfig {
        consecutive_failures: check.integer(
            &ejection.consecutive_failures,
            "ejection.consecutive_failures",
            0..=1000,
            defaults.consecutive_failures,
        ),
        base_time: check.duration(
            &ejection.base_time,
            "ejection.base_time",
            defaults.base_time,
        ),
        max_time: check.duration(&ejection.max_time, "ejection.max_time", defaults.max_time),
        max_percent: check.integer(
            &ejection.max_percent,
            "ejection.max_percent",
            0..=100,
            defaults.max_percent,
        ),
    };
    if let Some(max_time) = &ejection.max_time
        && config.max_time < config.base_time
    {
        check.issue(
            Some(max_time.span().start),
            "ejection.max_time",
            "must not be shorter than ejection.base_time",
        );
    }
    config
}

/// The longest slow start: an hour, far past any warm-up yet long enough for a slow one.
const MAX_SLOW_START: Duration = Duration::from_secs(3600);

/// The longest `proxy.shutdown_grace`: a shutdown that waits longer is a stuck one.
const MAX_SHUTDOWN_GRACE: Duration = Duration::from_secs(300);

/// `proxy.shutdown_grace`: a duration up to [`MAX_SHUTDOWN_GRACE`], where zero (the default)
/// is none.
fn check_shutdown_grace(check: &mut Checker<'_>, value: &Option<Spanned<String>>) -> Duration {
    let key = "proxy.shutdown_grace";
    match value {
        None => Duration::ZERO,
        Some(given) if humantime::parse_duration(given.get_ref()).is_ok_and(|d| d.is_zero()) => {
            Duration::ZERO
        }
        Some(_) => {
            let grace = check.duration(value, key, Duration::ZERO);
            check.at_most(value, key, grace, MAX_SHUTDOWN_GRACE);
            grace
        }
    }
}

/// `slow_start`: a duration, where zero turns it off as leaving it out does.
fn check_slow_start(check: &mut Checker<'_>, value: &Option<Spanned<String>>) -> Duration {
    let Some(given) = value else {
        return Duration::ZERO;
    };
    if humantime::parse_duration(given.get_ref()).is_ok_and(|d| d.is_zero()) {
        return Duration::ZERO;
    }
    let window = check.duration(value, "slow_start", Duration::ZERO);
    check.at_most(value, "slow_start", window, MAX_SLOW_START);
    if let Some(given) = value
        && humantime::parse_duration(given.get_ref()).is_ok_and(|d| d < Duration::from_millis(1))
    {
        check.issue(
            Some(given.span().start),
            "slow_start",
            "must be at least 1ms, or 0s for none",
        );
    }
    // vane keeps time in milliseconds.
    Duration::from_millis(window.as_millis() as u64)
}

fn check_retries(check: &mut Checker<'_>, retries: &RawRetries) -> RetryConfig {
    let defaults = RetryConfig::default();
    let budget_percent = match &retries.budget_percent {
        None => defaults.budget_percent,
        Some(value) if (0.0..=100.0).contains(value.get_ref()) => *value.get_ref(),
        Some(value) => {
            let message = format!("must be between 0 and 100, not {}", value.get_ref());
            check.issue(Some(value.span().start), "retries.budget_percent", message);
            defaults.budget_percent
        }
    };
    RetryConfig {
        max_retries: check.integer(
            &retries.max_retries,
            "retries.max_retries",
            0..=10,
            defaults.max_retries,
        ),
        budget_percent,
        min_retry_concurrency: check.integer(
            &retries.min_retry_concurrency,
            "retries.min_retry_concurrency",
            0..=10_000,
            defaults.min_retry_concurrency,
        ),
    }
}

/// `[[backends]]`: at least one entry, each one backend (`address`) or a discovered group
/// (`dns` with `port`, `srv`, or `file`), every name unique.
fn check_backends(
    check: &mut Checker<'_>,
    backends: &Option<Spanned<Vec<Spanned<RawBackend>>>>,
    base: &Path,
) -> (Vec<BackendConfig>, Vec<GroupConfig>) {
    let Some(backends) = backends.as_ref().filter(|list| !list.get_ref().is_empty()) else {
        check.issue(
            None,
            "backends",
            "at least one [[backends]] entry is required",
        );
        return (Vec::new(), Vec::new());
    };
    let mut names = HashSet::new();
    let (mut listed, mut groups) = (Vec::new(), Vec::new());
    for (index, entry) in backends.get_ref().iter().enumerate() {
        let table = Some(entry.span().start);
        let raw = entry.get_ref();
        let key = |field: &str| format!("backends[{index}].{field}");
        let name = check
            .required(&raw.name, &key("name"), table)
            .and_then(|name| {
                if name.get_ref().trim().is_empty() {
                    check.issue(Some(name.span().start), &key("name"), "must not be empty");
                    None
                } else if !names.insert(name.get_ref().clone()) {
                    let message = format!(
                        "{:?} is already the name of another backend",
                        name.get_ref()
                    );
                    check.issue(Some(name.span().start), &key("name"), message);
                    None
                } else {
                    Some(name.get_ref().clone())
                }
            });
        let weight = match &raw.weight {
            None => Some(1),
            Some(value) => super::weight(*value.get_ref())
                .map_err(|message| check.issue(Some(value.span().start), &key("weight"), message))
                .ok(),
        };
        let transport = check_transport(check, raw, &key, base);
        let Some(source) = check_source(check, raw, table, &key, base) else {
            continue;
        };
        let (Some(name), Some(weight), Some((protocol, tls))) = (name, weight, transport) else {
            continue;
        };
        match source {
            Source::Address(address) => listed.push(BackendConfig {
                name,
                address,
                weight,
                tags: raw.tags.clone(),
                protocol,
                tls,
            }),
            Source::Group(source) => {
                if name.contains('/') {
                    let at = raw.name.as_ref().map(|name| name.span().start);
                    let message =
                        "a group's name must not hold `/`: its members are named group/address";
                    check.issue(at, &key("name"), message);
                    continue;
                }
                groups.push(GroupConfig {
                    name,
                    source,
                    weight,
                    tags: raw.tags.clone(),
                    protocol,
                    tls,
                });
            }
        }
    }
    for (index, entry) in backends.get_ref().iter().enumerate() {
        let Some(name) = &entry.get_ref().name else {
            continue;
        };
        if let Some(group) = groups
            .iter()
            .find(|group| name.get_ref().starts_with(&format!("{}/", group.name)))
        {
            let message = format!(
                "{:?} would read as a member of the group {:?}: name it otherwise",
                name.get_ref(),
                group.name
            );
            check.issue(
                Some(name.span().start),
                &format!("backends[{index}].name"),
                message,
            );
        }
    }
    (listed, groups)
}

/// Where a `[[backends]]` entry's backends are: one address, or a group's source.
enum Source {
    Address(SocketAddr),
    Group(GroupSource),
}

/// The one of `address`, `dns` (with `port`), `srv` and `file` that a `[[backends]]` entry
/// (at `table`) gives.
fn check_source(
    check: &mut Checker<'_>,
    raw: &RawBackend,
    table: Option<usize>,
    key: &dyn Fn(&str) -> String,
    base: &Path,
) -> Option<Source> {
    let given: Vec<(&str, &Spanned<String>)> = [
        ("address", &raw.address),
        ("dns", &raw.dns),
        ("srv", &raw.srv),
        ("file", &raw.file),
    ]
    .into_iter()
    .filter_map(|(field, value)| Some((field, value.as_ref()?)))
    .collect();
    let (field, value) = match given.as_slice() {
        [] => {
            check.issue(
                table,
                &key("address"),
                "is required but missing (or, for a group of backends found at run time, one \
                 of dns, srv or file)",
            );
            return None;
        }
        [one] => *one,
        [(first, _), (second, value), ..] => {
            let message = format!(
                "{first} and {second} cannot be given together: an entry is one backend \
                 (address) or one group (dns, srv or file)"
            );
            check.issue(Some(value.span().start), &key(second), message);
            return None;
        }
    };
    if let Some(port) = &raw.port
        && field != "dns"
    {
        let message = match field {
            "address" => "port goes with dns; an address has its own port",
            "srv" => "port goes with dns; SRV records give each member's port",
            _ => "port goes with dns; a file gives each member's address",
        };
        check.issue(Some(port.span().start), &key("port"), message);
        return None;
    }
    let at = Some(value.span().start);
    let text = value.get_ref().trim();
    match field {
        "address" => match text.parse() {
            Ok(address) => Some(Source::Address(address)),
            Err(_) => {
                let hint = match text.rsplit_once(':') {
                    Some((host, port)) if port.parse::<u16>().is_ok() && !host.is_empty() => {
                        format!(
                            "; to follow a host name's addresses, write dns = {host:?} and \
                             port = {port} instead"
                        )
                    }
                    _ => String::new(),
                };
                let message = format!(
                    "{text:?} is not an address of the form ip:port, such as 127.0.0.1:8080{hint}"
                );
                check.issue(at, &key("address"), message);
                None
            }
        },
        "file" => {
            let path = Path::new(text);
            let readable = path
                .extension()
                .is_some_and(|extension| extension == "json" || extension == "toml");
            if !readable {
                let message =
                    format!("{text:?} must end in .json or .toml, which say how it is read");
                check.issue(at, &key("file"), message);
                return None;
            }
            Some(Source::Group(GroupSource::File {
                path: base.join(text),
            }))
        }
        "srv" => check_host_name(check, value, &key("srv"))
            .map(|name| Source::Group(GroupSource::Srv { name })),
        _ => {
            let host = check_host_name(check, value, &key("dns"));
            let port = match &raw.port {
                None => {
                    check.issue(
                        at,
                        &key("port"),
                        "is required with dns: the port every address found is reached at",
                    );
                    None
                }
                Some(port) => match u16::try_from(*port.get_ref()) {
                    Ok(port) if port > 0 => Some(port),
                    _ => {
                        let message =
                            format!("must be between 1 and 65535, not {}", port.get_ref());
                        check.issue(Some(port.span().start), &key("port"), message);
                        None
                    }
                },
            };
            Some(Source::Group(GroupSource::Dns {
                host: host?,
                port: port?,
            }))
        }
    }
}

/// A DNS name to look up (`dns` or `srv`): not empty, not an address, without a port.
fn check_host_name(check: &mut Checker<'_>, value: &Spanned<String>, key: &str) -> Option<String> {
    let text = value.get_ref().trim();
    let at = Some(value.span().start);
    let problem = if text.is_empty() {
        Some("must not be empty".to_owned())
    } else if text.parse::<std::net::IpAddr>().is_ok() || text.parse::<SocketAddr>().is_ok() {
        Some(format!(
            "{text:?} is an address, not a name to look up: list it as address = \"ip:port\""
        ))
    } else if text.contains(':') {
        Some(format!(
            "{text:?} holds a `:`: give the name alone, and the port as port = N"
        ))
    } else if text.contains(|c: char| c.is_whitespace() || c == '/') || text.contains("..") {
        Some(format!("{text:?} is not a DNS name"))
    } else {
        None
    };
    match problem {
        Some(message) => {
            check.issue(at, key, message);
            None
        }
        None => Some(text.to_owned()),
    }
}

/// `[discovery]`: the DNS servers and the bounds on how often names are looked up again.
fn check_discovery(
    check: &mut Checker<'_>,
    discovery: &Option<Spanned<RawDiscovery>>,
) -> DiscoveryConfig {
    let defaults = DiscoveryConfig::default();
    let Some(discovery) = discovery else {
        return defaults;
    };
    let raw = discovery.get_ref();
    let mut dns_servers = Vec::new();
    for (index, server) in raw
        .dns_servers
        .iter()
        .flat_map(|list| list.get_ref())
        .enumerate()
    {
        let text = server.get_ref().trim();
        let parsed = text.parse::<SocketAddr>().ok().or_else(|| {
            let ip = text.parse::<std::net::IpAddr>().ok()?;
            Some(SocketAddr::new(ip, 53))
        });
        match parsed {
            Some(address) => dns_servers.push(address),
            None => check.issue(
                Some(server.span().start),
                &format!("discovery.dns_servers[{index}]"),
                format!("{text:?} is not an address such as 10.96.0.10 or 127.0.0.1:5353"),
            ),
        }
    }
    let min_refresh = check.duration(
        &raw.min_refresh,
        "discovery.min_refresh",
        defaults.min_refresh,
    );
    let max_refresh = check.duration(
        &raw.max_refresh,
        "discovery.max_refresh",
        defaults.max_refresh,
    );
    if let Some(value) = &raw.min_refresh
        && min_refresh < MIN_REFRESH
    {
        check.issue(
            Some(value.span().start),
            "discovery.min_refresh",
            "must be at least 100ms: a name is not looked up more often",
        );
    }
    check.at_most(
        &raw.max_refresh,
        "discovery.max_refresh",
        max_refresh,
        MAX_REFRESH,
    );
    if max_refresh < min_refresh {
        let at = raw.max_refresh.as_ref().or(raw.min_refresh.as_ref());
        check.issue(
            at.map(|value| value.span().start),
            "discovery.max_refresh",
            format!(
                "must be at least min_refresh ({})",
                humantime::format_duration(min_refresh)
            ),
        );
    }
    DiscoveryConfig {
        dns_servers,
        min_refresh,
        max_refresh,
    }
}

/// The soonest `discovery.min_refresh` accepted.
const MIN_REFRESH: Duration = Duration::from_millis(100);

/// The longest `discovery.max_refresh` accepted.
const MAX_REFRESH: Duration = Duration::from_secs(3600);

/// A backend's `protocol` and `tls` (`key` names its fields), which must agree: `h2` is
/// HTTP/2 over TLS, `h2c` HTTP/2 without it. Files resolve against `base`; their content is
/// read when vane starts or reloads.
fn check_transport(
    check: &mut Checker<'_>,
    raw: &RawBackend,
    key: &dyn Fn(&str) -> String,
    base: &Path,
) -> Option<(BackendProtocol, Option<BackendTls>)> {
    let protocol = match &raw.protocol {
        None => Some(BackendProtocol::Http1),
        Some(value) => match value.get_ref().parse() {
            Ok(protocol) => Some(protocol),
            Err(message) => {
                check.issue(Some(value.span().start), &key("protocol"), message);
                None
            }
        },
    };
    let tls = match &raw.tls {
        None => Some(None),
        Some(tls) => match tls.get_ref() {
            RawBackendTls::On(false) => Some(None),
            RawBackendTls::On(true) => Some(Some(BackendTls::default())),
            RawBackendTls::Table(table) => {
                check_backend_tls(check, table, tls.span().start, key, base).map(Some)
            }
        },
    };
    let (protocol, tls) = (protocol?, tls?);
    let at = raw.protocol.as_ref().map(|value| value.span().start);
    match protocol.tls_mismatch(tls.is_some()) {
        Some(message) => {
            check.issue(at, &key("protocol"), message);
            None
        }
        None => Some((protocol, tls)),
    }
}

/// A backend's `tls` table, at `at`.
fn check_backend_tls(
    check: &mut Checker<'_>,
    table: &super::raw::RawBackendTlsTable,
    at: usize,
    key: &dyn Fn(&str) -> String,
    base: &Path,
) -> Option<BackendTls> {
    let mut fine = true;
    let server_name = table.server_name.as_ref().and_then(|name| {
        let valid = rustls::pki_types::ServerName::try_from(name.get_ref().as_str()).is_ok();
        if !valid {
            let message = format!("{:?} is not a DNS name or an IP address", name.get_ref());
            check.issue(Some(name.span().start), &key("tls.server_name"), message);
            fine = false;
        }
        valid.then(|| name.get_ref().clone())
    });
    let client = match (&table.cert, &table.key) {
        (Some(cert), Some(private)) => Some(CertificateFiles {
            cert: base.join(cert.get_ref()),
            key: base.join(private.get_ref()),
        }),
        (None, None) => None,
        (Some(_), None) | (None, Some(_)) => {
            let message = "a client certificate needs both cert and key";
            check.issue(Some(at), &key("tls"), message);
            fine = false;
            None
        }
    };
    fine.then(|| BackendTls {
        server_name,
        ca: table.ca.as_ref().map(|ca| base.join(ca.get_ref())),
        client,
    })
}
