//! `vane plugin new`: for each language, a project written into a folder outside the repository,
//! built with nothing but its own `build.sh`, passes `vane plugin test` as written and then
//! serves requests through vane in front of real backends. The projects' tools come from the
//! tool cache the examples' builds fill (`target/examples/tools`, the same layout), so nothing is
//! installed twice.

use std::path::{Path, PathBuf};
use std::process::Command;

use vane_e2e::backend::backend;
use vane_e2e::command::run_vane;
use vane_e2e::files::scratch_folder;
use vane_e2e::plugins::target_dir;
use vane_e2e::proxy::config_for;
use vane_e2e::{Client, Vane};

/// Writes the project `name` in `language` into a scratch folder with `vane plugin new`,
/// checking that it says what to run next; answers the project's folder.
fn new_project(name: &str, language: &str) -> PathBuf {
    let dir = scratch_folder(&format!("plugin-new-{language}")).join(name);
    let dir_text = dir.display().to_string();
    let ran = run_vane([
        "plugin", "new", name, "--lang", language, "--dir", &dir_text,
    ]);
    assert!(ran.ok, "{}", ran.stderr);
    assert!(
        ran.stdout
            .contains(&format!("vane plugin test {name}.wasm")),
        "{}",
        ran.stdout
    );
    for file in ["build.sh", "README.md"] {
        assert!(dir.join(file).is_file(), "no {file} in {dir_text}");
    }
    dir
}

/// Runs the project's `build.sh` as its README says, and answers the component it built.
fn build(dir: &Path, name: &str) -> PathBuf {
    let target = target_dir();
    let output = Command::new("bash")
        .arg(dir.join("build.sh"))
        .current_dir(dir)
        .env("VANE_TOOLS_DIR", target.join("examples/tools"))
        // A Rust project's build, kept between runs of the tests.
        .env("CARGO_TARGET_DIR", target.join("plugin-new"))
        .output()
        .expect("run bash");
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{} failed:\n{log}", dir.display());
    let wasm = dir.join(format!("{name}.wasm"));
    assert!(
        wasm.is_file(),
        "{} left no {name}.wasm:\n{log}",
        dir.display()
    );
    wasm
}

/// The number of requests backend `b` got in `vane plugin test`'s table.
fn requests(stdout: &str, b: &str) -> u64 {
    let row = stdout
        .lines()
        .find(|line| line.split_whitespace().next() == Some(b))
        .unwrap_or_else(|| panic!("no row for {b} in:\n{stdout}"));
    row.split_whitespace().nth(3).unwrap().parse().unwrap()
}

/// Generates, builds, tests offline and serves the skeleton in `language`, whose runtime needs
/// `memory_limit`. Pick deadlines are raised for a debug build of vane.
async fn from_nothing_to_served(language: &str, memory_limit: &str) {
    let name = format!("fewest-{language}");
    let dir = new_project(&name, language);
    let wasm = build(&dir, &name);
    let wasm_text = wasm.display().to_string();

    // As generated, the skeleton spreads equal backends evenly and fails no pick.
    let limits = ["--memory-limit", memory_limit, "--pick-timeout", "100ms"];
    let ran = run_vane(
        ["plugin", "test", &wasm_text, "--requests", "900"]
            .iter()
            .chain(&limits),
    );
    assert!(ran.ok, "{language}: {}{}", ran.stdout, ran.stderr);
    assert!(ran.stdout.contains("fallbacks: none"), "{}", ran.stdout);
    for b in ["b0", "b1", "b2"] {
        assert_eq!(requests(&ran.stdout, b), 300, "{language}: {}", ran.stdout);
    }
    // Its config is checked.
    let ran = run_vane(
        ["plugin", "test", &wasm_text, "--config", "ranked=9"]
            .iter()
            .chain(&limits),
    );
    assert!(!ran.ok, "{language} took ranked=9");
    assert!(ran.stderr.contains("1 to 8"), "{language}: {}", ran.stderr);

    // And it serves: requests one at a time take turns over the backends.
    let backends = [
        backend("one").start().await,
        backend("two").start().await,
        backend("three").start().await,
    ];
    let policy = format!(
        "[policy]\nplugin = {wasm_text:?}\nconfig = \"ranked=2\"\nmemory_limit = {memory_limit:?}\n\
         pick_timeout = \"100ms\"\nconfigure_timeout = \"10s\"\n"
    );
    let vane = Vane::start(&config_for(&backends.each_ref(), &policy))
        .await
        .unwrap_or_else(|err| panic!("{language}: {err:#}"));
    let client: Client = vane.client();
    for _ in 0..9 {
        let reply = client.get("/").await.expect("a reply");
        assert_eq!(reply.status, 200, "{language}: {}", reply.text());
    }
    for b in &backends {
        assert_eq!(b.hits(), 3, "{language}: each backend takes a third");
    }
    vane.assert_no_fallbacks();
    vane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_project_builds_tests_and_serves() {
    from_nothing_to_served("rust", "16MiB").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_project_builds_tests_and_serves() {
    from_nothing_to_served("python", "16MiB").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_javascript_project_builds_tests_and_serves() {
    from_nothing_to_served("js", "64MiB").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_c_project_builds_tests_and_serves() {
    from_nothing_to_served("c", "16MiB").await;
}
