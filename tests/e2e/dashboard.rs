//! The dashboard at the admin listener's `GET /`, in a real browser: headless Chromium driven
//! by Playwright (`tests/browser/dashboard.py`, installed by `scripts/install-browser.sh`). The
//! page asks for the admin token and draws the three backends with their charts, with no
//! console error; a backend killed under load turns out of rotation and its share falls to
//! zero; a plugin swapped in is named. The screenshot is left in
//! `target/browser/dashboard.png` (docs/dashboard.png is one of them).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use vane_e2e::Vane;
use vane_e2e::backend::backend;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_dashboard_draws_the_backends_and_follows_a_kill_and_a_plugin_swap() {
    let playwright = target_dir().join("browser-python");
    assert!(
        playwright.join("playwright").is_dir(),
        "{} has no Playwright: run `bash scripts/test.sh`, or `bash scripts/install-browser.sh`",
        playwright.display()
    );
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
         [health]\ninterval = \"200ms\"\ntimeout = \"100ms\"\nunhealthy_threshold = 1\n{}{}{}",
        token.display().to_string(),
        a.toml(1),
        b.toml(1),
        c.toml(1)
    );
    let path = folder.join("vane.toml");
    std::fs::write(&path, config).unwrap();
    let vane = Vane::start_file(&path).await.unwrap();
    let flood = Flood::start(&vane, 4);

    let screenshot = target_dir().join("browser").join("dashboard.png");
    std::fs::create_dir_all(screenshot.parent().unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser/dashboard.py");
    let url = format!("http://{}/", vane.admin.unwrap());
    let mut browser = Command::new(std::env::var("PYTHON").unwrap_or("python3".into()))
        .arg(script)
        .args([url.as_str(), TOKEN, &screenshot.display().to_string()])
        .env("PYTHONPATH", &playwright)
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs tests/browser/dashboard.py");
    let mut stdin = browser.stdin.take().unwrap();
    let mut lines = BufReader::new(browser.stdout.take().unwrap()).lines();

    assert_eq!(next_line(&mut lines).await, "loaded");
    b.stop();
    stdin.write_all(b"killed b\n").await.unwrap();
    let out = next_line(&mut lines).await;
    assert!(out.starts_with("out b"), "{out}");

    std::fs::copy(plugin("least_conn"), folder.join("next.wasm")).unwrap();
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
