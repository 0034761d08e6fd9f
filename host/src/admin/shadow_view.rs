//! `vane shadow`: the shadow policy as a running vane's admin API reports it (`GET /policy`),
//! written for a terminal: agreement with the active policy, each backend's actual and
//! would-be share side by side, pick time and failures.

use std::fmt::Write;
use std::net::SocketAddr;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The width of a 100 % bar, in characters.
const BAR_WIDTH: f64 = 30.0;

/// Reads `GET /policy` from the admin API at `admin`, with `token` as its bearer token if
/// given; answers the JSON, or what went wrong in words.
pub async fn fetch_policy(admin: SocketAddr, token: Option<&str>) -> Result<Value, String> {
    let mut stream = tokio::net::TcpStream::connect(admin)
        .await
        .map_err(|err| format!("cannot reach the admin API at {admin}: {err}"))?;
    let authorization = token.map_or_else(String::new, |token| {
        format!("authorization: Bearer {token}\r\n")
    });
    let request = format!(
        "GET /policy HTTP/1.1\r\nhost: {admin}\r\nconnection: close\r\n{authorization}\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|err| format!("cannot ask the admin API at {admin}: {err}"))?;
    let mut reply = Vec::new();
    stream
        .read_to_end(&mut reply)
        .await
        .map_err(|err| format!("the admin API at {admin} broke off: {err}"))?;
    let reply = String::from_utf8_lossy(&reply);
    let (head, body) = reply
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("the admin API at {admin} sent no HTTP response"))?;
    let status = head.lines().next().unwrap_or_default();
    if !status.contains(" 200 ") {
        return Err(format!(
            "the admin API at {admin} answered {status}: {}",
            body.trim()
        ));
    }
    serde_json::from_str(body).map_err(|err| format!("GET /policy is not JSON: {err}"))
}

/// The shadow policy of `policy` (the JSON of `GET /policy`) as text for a terminal; an error
/// if the policy in force has no shadow.
pub fn render(policy: &Value) -> Result<String, String> {
    let shadow = &policy["shadow"];
    if shadow.is_null() {
        return Err("the policy in force has no shadow: add a [policy.shadow] table".to_owned());
    }
    if let Some(error) = shadow["error"].as_str() {
        return Err(format!(
            "the shadow policy {} could not be loaded, and vane serves without it: {error}",
            shadow["path"].as_str().unwrap_or("?")
        ));
    }
    let number = |value: &Value| value.as_u64().unwrap_or(0);
    let percent = |value: &Value| value.as_f64().map(|share| share * 100.0);
    let active = policy["plugin"]["name"]
        .as_str()
        .unwrap_or("the built-in round-robin");
    let mut out = String::new();
    let sha = shadow["sha256"].as_str().unwrap_or_default();
    let _ = writeln!(
        out,
        "shadow {} (sha256 {}) beside {active}: {}% of requests sampled, breaker {}",
        shadow["name"].as_str().unwrap_or("?"),
        &sha[..sha.len().min(12)],
        shadow["sample_percent"],
        shadow["breaker"].as_str().unwrap_or("?"),
    );
    let agreement = percent(&shadow["agreement"])
        .map_or_else(|| "-".to_owned(), |share| format!("{share:.1}%"));
    let _ = writeln!(
        out,
        "{} sampled, {} dropped, {} compared: {} agreed with {active} ({agreement})",
        number(&shadow["sampled"]),
        number(&shadow["dropped"]),
        number(&shadow["compared"]),
        number(&shadow["agreed"]),
    );
    let micros = |value: &Value| {
        value
            .as_f64()
            .map_or_else(|| "-".to_owned(), |us| format!("{us:.1} µs"))
    };
    let pick = &shadow["pick_us"];
    let _ = writeln!(
        out,
        "pick time: mean {}, p50 at most {}, p99 at most {}",
        micros(&pick["mean"]),
        micros(&pick["p50_at_most"]),
        micros(&pick["p99_at_most"]),
    );
    let failures: Vec<String> = shadow["failures"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, count)| number(count) > 0)
        .map(|(reason, count)| format!("{reason} {count}"))
        .collect();
    let failures = if failures.is_empty() {
        "none".to_owned()
    } else {
        failures.join(", ")
    };
    let _ = writeln!(out, "no usable answer: {failures}");
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "  {:<12} {:>16}   {:>16}",
        "backend", "actual", "shadow would"
    );
    for backend in shadow["backends"].as_array().into_iter().flatten() {
        let column = |count: &Value, share: &Value| {
            let share = share.as_f64().unwrap_or(0.0);
            let bar = "█".repeat((share * BAR_WIDTH).round() as usize);
            (format!("{:>7} {:>6.1}%", number(count), share * 100.0), bar)
        };
        let (actual, actual_bar) = column(&backend["actual"], &backend["actual_share"]);
        let (would, would_bar) = column(&backend["would_be"], &backend["would_be_share"]);
        let _ = writeln!(
            out,
            "  {:<12} {actual} {actual_bar:<30} {would} {would_bar}",
            backend["name"].as_str().unwrap_or("?"),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_view_puts_actual_and_would_be_shares_side_by_side() {
        let policy = json!({
            "plugin": { "name": "round_robin" },
            "shadow": {
                "name": "least_conn", "sha256": "0123456789abcdef", "sample_percent": 50.0,
                "breaker": "closed", "sampled": 10, "dropped": 0, "compared": 10, "agreed": 7,
                "agreement": 0.7,
                "pick_us": { "mean": 2.5, "p50_at_most": 5.0, "p99_at_most": null },
                "failures": { "trap": 0, "deadline": 2 },
                "backends": [
                    { "name": "a", "actual": 5, "would_be": 8, "actual_share": 0.5, "would_be_share": 0.8 },
                    { "name": "b", "actual": 5, "would_be": 2, "actual_share": 0.5, "would_be_share": 0.2 },
                ],
            },
        });
        let text = render(&policy).unwrap();
        assert!(
            text.starts_with("shadow least_conn (sha256 0123456789ab) beside round_robin"),
            "{text}"
        );
        assert!(text.contains("7 agreed with round_robin (70.0%)"), "{text}");
        assert!(text.contains("no usable answer: deadline 2"), "{text}");
        assert!(text.contains("p99 at most -"), "{text}");
        let row = text
            .lines()
            .find(|line| line.trim_start().starts_with("a "))
            .unwrap();
        assert!(
            row.contains("5   50.0%") && row.contains("8   80.0%"),
            "{row}"
        );
        assert!(render(&json!({ "shadow": null })).is_err());
        let broken = json!({ "shadow": { "path": "x.wasm", "error": "not a component" } });
        assert!(
            render(&broken).unwrap_err().ends_with(
                "x.wasm could not be loaded, and vane serves without it: not a component"
            )
        );
    }
}
