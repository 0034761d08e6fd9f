//! Valid and invalid configs, each error checked for its line, key and message.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("vane.toml"), Path::new("/etc/vane"))
}

/// The issues of an invalid config as `line: key: message` strings.
fn issues(text: &str) -> Vec<String> {
    let error = parse(text).expect_err("an invalid config");
    error
        .issues
        .iter()
        .map(|i| {
            format!(
                "{}: {}: {}",
                i.line.map_or("-".into(), |l| l.to_string()),
                i.key,
                i.message
            )
        })
        .collect()
}

const FULL: &str = r#"
listen = "127.0.0.1:8080"
admin = "127.0.0.1:9901"

[policy]
plugin = "plugins/least_conn.wasm"
config = "mode=fast"
pick_timeout = "2ms"
memory_limit = "8MiB"
watch = false
cache_dir = "cache"

[proxy]
connect_timeout = "500ms"
request_timeout = "5s"
header_read_timeout = "3s"
idle_timeout = "20s"
max_header_size = "32KiB"
max_connections = 100
upstream_idle_timeout = "1s"
shutdown_grace = "5s"
drain_timeout = "10s"
body_read_timeout = "15s"
send_timeout = "25s"
tunnel_idle_timeout = "5m"
max_body_size = "10MiB"

[health]
path = "/status?full=1"
interval = "5s"
timeout = "500ms"
unhealthy_threshold = 2
healthy_threshold = 4

[ejection]
consecutive_failures = 3
base_time = "10s"
max_time = "1m"
max_percent = 50

[retries]
max_retries = 1
budget_percent = 10
min_retry_concurrency = 5

[[backends]]
name = "app-1"
address = "127.0.0.1:9001"

[[backends]]
name = "app-2"
address = "[::1]:9002"
weight = 3
tags = ["zone-a", "canary"]
"#;

#[test]
fn a_full_config_reads_into_typed_values() {
    let config = parse(FULL).unwrap();
    let listen: Vec<_> = config
        .listeners
        .iter()
        .map(|l| (l.address, l.tls.is_some()))
        .collect();
    assert_eq!(listen, [("127.0.0.1:8080".parse().unwrap(), false)]);
    assert_eq!(config.admin, Some("127.0.0.1:9901".parse().unwrap()));
    let policy = config.policy.unwrap();
    assert_eq!(
        policy.plugin,
        Path::new("/etc/vane/plugins/least_conn.wasm")
    );
    assert_eq!(policy.config, "mode=fast");
    assert_eq!(policy.limits.pick_timeout, Duration::from_millis(2));
    assert_eq!(policy.limits.memory_limit, 8 << 20);
    assert!(!policy.watch);
    assert_eq!(policy.cache, Some("/etc/vane/cache".into()));
    assert_eq!(
        config.proxy,
        ProxyConfig {
            connect_timeout: Duration::from_millis(500),
            request_timeout: Duration::from_secs(5),
            header_read_timeout: Duration::from_secs(3),
            idle_timeout: Duration::from_secs(20),
            max_header_size: 32 << 10,
            max_connections: 100,
            upstream_idle_timeout: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(15),
            send_timeout: Duration::from_secs(25),
            tunnel_idle_timeout: Duration::from_secs(300),
            max_body_size: Some(10 << 20),
        }
    );
    assert_eq!(
        config.health,
        Some(HealthConfig {
            path: PathAndQuery::from_static("/status?full=1"),
            interval: Duration::from_secs(5),
            timeout: Duration::from_millis(500),
            unhealthy_threshold: 2,
            healthy_threshold: 4,
        })
    );
    assert_eq!(
        config.ejection,
        EjectionConfig {
            consecutive_failures: 3,
            base_time: Duration::from_secs(10),
            max_time: Duration::from_secs(60),
            max_percent: 50,
        }
    );
    assert_eq!(
        config.retries,
        RetryConfig {
            max_retries: 1,
            budget_percent: 10.0,
            min_retry_concurrency: 5,
        }
    );
    assert_eq!(config.backends.len(), 2);
    assert_eq!(config.backends[0].weight, 1);
    assert_eq!(config.backends[1].weight, 3);
    assert_eq!(config.backends[1].tags, vec!["zone-a", "canary"]);
    assert_eq!(config.backends[1].address, "[::1]:9002".parse().unwrap());
}

#[test]
fn a_minimal_config_takes_the_defaults() {
    let config: Config =
        "listen = \"0.0.0.0:80\"\n[[backends]]\nname = \"a\"\naddress = \"10.0.0.1:80\"\n"
            .parse()
            .unwrap();
    assert_eq!(config.admin, None);
    assert_eq!(config.policy, None);
    assert_eq!(config.proxy, ProxyConfig::default());
    assert_eq!(config.health, None);
    assert_eq!(config.ejection, EjectionConfig::default());
    assert_eq!(config.retries, RetryConfig::default());
}

#[test]
fn failover_settings_out_of_range_are_named() {
    let text = r#"listen = "127.0.0.1:1"
[health]
path = "healthz"
interval = "1s"
timeout = "2s"
unhealthy_threshold = 0
[ejection]
base_time = "1m"
max_time = "10s"
[retries]
max_retries = 11
budget_percent = 150
[[backends]]
name = "a"
address = "127.0.0.1:2"
"#;
    assert_eq!(
        issues(text),
        vec![
            "3: health.path: \"healthz\" is not a path such as \"/healthz\"",
            "5: health.timeout: must not be longer than health.interval",
            "6: health.unhealthy_threshold: must be between 1 and 100, not 0",
            "9: ejection.max_time: must not be shorter than ejection.base_time",
            "11: retries.max_retries: must be between 0 and 10, not 11",
            "12: retries.budget_percent: must be between 0 and 100, not 150",
        ]
    );
}

#[test]
fn an_unknown_key_is_named_with_its_path_and_line() {
    let text = FULL.replace("weight = 3", "wieght = 3");
    assert_eq!(
        issues(&text),
        vec![
            "53: backends[1].wieght: unknown field `wieght`, expected one of `name`, `address`, `dns`, `port`, `srv`, `file`, `weight`, `tags`, `protocol`, `tls`"
        ]
    );
    let text = FULL.replace("[proxy]", "[proxy]\nretries = 2");
    assert_eq!(
        issues(&text)[0].split(": ").take(2).collect::<Vec<_>>(),
        vec!["14", "proxy.retries"]
    );
}

#[test]
fn a_wrong_type_and_a_syntax_error_name_their_line() {
    let text = FULL.replace("weight = 3", "weight = \"heavy\"");
    let found = issues(&text);
    assert!(
        found[0].starts_with("53: backends[1].weight: invalid type"),
        "{found:?}"
    );
    let found = issues("listen = \"127.0.0.1:8080\"\n[[backends]\nname = 1\n");
    assert!(found[0].starts_with("2: : "), "{found:?}");
}

#[test]
fn every_invalid_value_is_reported_at_once() {
    let text = r#"
listen = "localhost:8080"
[policy]
pick_timeout = "0s"
memory_limit = "lots"
[proxy]
request_timeout = "forever"
[[backends]]
name = ""
address = "127.0.0.1"
weight = 0
[[backends]]
address = "127.0.0.1:9002"
[[backends]]
name = "b"
address = "127.0.0.1:9003"
[[backends]]
name = "b"
address = "127.0.0.1:9004"
"#;
    let found = issues(text);
    let keys: Vec<(&str, &str)> = found
        .iter()
        .map(|issue| {
            let mut parts = issue.splitn(3, ": ");
            (parts.next().unwrap(), parts.next().unwrap())
        })
        .collect();
    assert_eq!(
        keys,
        vec![
            ("2", "listen"),
            ("3", "policy.plugin"),
            ("4", "policy.pick_timeout"),
            ("5", "policy.memory_limit"),
            ("7", "proxy.request_timeout"),
            ("9", "backends[0].name"),
            ("10", "backends[0].address"),
            ("11", "backends[0].weight"),
            ("12", "backends[1].name"),
            ("18", "backends[3].name"),
        ],
        "{found:#?}"
    );
}

#[test]
fn limits_that_would_harm_the_proxy_are_refused() {
    let text = "listen = \"127.0.0.1:1\"\n[policy]\nplugin = \"p.wasm\"\npick_timeout = \"1s\"\n[proxy]\nmax_header_size = \"1KiB\"\nmax_connections = 0\n[[backends]]\nname = \"a\"\naddress = \"127.0.0.1:2\"\n";
    assert_eq!(
        issues(text),
        vec![
            "4: policy.pick_timeout: must be at most 100ms",
            "6: proxy.max_header_size: must be at least 8KiB",
            "7: proxy.max_connections: must be between 1 and 1000000, not 0",
        ]
    );
}

#[test]
fn no_backends_is_an_error() {
    assert_eq!(
        issues("listen = \"127.0.0.1:1\"\n"),
        vec!["-: backends: at least one [[backends]] entry is required"]
    );
}

#[test]
fn the_error_message_names_file_line_and_key() {
    let error = parse("listen = \"nope\"\n[[backends]]\nname = \"a\"\naddress = \"127.0.0.1:1\"\n")
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.starts_with(
            "vane.toml has 1 error:\n  vane.toml:1: listen: \"nope\" is not an address"
        ),
        "{message}"
    );
}

#[test]
fn workers_default_to_the_cores_and_are_bounded() {
    let backend = "[[backends]]\nname = \"a\"\naddress = \"127.0.0.1:2\"\n";
    let config = parse(&format!("listen = \"127.0.0.1:1\"\n{backend}")).unwrap();
    assert_eq!(config.workers, None, "one per core, tokio's default");
    let config = parse(&format!("listen = \"127.0.0.1:1\"\nworkers = 1\n{backend}")).unwrap();
    assert_eq!(config.workers, Some(1));
    assert_eq!(
        issues(&format!("listen = \"127.0.0.1:1\"\nworkers = 0\n{backend}")),
        ["2: workers: must be between 1 and 1024, not 0"]
    );
}

#[test]
fn slow_start_is_off_unless_given_and_bounded() {
    let backend = "[[backends]]\nname = \"a\"\naddress = \"127.0.0.1:2\"\n";
    let read = |line: &str| parse(&format!("listen = \"127.0.0.1:1\"\n{line}\n{backend}"));
    assert_eq!(read("").unwrap().slow_start, Duration::ZERO);
    assert_eq!(
        read("slow_start = \"0s\"").unwrap().slow_start,
        Duration::ZERO
    );
    assert_eq!(
        read("slow_start = \"30s\"").unwrap().slow_start,
        Duration::from_secs(30)
    );
    assert_eq!(
        issues(&format!(
            "listen = \"127.0.0.1:1\"\nslow_start = \"2h\"\n{backend}"
        )),
        ["2: slow_start: must be at most 1h"]
    );
    let bad = issues(&format!(
        "listen = \"127.0.0.1:1\"\nslow_start = \"soon\"\n{backend}"
    ));
    assert!(
        bad[0].starts_with("2: slow_start: \"soon\" is not a duration"),
        "{bad:?}"
    );
}

/// Properties of reading over generated config text: no text makes it panic, every issue is
/// located on a line of the text, and a config that reads has what vane needs to start.
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// A line of config: a table header, a known key with a value that may or may not fit it,
    /// or something else.
    fn line() -> impl Strategy<Value = String> {
        let table = proptest::sample::select(vec![
            "[proxy]",
            "[policy]",
            "[health]",
            "[ejection]",
            "[retries]",
            "[[backends]]",
            "[nothing]",
        ])
        .prop_map(str::to_owned);
        let key = proptest::sample::select(vec![
            "listen",
            "admin",
            "workers",
            "name",
            "address",
            "weight",
            "tags",
            "plugin",
            "pick_timeout",
            "memory_limit",
            "max_header_size",
            "max_connections",
            "max_body_size",
            "idle_timeout",
            "interval",
            "max_retries",
            "unknown",
        ]);
        let value = prop_oneof![
            Just("\"127.0.0.1:8080\"".to_owned()),
            Just("\"10.0.0.1:80\"".to_owned()),
            Just("\"2s\"".to_owned()),
            Just("\"64KiB\"".to_owned()),
            Just("[\"a\", \"b\"]".to_owned()),
            (-5i64..100_000).prop_map(|n| n.to_string()),
            "\"[ -~]{0,10}\"",
            "[ -~]{0,6}",
        ];
        prop_oneof![
            2 => table,
            6 => (key, value).prop_map(|(key, value)| format!("{key} = {value}")),
            1 => "[ -~]{0,16}",
        ]
    }

    proptest! {
        #[test]
        fn every_issue_is_on_a_line_of_the_text(lines in proptest::collection::vec(line(), 0..20)) {
            let text = lines.join("\n");
            match parse(&text) {
                Ok(config) => {
                    prop_assert!(!config.backends.is_empty());
                }
                Err(error) => {
                    prop_assert!(!error.issues.is_empty());
                    let count = text.lines().count().max(1);
                    for issue in &error.issues {
                        if let Some(line) = issue.line {
                            prop_assert!((1..=count + 1).contains(&line), "{:?} in {:?}", issue, text);
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn a_backend_takes_a_protocol_and_tls_that_agree() {
    let text = r#"
listen = "127.0.0.1:8080"

[[backends]]
name = "plain"
address = "127.0.0.1:9001"

[[backends]]
name = "grpc"
address = "127.0.0.1:9002"
protocol = "h2"
tls = { ca = "ca.pem", server_name = "grpc.internal", cert = "me.pem", key = "me.key" }

[[backends]]
name = "cleartext-h2"
address = "127.0.0.1:9003"
protocol = "h2c"

[[backends]]
name = "system-roots"
address = "127.0.0.1:9004"
tls = true
"#;
    let config = Config::parse(text, Path::new("vane.toml"), Path::new("/etc/vane")).unwrap();
    let [plain, grpc, h2c, roots] = &config.backends[..] else {
        panic!("four backends");
    };
    assert_eq!(
        (plain.protocol, &plain.tls),
        (BackendProtocol::Http1, &None)
    );
    assert_eq!(grpc.protocol, BackendProtocol::H2);
    assert_eq!(
        grpc.tls,
        Some(BackendTls {
            server_name: Some("grpc.internal".to_owned()),
            ca: Some(PathBuf::from("/etc/vane/ca.pem")),
            client: Some(CertificateFiles {
                cert: PathBuf::from("/etc/vane/me.pem"),
                key: PathBuf::from("/etc/vane/me.key"),
            }),
        })
    );
    assert_eq!((h2c.protocol, &h2c.tls), (BackendProtocol::H2c, &None));
    assert_eq!(roots.tls, Some(BackendTls::default()));
    assert_eq!(plain.transport(), None);
    assert_eq!(
        grpc.transport().unwrap(),
        "h2 over TLS, checked as grpc.internal against /etc/vane/ca.pem, client certificate /etc/vane/me.pem"
    );
    assert_eq!(h2c.transport().unwrap(), "h2c");
    assert_eq!(
        roots.transport().unwrap(),
        "http1 over TLS, checked as 127.0.0.1 against the system's roots"
    );
}

#[test]
fn a_backend_protocol_or_tls_that_cannot_work_is_named() {
    let text = r#"
listen = "127.0.0.1:8080"

[[backends]]
name = "a"
address = "127.0.0.1:9001"
protocol = "h3"

[[backends]]
name = "b"
address = "127.0.0.1:9002"
protocol = "h2"

[[backends]]
name = "c"
address = "127.0.0.1:9003"
protocol = "h2c"
tls = true

[[backends]]
name = "d"
address = "127.0.0.1:9004"
tls = { server_name = "not a name", cert = "me.pem" }
"#;
    assert_eq!(
        issues(text),
        vec![
            "7: backends[0].protocol: \"h3\" is not a protocol: \"http1\" (the default), \"h2\" (HTTP/2 over TLS) or \"h2c\" (HTTP/2 without TLS)",
            "12: backends[1].protocol: h2 is HTTP/2 over TLS: add tls = true (or a tls table), or say \"h2c\" for HTTP/2 without TLS",
            "17: backends[2].protocol: h2c is HTTP/2 without TLS: over TLS, say \"h2\"",
            "23: backends[3].tls.server_name: \"not a name\" is not a DNS name or an IP address",
            "23: backends[3].tls: a client certificate needs both cert and key",
        ]
    );
    let misspelt = "listen = \"127.0.0.1:8080\"\n[[backends]]\nname = \"a\"\naddress = \"127.0.0.1:9001\"\ntls = { ca = \"ca.pem\", sni = \"x\" }\n";
    assert_eq!(
        issues(misspelt),
        vec![
            "5: backends[0].tls.sni: unknown field `sni`, expected one of `server_name`, `ca`, `cert`, `key`"
        ]
    );
}

#[test]
fn shutdown_grace_is_none_unless_given_and_at_most_five_minutes() {
    let backend = "[[backends]]\nname = \"a\"\naddress = \"127.0.0.1:2\"\n";
    let read = |proxy: &str| {
        parse(&format!(
            "listen = \"127.0.0.1:1\"\n[proxy]\n{proxy}\n{backend}"
        ))
    };
    assert_eq!(read("").unwrap().proxy.shutdown_grace, Duration::ZERO);
    let none = read("shutdown_grace = \"0s\"").unwrap();
    assert_eq!(none.proxy.shutdown_grace, Duration::ZERO);
    assert_eq!(
        read("shutdown_grace = \"15s\"")
            .unwrap()
            .proxy
            .shutdown_grace,
        Duration::from_secs(15)
    );
    assert_eq!(
        issues(&format!(
            "listen = \"127.0.0.1:1\"\n[proxy]\nshutdown_grace = \"1h\"\n{backend}"
        )),
        ["3: proxy.shutdown_grace: must be at most 5m"]
    );
}

#[test]
fn discovered_groups_sit_beside_listed_backends() {
    let text = r#"
listen = "127.0.0.1:8080"

[discovery]
dns_servers = ["127.0.0.1:5353", "10.96.0.10"]
min_refresh = "500ms"
max_refresh = "1m"

[[backends]]
name = "a"
address = "127.0.0.1:9001"

[[backends]]
name = "api"
dns = "api.default.svc.cluster.local."
port = 8080
weight = 2
tags = ["k8s"]

[[backends]]
name = "grpc"
srv = "_grpc._tcp.grpc.default.svc.cluster.local"
protocol = "h2c"

[[backends]]
name = "batch"
file = "batch.json"
"#;
    let config: Config = text.parse().unwrap();
    assert_eq!(config.backends.len(), 1);
    let groups: Vec<(&str, String, u32)> = config
        .groups
        .iter()
        .map(|g| (g.name.as_str(), g.source.to_string(), g.weight))
        .collect();
    assert_eq!(
        groups,
        vec![
            (
                "api",
                "dns api.default.svc.cluster.local. port 8080".to_owned(),
                2
            ),
            (
                "grpc",
                "srv _grpc._tcp.grpc.default.svc.cluster.local".to_owned(),
                1
            ),
            ("batch", "file ./batch.json".to_owned(), 1),
        ]
    );
    assert_eq!(config.groups[1].protocol, BackendProtocol::H2c);
    assert_eq!(
        config.discovery.dns_servers,
        vec![
            "127.0.0.1:5353".parse().unwrap(),
            "10.96.0.10:53".parse().unwrap()
        ]
    );
    assert_eq!(config.discovery.min_refresh, Duration::from_millis(500));
    assert_eq!(config.discovery.max_refresh, Duration::from_secs(60));
    // A file of groups alone is a config.
    let only_group = "listen = \"127.0.0.1:8080\"\n[[backends]]\nname = \"g\"\nfile = \"g.toml\"\n";
    assert!(only_group.parse::<Config>().unwrap().backends.is_empty());
}

#[test]
fn a_group_entry_that_is_not_one_thing_says_what_to_write() {
    let entry = |body: &str| {
        issues(&format!(
            "listen = \"127.0.0.1:8080\"\n[[backends]]\nname = \"g\"\n{body}\n"
        ))
    };
    assert_eq!(
        entry("address = \"api.internal:8080\""),
        vec![
            "4: backends[0].address: \"api.internal:8080\" is not an address of the form ip:port, such as 127.0.0.1:8080; to follow a host name's addresses, write dns = \"api.internal\" and port = 8080 instead"
        ]
    );
    assert_eq!(
        entry("address = \"127.0.0.1:1\"\ndns = \"api\"\nport = 80"),
        vec![
            "5: backends[0].dns: address and dns cannot be given together: an entry is one backend (address) or one group (dns, srv or file)"
        ]
    );
    assert_eq!(
        entry("dns = \"api\""),
        vec![
            "4: backends[0].port: is required with dns: the port every address found is reached at"
        ]
    );
    assert_eq!(
        entry("dns = \"api:80\"\nport = 80"),
        vec![
            "4: backends[0].dns: \"api:80\" holds a `:`: give the name alone, and the port as port = N"
        ]
    );
    assert_eq!(
        entry("dns = \"10.0.0.1\"\nport = 80"),
        vec![
            "4: backends[0].dns: \"10.0.0.1\" is an address, not a name to look up: list it as address = \"ip:port\""
        ]
    );
    assert_eq!(
        entry("srv = \"_http._tcp.api\"\nport = 80"),
        vec!["5: backends[0].port: port goes with dns; SRV records give each member's port"]
    );
    assert_eq!(
        entry("dns = \"api\"\nport = 0"),
        vec!["5: backends[0].port: must be between 1 and 65535, not 0"]
    );
    assert_eq!(
        entry("file = \"members.yaml\""),
        vec![
            "4: backends[0].file: \"members.yaml\" must end in .json or .toml, which say how it is read"
        ]
    );
    assert_eq!(
        entry(""),
        vec![
            "2: backends[0].address: is required but missing (or, for a group of backends found at run time, one of dns, srv or file)"
        ]
    );
}

#[test]
fn names_cannot_collide_with_a_groups_members() {
    let text = r#"
listen = "127.0.0.1:8080"

[[backends]]
name = "api/extra"
address = "127.0.0.1:9001"

[[backends]]
name = "api"
dns = "api.internal"
port = 80

[[backends]]
name = "eu/api"
file = "eu.json"
"#;
    assert_eq!(
        issues(text),
        vec![
            "5: backends[0].name: \"api/extra\" would read as a member of the group \"api\": name it otherwise",
            "14: backends[2].name: a group's name must not hold `/`: its members are named group/address",
        ]
    );
}

#[test]
fn discovery_bounds_are_checked() {
    let text = "listen = \"127.0.0.1:8080\"\n[discovery]\ndns_servers = [\"resolver\"]\nmin_refresh = \"10ms\"\nmax_refresh = \"2h\"\n[[backends]]\nname = \"a\"\naddress = \"127.0.0.1:1\"\n";
    assert_eq!(
        issues(text),
        vec![
            "3: discovery.dns_servers[0]: \"resolver\" is not an address such as 10.96.0.10 or 127.0.0.1:5353",
            "4: discovery.min_refresh: must be at least 100ms: a name is not looked up more often",
            "5: discovery.max_refresh: must be at most 1h",
        ]
    );
    let text = "listen = \"127.0.0.1:8080\"\n[discovery]\nmin_refresh = \"10s\"\nmax_refresh = \"5s\"\n[[backends]]\nname = \"a\"\naddress = \"127.0.0.1:1\"\n";
    assert_eq!(
        issues(text),
        vec!["4: discovery.max_refresh: must be at least min_refresh (10s)"]
    );
}
