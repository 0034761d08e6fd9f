//! vane's pages in a real browser: headless Chromium driven by Playwright (`tests/browser/`,
//! installed by `scripts/install-browser.sh`).
//! - The dashboard at the admin listener's `GET /` asks for the admin token and draws the three
//!   backends with their charts, with no console error; a backend killed under load turns out
//!   of rotation and its share falls to zero; a plugin swapped in is named.
//! - `vane plugin test --report` with `--compare` draws both runs, each with its shares along
//!   the run and the scenario's events, its pick times and its tables.
//!
//! The screenshots are left in `target/browser/` (those in docs/ are of the same pages).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use vane_e2e::Vane;
use vane_e2e::backend::backend;
use vane_e2e::command::run_vane;
use vane_e2e::files::{scratch_folder, write_file};
use vane_e2e::load::Flood;
use vane_e2e::plugins::{plugin, target_dir};

const TOKEN: &str = "dashboard-test-token-0123456789";

/// The browser script's next line; fails the test if it failed, ended, or said nothing for
/// a minute (the script's own waits are 15 s each).
async fn next_line(lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>) -> String {
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("the browser script said nothing for a minute")
        .expect("its output")
        .expect("the browser script ended early");
    assert!(!line.starts_with("failed"), "{line}");
    line
}

/// Where Playwright is; fails the test, saying how to install it, if it is not.
fn playwright() -> std::path::PathBuf {
    let playwright = target_dir().join("browser-python");
    assert!(
        playwright.join("playwright").is_dir(),
        "{} has no Playwright: run `bash scripts/test.sh`, or `bash scripts/install-browser.sh`",
        playwright.display()
    );
    playwright
}

/// `tests/browser/NAME` run with `args`, Playwright on its path.
fn browser_script(name: &str, args: &[&str]) -> Command {
    let mut command = Command::new(std::env::var("PYTHON").unwrap_or("python3".into()));
    command
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("browser")
                .join(name),
        )
        .args(args)
        .env("PYTHONPATH", playwright())
        .env("PYTHONUNBUFFERED", "1")
        .kill_on_drop(true);
    command
}

/// Where a test leaves its screenshot `name`.
fn screenshot(name: &str) -> std::path::PathBuf {
    let folder = target_dir().join("browser");
    std::fs::create_dir_all(&folder).unwrap();
    folder.join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_dashboard_draws_the_backends_and_follows_a_kill_and_a_plugin_swap() {
    let [a, b, c] = [
        backend("a").start().await,
        backend("b").start().await,
        backend("c").start().await,
    ];
    let folder = scratch_folder("dashboard");
    let token = write_file(&folder, "admin.token", format!("{TOKEN}\n"));
    std::fs::copy(plugin("round_robin"), folder.join("policy.wasm")).unwrap();
    let config = format!(
        "listen = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\nadmin_token_file = {:?}\n\
         [policy]\nplugin = \"policy.wasm\"\npick_timeout = \"100ms\"\n\
         [health]\ninterval = \"500ms\"\ntimeout = \"500ms\"\nunhealthy_threshold = 2\n{}{}{}",
        token.display().to_string(),
        a.toml(1),
        b.toml(1),
        c.toml(1)
    );
    let path = folder.join("vane.toml");
    std::fs::write(&path, config).unwrap();
    let vane = Vane::start_file(&path).await.unwrap();
    let flood = Flood::start(&vane, 4);

    let screenshot = screenshot("dashboard.png");
    let url = format!("http://{}/", vane.admin.unwrap());
    let shot = screenshot.display().to_string();
    let mut browser = browser_script("dashboard.py", &[url.as_str(), TOKEN, &shot])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs tests/browser/dashboard.py");
    let mut stdin = browser.stdin.take().unwrap();
    let mut lines = BufReader::new(browser.stdout.take().unwrap()).lines();

    assert_eq!(next_line(&mut lines).await, "loaded");
    b.stop();
    stdin.write_all(b"killed b\n").await.unwrap();
    let out = next_line(&mut lines).await;
    assert!(out.starts_with("out b"), "{out}");

    // policy.wasm becomes a link to least-conn.wasm, whose name vane then gives the plugin.
    std::fs::copy(plugin("least_conn"), folder.join("least-conn.wasm")).unwrap();
    std::os::unix::fs::symlink("least-conn.wasm", folder.join("next.wasm")).unwrap();
    std::fs::rename(folder.join("next.wasm"), folder.join("policy.wasm")).unwrap();
    let started = std::time::Instant::now();
    // The watch reloads it (the admin API asks for the token; vane's state is at hand).
    let (name, sha256) = loop {
        if vane.reloader().status().succeeded == 1 {
            let policy = vane.state().policy();
            let info = policy.plugin_info().unwrap();
            break (info.name.clone(), info.sha256[..12].to_owned());
        }
        let status = vane.reloader().status();
        assert!(started.elapsed() < Duration::from_secs(30), "{status:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(name, "least-conn");
    stdin
        .write_all(format!("swapped {name} {sha256}\n").as_bytes())
        .await
        .unwrap();
    assert_eq!(
        next_line(&mut lines).await,
        format!("plugin {name} {sha256}")
    );
    let status = browser.wait().await.unwrap();
    assert!(status.success(), "{status:?}");
    let tally = flood.stop().await;
    assert!(tally.served.get("a").is_some_and(|&n| n > 0), "{tally:?}");
    assert!(screenshot.is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_test_report_compares_two_plugins_in_the_browser() {
    let folder = scratch_folder("report");
    let report = folder.join("report.html");
    let (round_robin, least_conn) = (plugin("round_robin"), plugin("least_conn"));
    let ran = run_vane([
        "plugin",
        "test",
        &round_robin.display().to_string(),
        "--compare",
        &least_conn.display().to_string(),
        "--scenario",
        "churn",
        "--requests",
        "3000",
        "--pick-timeout",
        "100ms",
        "--report",
        &report.display().to_string(),
    ]);
    assert!(ran.ok, "{}", ran.stderr);
    assert!(ran.stdout.contains("plugin round_robin") && ran.stdout.contains("plugin least_conn"));
    let page = std::fs::read_to_string(&report).unwrap();
    assert!(
        page.contains("b3 joins") && page.contains("b0 leaves"),
        "{page}"
    );

    let shot = screenshot("report.png").display().to_string();
    let output = browser_script("report.py", &[&report.display().to_string(), "2", &shot])
        .stdout(Stdio::piped())
        .output()
        .await
        .expect("python3 runs tests/browser/report.py");
    let said = String::from_utf8_lossy(&output.stdout);
    // Both runs drawn: 50 full columns each, the churn's 2 events marked.
    assert_eq!(
        said.trim(),
        "ok 50x2 50x2",
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
