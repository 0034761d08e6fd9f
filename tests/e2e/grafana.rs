//! `deploy/grafana/vane.json`, the Grafana dashboard for vane's Prometheus metrics: every
//! metric its queries read, and every label they group or name series by, is one a running vane
//! exports (with a plugin, a shadow policy, slow start and a TLS listener, so that every family
//! shows).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;
use vane_e2e::Vane;
use vane_e2e::backend::backend;
use vane_e2e::files::scratch_folder;
use vane_e2e::plugins::plugin;
use vane_e2e::tls::TestCa;

/// Labels Prometheus adds (`instance`) or a histogram's buckets carry (`le`).
const NOT_VANES: [&str; 2] = ["instance", "le"];

/// Every `expr` in the dashboard, panels and query variables alike (a datasource variable's
/// `query` is the datasource's type).
fn queries(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) if map.get("type").is_some_and(|t| t == "datasource") => {}
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr" | "query", Value::String(expr)) => found.push(expr.clone()),
                    _ => queries(value, found),
                }
            }
        }
        Value::Array(values) => values.iter().for_each(|value| queries(value, found)),
        _ => {}
    }
}

/// The words of `text` made of `[a-z0-9_]`.
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
        .filter(|word| !word.is_empty())
}

/// The PromQL keywords followed by a list of label names in parentheses.
const LABEL_LISTS: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The labels `expr` names: in `by (...)` and the other label lists, in matchers
/// (`{state="open"}`), and in the legend (`{{backend}}`).
fn labels_used(expr: &str, legend: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for keyword in LABEL_LISTS {
        for (at, _) in expr.match_indices(keyword) {
            let before = expr[..at].chars().next_back();
            let rest = expr[at + keyword.len()..].trim_start();
            let whole_word = !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            if let (true, Some(list)) = (whole_word, rest.strip_prefix('(')) {
                let list = list.split(')').next().unwrap_or_default();
                used.extend(words(list).map(str::to_owned));
            }
        }
    }
    for part in expr.split('{').skip(1) {
        let matchers = part.split('}').next().unwrap_or_default();
        for matcher in matchers.split(',') {
            let name = matcher.split(['=', '!']).next().unwrap_or_default().trim();
            if !name.is_empty() {
                used.insert(name.to_owned());
            }
        }
    }
    for part in legend.split("{{").skip(1) {
        used.extend(part.split("}}").next().map(|name| name.trim().to_owned()));
    }
    used.retain(|label| !NOT_VANES.contains(&label.as_str()));
    used
}

/// Each sample name in a Prometheus text exposition with the label names it carries. Label
/// values are quoted and may hold `,`, `=`, `}` and escaped quotes.
fn exported(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut series: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let labels = series.entry(line[..name_end].to_owned()).or_default();
        let Some(mut rest) = line[name_end..].strip_prefix('{') else {
            continue;
        };
        // name="value", ... }
        while let Some((name, after)) = rest.split_once("=\"") {
            labels.insert(name.trim_start_matches(',').trim().to_owned());
            let mut chars = after.char_indices();
            let mut end = after.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        chars.next();
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    _ => {}
                }
            }
            rest = &after[end..];
            if rest.trim_start().starts_with('}') {
                break;
            }
        }
    }
    series
}

#[test]
fn the_parsers_read_quoted_values_and_every_label_list() {
    let text = "# TYPE a counter\na_total{cert=\"/x,y=z}\\\"q\",listener=\"l\"} 1\nb 2\n# EOF\n";
    let series = exported(text);
    let labels: Vec<_> = series["a_total"].iter().map(String::as_str).collect();
    assert_eq!(labels, ["cert", "listener"]);
    assert!(series["b"].is_empty());
    let used = labels_used(
        "sum without(x) (m{state=\"open\",y!~\"z\"}) / on (w) group_left(v) n",
        "{{ legend }}",
    );
    let used: Vec<_> = used.iter().map(String::as_str).collect();
    assert_eq!(used, ["legend", "state", "v", "w", "x", "y"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_query_reads_metrics_and_labels_vane_exports() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/grafana/vane.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap())
        .expect("the dashboard is JSON");
    assert!(dashboard["panels"].as_array().is_some_and(|p| p.len() > 10));

    let folder = scratch_folder("grafana");
    let certificate = TestCa::new().issue(&folder, "site", &["site.test"]);
    let (a, b) = (backend("a").start().await, backend("b").start().await);
    let config = format!(
        "listen = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\nslow_start = \"10s\"\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\ntls = {{ certificates = [{}] }}\n\
         [policy]\nplugin = {:?}\npick_timeout = \"100ms\"\n\
         [policy.shadow]\nplugin = {:?}\n{}{}",
        certificate.toml(),
        plugin("least_conn").display().to_string(),
        plugin("round_robin").display().to_string(),
        a.toml(1),
        b.toml(1),
    );
    let vane = Vane::start(&config).await.unwrap();
    let client = vane.client();
    for _ in 0..10 {
        assert_eq!(client.get("/").await.unwrap().status, 200);
    }
    // The shadow compares on its own thread after the requests: wait for its samples.
    let started = std::time::Instant::now();
    let text = loop {
        let (_, text) = vane.admin_get("/metrics").await;
        if text.contains("vane_shadow_backend_picks_total{") {
            break text;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no shadow samples:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let series = exported(&text);

    let mut panels_queries = Vec::new();
    queries(&dashboard, &mut panels_queries);
    assert!(panels_queries.len() > 20, "{panels_queries:?}");
    // Each query with its legend, where it has one.
    let mut legends: BTreeMap<&str, &str> = BTreeMap::new();
    let targets = dashboard["panels"].as_array().unwrap().iter();
    for target in targets.flat_map(|p| p["targets"].as_array().into_iter().flatten()) {
        if let (Some(expr), Some(legend)) =
            (target["expr"].as_str(), target["legendFormat"].as_str())
        {
            legends.insert(expr, legend);
        }
    }
    for expr in &panels_queries {
        let metrics: Vec<&str> = words(expr).filter(|w| w.starts_with("vane_")).collect();
        assert!(!metrics.is_empty(), "no vane metric in {expr}");
        let mut labels = BTreeSet::new();
        for metric in &metrics {
            let carried = series
                .get(*metric)
                .unwrap_or_else(|| panic!("{metric} (in {expr}) is not exported:\n{text}"));
            labels.extend(carried.iter().cloned());
        }
        let legend = legends.get(expr.as_str()).copied().unwrap_or_default();
        for label in labels_used(expr, legend) {
            assert!(
                labels.contains(&label),
                "{expr} uses label {label}, which {metrics:?} lack"
            );
        }
    }
    vane.stop().await;
}
