//! `vane plugin test --report FILE.html`: a run (or two, side by side, with `--compare`) as one
//! self-contained page: the shares of the backends along the run with the scenario's events
//! marked, the pick-time histogram, the backends' totals and the fallbacks. Charts are SVG
//! drawn here; the page has no script and loads nothing.

use std::fmt::Write;
use std::time::Duration;

use super::report::Report;

/// The backends' colours, in order of appearance (then again).
const COLOURS: [&str; 10] = [
    "#2563eb", "#16a34a", "#ea580c", "#9333ea", "#0891b2", "#ca8a04", "#db2777", "#4b5563",
    "#65a30d", "#dc2626",
];

/// The pick-time histogram's upper bounds, in microseconds (the last takes the rest).
const PICK_BOUNDS_US: [f64; 10] = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0];

/// The page for `reports` (one, or two to compare), run with the simulation `described`.
pub fn page(reports: &[Report], described: &str) -> String {
    let title = reports
        .iter()
        .map(|report| escape(&report.plugin))
        .collect::<Vec<_>>()
        .join(" vs ");
    let mut html = String::new();
    let _ = write!(
        html,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
         <title>vane plugin test: {title}</title><style>{STYLE}</style></head><body>\
         <h1>vane plugin test: {title}</h1><p class=\"muted\">{}</p><div class=\"runs\">",
        escape(described)
    );
    for report in reports {
        html.push_str(&run(report));
    }
    html.push_str("</div></body></html>\n");
    html
}

const STYLE: &str = "body{margin:0;padding:1em 1.4em;font:14px/1.45 system-ui,sans-serif;\
color:#1d2330;background:#fafafa}h1{font-size:1.3em;margin:0 0 .2em}h2{font-size:1.1em;\
margin:.2em 0 .6em}h3{font-size:.95em;margin:1em 0 .4em}.muted{color:#6b7280}.runs{display:grid;\
grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:1em}section{background:#fff;\
border:1px solid #e5e7eb;border-radius:6px;padding:.8em 1em}table{border-collapse:collapse}\
th,td{padding:.2em .6em;border-bottom:1px solid #e5e7eb;text-align:right}th:first-child,\
td:first-child{text-align:left}th{color:#6b7280;font-weight:500}.key{display:inline-block;\
width:.8em;height:.8em;border-radius:2px;margin-right:.3em;vertical-align:middle}svg{display:block}";

/// One run's section.
fn run(report: &Report) -> String {
    let mut html = String::new();
    let answered = report.answered;
    let _ = write!(
        html,
        "<section class=\"run\"><h2>{}</h2><p class=\"muted\">scenario {}, {} requests; {} picks \
         answered by the plugin, {} served by the built-in round-robin</p>",
        escape(&report.plugin),
        report.scenario,
        report.requests,
        answered,
        report.fallbacks.iter().map(|(_, n)| n).sum::<u64>(),
    );
    html.push_str("<h3>Shares along the run</h3>");
    html.push_str(&shares_chart(report));
    html.push_str(&backends_table(report));
    html.push_str("<h3>Pick time</h3>");
    html.push_str(&pick_histogram(report));
    html.push_str("<h3>Fallbacks</h3>");
    html.push_str(&fallbacks_table(report));
    html.push_str("</section>");
    html
}

/// A stacked column per stretch of the run: each backend's share of its requests, with the
/// scenario's events as dashed lines. Colours follow the scenario's backends, in order, so two
/// runs compared show each backend in the same colour.
fn shares_chart(report: &Report) -> String {
    const WIDTH: f64 = 520.0;
    const HEIGHT: f64 = 180.0;
    const TOP: f64 = 18.0;
    let timeline = &report.timeline;
    let column = WIDTH / timeline.stretches.max(1) as f64;
    let mut svg = format!(
        "<svg class=\"shares\" viewBox=\"0 0 {WIDTH} {}\" width=\"{WIDTH}\" height=\"{}\" \
         role=\"img\" aria-label=\"each backend's share of the requests along the run\">",
        HEIGHT + TOP + 14.0,
        HEIGHT + TOP + 14.0
    );
    let counts: Vec<Option<&[u64]>> = report
        .shares
        .iter()
        .map(|share| timeline.counts(&share.name))
        .collect();
    for stretch in 0..timeline.stretches {
        let total: u64 = counts.iter().flatten().map(|n| n[stretch]).sum();
        let mut y = TOP + HEIGHT;
        for (index, counts) in counts.iter().enumerate() {
            let Some(counts) = counts.filter(|n| n[stretch] > 0) else {
                continue;
            };
            let height = HEIGHT * counts[stretch] as f64 / total as f64;
            y -= height;
            let _ = write!(
                svg,
                "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{height:.1}\" fill=\"{}\"/>",
                stretch as f64 * column,
                column - 0.5,
                colour(index)
            );
        }
    }
    let mut labelled = Vec::new();
    for (at, what) in &report.events {
        let x = timeline.stretch_of(*at) as f64 * column;
        let _ = write!(
            svg,
            "<line class=\"event\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{TOP}\" y2=\"{}\" \
             stroke=\"#111\" stroke-dasharray=\"4 3\"/>",
            TOP + HEIGHT
        );
        // Events at the same moment share one label.
        match labelled
            .iter_mut()
            .find(|(at_x, _): &&mut (f64, String)| *at_x == x)
        {
            Some((_, text)) => {
                text.push_str(", ");
                text.push_str(what);
            }
            None => labelled.push((x, what.clone())),
        }
    }
    for (row, (x, text)) in labelled.iter().enumerate() {
        let _ = write!(
            svg,
            "<text class=\"event\" x=\"{:.1}\" y=\"{}\" font-size=\"11\">{}</text>",
            (x + 3.0).min(WIDTH - 160.0),
            if row % 2 == 0 { 12 } else { 24 },
            escape(text)
        );
    }
    let _ = write!(
        svg,
        "<text x=\"0\" y=\"{}\" font-size=\"11\" fill=\"#6b7280\">first request</text>\
         <text x=\"{WIDTH}\" y=\"{}\" font-size=\"11\" fill=\"#6b7280\" text-anchor=\"end\">last request</text></svg>",
        TOP + HEIGHT + 12.0,
        TOP + HEIGHT + 12.0
    );
    svg
}

/// The colour of the backend at `index` in the scenario's order: ten colours, then the same
/// ten lighter, then again.
fn colour(index: usize) -> String {
    let base = COLOURS[index % COLOURS.len()];
    match (index / COLOURS.len()) % 2 {
        0 => base.to_owned(),
        _ => format!("{base}99"),
    }
}

/// Each backend's totals, with its colour.
fn backends_table(report: &Report) -> String {
    let total = report.shares.iter().map(|s| s.requests).sum::<u64>().max(1);
    let mut html = String::from(
        "<table class=\"backends\"><tr><th>backend</th><th>weight</th><th>latency</th>\
         <th>requests</th><th>failed</th><th>share</th></tr>",
    );
    for (index, share) in report.shares.iter().enumerate() {
        let _ = write!(
            html,
            "<tr><td><span class=\"key\" style=\"background:{}\"></span>{}{}</td><td>{}</td>\
             <td>{} ms</td><td>{}</td><td>{}</td><td>{:.1} %</td></tr>",
            colour(index),
            escape(&share.name),
            if share.healthy { "" } else { " (unhealthy)" },
            share.weight,
            share.latency.as_millis(),
            share.requests,
            share.failed,
            share.requests as f64 * 100.0 / total as f64
        );
    }
    html.push_str("</table>");
    html
}

/// The picks counted by duration, in the bands of [`PICK_BOUNDS_US`].
fn pick_histogram(report: &Report) -> String {
    let mut counts = [0u64; PICK_BOUNDS_US.len() + 1];
    for time in &report.pick_times {
        let us = time.as_secs_f64() * 1e6;
        let band = PICK_BOUNDS_US
            .iter()
            .position(|&bound| us < bound)
            .unwrap_or(PICK_BOUNDS_US.len());
        counts[band] += 1;
    }
    let most = counts.iter().copied().max().unwrap_or(0).max(1);
    const HEIGHT: f64 = 110.0;
    const BAR: f64 = 44.0;
    let width = BAR * counts.len() as f64;
    let mut svg = format!(
        "<svg class=\"picks\" viewBox=\"0 0 {width} {}\" width=\"{width}\" height=\"{}\" \
         role=\"img\" aria-label=\"how long picks took\">",
        HEIGHT + 30.0,
        HEIGHT + 30.0
    );
    for (band, &count) in counts.iter().enumerate() {
        let height = HEIGHT * count as f64 / most as f64;
        let x = band as f64 * BAR;
        let label = match band {
            0 => "<1µs".to_owned(),
            b if b == PICK_BOUNDS_US.len() => format!("≥{}ms", PICK_BOUNDS_US[b - 1] / 1000.0),
            b => format!("<{}µs", PICK_BOUNDS_US[b]),
        };
        let _ = write!(
            svg,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{height:.1}\" fill=\"#2563eb\">\
             <title>{count} picks</title></rect><text x=\"{:.1}\" y=\"{}\" font-size=\"10\" \
             text-anchor=\"middle\">{label}</text>",
            x + 4.0,
            HEIGHT - height,
            BAR - 8.0,
            x + BAR / 2.0,
            HEIGHT + 14.0
        );
    }
    svg.push_str("</svg>");
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    format!(
        "{svg}<p class=\"muted\">p50 {:.1} µs, p90 {:.1} µs, p99 {:.1} µs, max {:.1} µs (the \
         whole call, fallback included, on this machine)</p>",
        us(report.pick_quantile(0.5)),
        us(report.pick_quantile(0.9)),
        us(report.pick_quantile(0.99)),
        us(report.pick_quantile(1.0)),
    )
}

/// The fallbacks by reason.
fn fallbacks_table(report: &Report) -> String {
    let mut html =
        String::from("<table class=\"fallbacks\"><tr><th>reason</th><th>picks</th></tr>");
    for (reason, count) in &report.fallbacks {
        let _ = write!(html, "<tr><td>{}</td><td>{count}</td></tr>", reason.label());
    }
    html.push_str("</table>");
    html
}

/// `text` with the characters HTML gives a meaning escaped.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}
