//! `vane plugin new`: for each language, a project written into a folder outside the repository,
//! built with nothing but its own `build.sh`, passes `vane plugin test` with the flags it was
//! given and then serves requests through vane in front of real backends, sharing them evenly
//! whichever are in rotation. A C policy that prints is adapted to WASI and loads. The
//! projects' tools come from the tool cache the examples' builds fill (`target/examples/tools`:
//! the examples build as such projects), so nothing is installed twice.

use std::path::{Path, PathBuf};
use std::process::Command;

use vane_e2e::backend::backend;
use vane_e2e::command::{Ran, run_vane};
use vane_e2e::files::scratch_folder;
use vane_e2e::plugins::target_dir;
use vane_e2e::proxy::config_for;
use vane_e2e::{Client, Vane};

/// Writes the project `name` in `language` into a scratch folder with `vane plugin new`;
/// answers the project's folder and the flags it says `vane plugin test` needs.
fn new_project(name: &str, language: &str) -> (PathBuf, Vec<String>) {
    let dir = scratch_folder(&format!("plugin-new-{language}")).join(name);
    let dir_text = dir.display().to_string();
    let ran = run_vane([
        "plugin", "new", name, "--lang", language, "--dir", &dir_text,
    ]);
    assert!(ran.ok, "{}", ran.stderr);
    let command = format!("vane plugin test {name}.wasm");
    let flags = ran
        .stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix(&command))
        .unwrap_or_else(|| panic!("no `{command}` in:\n{}", ran.stdout));
    for file in ["build.sh", "README.md"] {
        assert!(dir.join(file).is_file(), "no {file} in {dir_text}");
    }
    (dir, flags.split_whitespace().map(str::to_owned).collect())
}

/// `flags` with the pick deadline a debug build of vane keeps: a pick of every skeleton takes
/// microseconds in release (the deadline counts CPU time, so load does not matter).
fn for_a_debug_build(mut flags: Vec<String>) -> Vec<String> {
    if let Some(at) = flags.iter().position(|flag| flag == "--pick-timeout") {
        flags.drain(at..at + 2);
    }
    flags.extend(["--pick-timeout".to_owned(), "100ms".to_owned()]);
    flags
}

/// The value of `name` in `flags`, if given.
fn flag<'a>(flags: &'a [String], name: &str) -> Option<&'a str> {
    let at = flags.iter().position(|flag| flag == name)?;
    flags.get(at + 1).map(String::as_str)
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

/// `vane plugin test WASM` with `args`, then `flags`.
fn plugin_test(wasm: &Path, args: &[&str], flags: &[String]) -> Ran {
    let wasm = wasm.display().to_string();
    let command = ["plugin", "test", &wasm]
        .into_iter()
        .chain(args.iter().copied());
    run_vane(command.map(str::to_owned).chain(flags.iter().cloned()))
}

/// The number of requests backend `b` got in `vane plugin test`'s table.
fn requests(stdout: &str, b: &str) -> u64 {
    let row = stdout
        .lines()
        .find(|line| line.split_whitespace().next() == Some(b))
        .unwrap_or_else(|| panic!("no row for {b} in:\n{stdout}"));
    row.split_whitespace().nth(3).unwrap().parse().unwrap()
}

/// Sends `count` requests one at a time; each must be answered 200.
async fn send(client: &Client, count: usize, language: &str) {
    for _ in 0..count {
        let reply = client.get("/").await.expect("a reply");
        assert_eq!(reply.status, 200, "{language}: {}", reply.text());
    }
}

/// Generates, builds, tests offline and serves the skeleton in `language`; answers the
/// project's folder and the flags `vane plugin test` is run with.
async fn from_nothing_to_served(language: &str) -> (PathBuf, Vec<String>) {
    let name = format!("fewest-{language}");
    let (dir, flags) = new_project(&name, language);
    let flags = for_a_debug_build(flags);
    let wasm = build(&dir, &name);

    // As generated, the skeleton spreads equal backends evenly and fails no pick...
    let ran = plugin_test(&wasm, &["--requests", "900"], &flags);
    assert!(ran.ok, "{language}: {}{}", ran.stdout, ran.stderr);
    assert!(ran.stdout.contains("fallbacks: none"), "{}", ran.stdout);
    for b in ["b0", "b1", "b2"] {
        assert_eq!(requests(&ran.stdout, b), 300, "{language}: {}", ran.stdout);
    }
    // ...and checks its config.
    let ran = plugin_test(&wasm, &["--config", "ranked=9"], &flags);
    assert!(!ran.ok, "{language} took ranked=9");
    assert!(ran.stderr.contains("1 to 8"), "{language}: {}", ran.stderr);

    // It serves: requests one at a time take turns over the backends...
    let backends = [
        backend("one").start().await,
        backend("two").start().await,
        backend("three").start().await,
    ];
    let memory_limit = flag(&flags, "--memory-limit").unwrap_or("16MiB");
    let policy = format!(
        "[policy]\nplugin = {:?}\nconfig = \"ranked=2\"\nmemory_limit = {memory_limit:?}\n\
         pick_timeout = \"100ms\"\nconfigure_timeout = \"10s\"\n",
        wasm.display().to_string()
    );
    let vane = Vane::start(&config_for(&backends.each_ref(), &policy))
        .await
        .unwrap_or_else(|err| panic!("{language}: {err:#}"));
    let client = vane.client();
    send(&client, 9, language).await;
    assert_eq!(
        backends.each_ref().map(|b| b.hits()),
        [3, 3, 3],
        "{language}"
    );
    // ...and with one out of rotation, the other two take turns evenly.
    vane.state().backends().backends()[0]
        .health
        .set_healthy(false);
    send(&client, 8, language).await;
    assert_eq!(
        backends.each_ref().map(|b| b.hits()),
        [3, 7, 7],
        "{language}"
    );
    vane.assert_no_fallbacks();
    vane.stop().await;
    (dir, flags)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_project_builds_tests_and_serves() {
    from_nothing_to_served("rust").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_project_builds_tests_and_serves() {
    from_nothing_to_served("python").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_javascript_project_builds_tests_and_serves() {
    from_nothing_to_served("js").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_c_project_builds_tests_and_serves_and_may_print() {
    let (dir, flags) = from_nothing_to_served("c").await;
    // A policy that prints imports WASI preview 1: the build adapts it, vane loads it, and what
    // it prints reaches the log.
    let source = std::fs::read_to_string(dir.join("policy.c")).unwrap();
    let printing = source
        .replace(
            "#include <string.h>",
            "#include <string.h>\n#include <stdio.h>",
        )
        .replace(
            "    ranked = wanted;",
            "    ranked = wanted;\n    printf(\"ranked %zu\\n\", ranked);\n    fflush(stdout);",
        );
    assert_ne!(printing, source, "the skeleton changed: update this test");
    std::fs::write(dir.join("policy.c"), printing).unwrap();
    let wasm = build(&dir, "fewest-c");
    let ran = plugin_test(&wasm, &["--requests", "30"], &flags);
    assert!(ran.ok, "{}{}", ran.stdout, ran.stderr);
    assert!(ran.stderr.contains("ranked 2"), "{}", ran.stderr);
    // The build named the component: deployed as policy.wasm, it keeps its name.
    let deployed = dir.join("policy.wasm");
    std::fs::copy(&wasm, &deployed).unwrap();
    let ran = plugin_test(&deployed, &["--requests", "30"], &flags);
    assert!(ran.stdout.starts_with("plugin fewest-c,"), "{}", ran.stdout);
}
