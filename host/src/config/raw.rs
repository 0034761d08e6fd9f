//! The config file as written: serde structs mirroring the TOML, refusing unknown keys, with the
//! position of every value that validation may complain about.

use serde::Deserialize;
use serde_spanned::Spanned;

use super::ConfigIssue;

/// The top level of the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub listen: Option<Spanned<String>>,
    pub listeners: Option<Spanned<Vec<Spanned<RawListener>>>>,
    pub admin: Option<Spanned<String>>,
    pub admin_token_file: Option<Spanned<String>>,
    pub workers: Option<Spanned<i64>>,
    pub policy: Option<Spanned<RawPolicy>>,
    #[serde(default)]
    pub proxy: RawProxy,
    pub health: Option<Spanned<RawHealth>>,
    #[serde(default)]
    pub ejection: RawEjection,
    #[serde(default)]
    pub retries: RawRetries,
    pub slow_start: Option<Spanned<String>>,
    pub watch_config: Option<bool>,
    pub discovery: Option<Spanned<RawDiscovery>>,
    pub backends: Option<Spanned<Vec<Spanned<RawBackend>>>>,
}

/// One `[[listeners]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawListener {
    pub address: Option<Spanned<String>>,
    pub tls: Option<Spanned<RawTls>>,
}

/// A listener's `tls` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub certificates: Option<Spanned<Vec<Spanned<RawCertificate>>>>,
}

/// One entry of a listener's `tls.certificates`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCertificate {
    pub cert: Option<Spanned<String>>,
    pub key: Option<Spanned<String>>,
}

/// `[policy]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    pub plugin: Option<Spanned<String>>,
    #[serde(default)]
    pub config: String,
    pub pick_timeout: Option<Spanned<String>>,
    pub configure_timeout: Option<Spanned<String>>,
    pub memory_limit: Option<Spanned<String>>,
    pub total_memory_limit: Option<Spanned<String>>,
    pub breaker_failures: Option<Spanned<i64>>,
    pub breaker_cool_down: Option<Spanned<String>>,
    pub watch: Option<bool>,
    pub cache: Option<bool>,
    pub cache_dir: Option<Spanned<String>>,
    pub shadow: Option<Spanned<RawShadow>>,
}

/// `[policy.shadow]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawShadow {
    pub plugin: Option<Spanned<String>>,
    #[serde(default)]
    pub config: String,
    pub sample_percent: Option<Spanned<f64>>,
}

/// `[proxy]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProxy {
    pub connect_timeout: Option<Spanned<String>>,
    pub request_timeout: Option<Spanned<String>>,
    pub header_read_timeout: Option<Spanned<String>>,
    pub idle_timeout: Option<Spanned<String>>,
    pub max_header_size: Option<Spanned<String>>,
    pub max_connections: Option<Spanned<i64>>,
    pub upstream_idle_timeout: Option<Spanned<String>>,
    pub shutdown_grace: Option<Spanned<String>>,
    pub drain_timeout: Option<Spanned<String>>,
    pub body_read_timeout: Option<Spanned<String>>,
    pub send_timeout: Option<Spanned<String>>,
    pub tunnel_idle_timeout: Option<Spanned<String>>,
    pub max_body_size: Option<Spanned<String>>,
}

/// `[health]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHealth {
    pub path: Option<Spanned<String>>,
    pub interval: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub unhealthy_threshold: Option<Spanned<i64>>,
    pub healthy_threshold: Option<Spanned<i64>>,
}

/// `[ejection]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEjection {
    pub max_percent: Option<Spanned<i64>>,
    pub consecutive_failures: Option<Spanned<i64>>,
    pub base_time: Option<Spanned<String>>,
    pub max_time: Option<Spanned<String>>,
}

/// `[retries]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetries {
    pub max_retries: Option<Spanned<i64>>,
    pub budget_percent: Option<Spanned<f64>>,
    pub min_retry_concurrency: Option<Spanned<i64>>,
}

/// `[discovery]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDiscovery {
    pub dns_servers: Option<Spanned<Vec<Spanned<String>>>>,
    pub min_refresh: Option<Spanned<String>>,
    pub max_refresh: Option<Spanned<String>>,
}

/// One `[[backends]]` entry: one backend (`address`) or a discovered group (`dns`, `srv` or
/// `file`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBackend {
    pub name: Option<Spanned<String>>,
    pub address: Option<Spanned<String>>,
    pub dns: Option<Spanned<String>>,
    pub port: Option<Spanned<i64>>,
    pub srv: Option<Spanned<String>>,
    pub file: Option<Spanned<String>>,
    pub weight: Option<Spanned<i64>>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub protocol: Option<Spanned<String>>,
    pub tls: Option<Spanned<RawBackendTls>>,
}

/// A backend's `tls`: `true` or `false`, or a table of settings (which means TLS on).
#[derive(Debug)]
pub(super) enum RawBackendTls {
    /// `tls = true` or `tls = false`.
    On(bool),
    /// `tls = { ... }` or `[backends.tls]`.
    Table(RawBackendTlsTable),
}

/// A backend's `tls` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBackendTlsTable {
    pub server_name: Option<Spanned<String>>,
    pub ca: Option<Spanned<String>>,
    pub cert: Option<Spanned<String>>,
    pub key: Option<Spanned<String>>,
}

impl<'de> Deserialize<'de> for RawBackendTls {
    /// A boolean or a table; the table refuses unknown keys with their names, as every other
    /// table does (serde's untagged enums would only say that nothing matched).
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawBackendTls;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("true, false, or a table such as { ca = \"ca.pem\" }")
            }

            fn visit_bool<E: serde::de::Error>(self, on: bool) -> Result<Self::Value, E> {
                Ok(RawBackendTls::On(on))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                let table = serde::de::value::MapAccessDeserializer::new(map);
                RawBackendTlsTable::deserialize(table).map(RawBackendTls::Table)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Parses the TOML text into the raw mirror; a syntax error, a wrong type or an unknown key
/// becomes one issue with its line and key path.
pub(super) fn parse(text: &str) -> Result<RawConfig, ConfigIssue> {
    let deserializer = toml::Deserializer::parse(text).map_err(|err| ConfigIssue {
        line: err.span().map(|span| line_of(text, span.start)),
        key: String::new(),
        message: err.message().trim_end().to_owned(),
    })?;
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        // serde_spanned shows up in the path as a field of its own; users never wrote it.
        let key = err
            .path()
            .to_string()
            .replace(".$__serde_spanned_private_value", "");
        let inner = err.into_inner();
        ConfigIssue {
            line: inner.span().map(|span| line_of(text, span.start)),
            key: if key == "." { String::new() } else { key },
            message: inner.message().trim_end().to_owned(),
        }
    })
}

/// The 1-based line holding byte `offset` of `text`.
pub(super) fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}
