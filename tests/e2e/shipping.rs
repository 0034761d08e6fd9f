//! What a packager and an operator get besides serving: `vane --version` with the plugin
//! contract it speaks, shell completions and man pages generated from the CLI definition, and
//! JSON log lines for log shippers.

use std::process::Command;

use vane_e2e::command::run_vane;
use vane_e2e::files::{scratch_folder, write_file};
use vane_e2e::plugins::{plugin, vane_binary};

/// The version of vane's WIT package, read from the WIT itself.
fn wit_version() -> String {
    let wit = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../plugins/kit/wit/balancer.wit"
    );
    let text = std::fs::read_to_string(wit).unwrap();
    let line = text
        .lines()
        .find_map(|line| line.strip_prefix("package vane:balancer@"))
        .expect("a package line");
    line.trim_end_matches(';').to_owned()
}

#[test]
fn the_version_names_the_plugin_contract() {
    let ran = run_vane(["--version"]);
    assert!(ran.ok, "{}", ran.stderr);
    let contract = format!("(plugins: vane:balancer@{})", wit_version());
    assert!(ran.stdout.starts_with("vane 0."), "{}", ran.stdout);
    assert!(ran.stdout.trim_end().ends_with(&contract), "{}", ran.stdout);
}

#[test]
fn completions_are_generated_for_each_shell_and_bash_reads_them() {
    let ran = run_vane(["completions", "bash"]);
    assert!(ran.ok, "{}", ran.stderr);
    // Every command is offered, down to the plugin tools.
    for word in [
        "run",
        "check",
        "demo",
        "shadow",
        "plugin",
        "new",
        "test",
        "--log-format",
    ] {
        assert!(
            ran.stdout.contains(word),
            "no {word} in the bash completions"
        );
    }
    // Each word checked above could be in any script; these are the generated cases.
    for case in [
        "vane,run)",
        "vane__subcmd__plugin,new)",
        "vane__subcmd__plugin,test)",
    ] {
        assert!(
            ran.stdout.contains(case),
            "no {case} in the bash completions"
        );
    }
    let script = write_file(&scratch_folder("completions"), "vane.bash", &ran.stdout);
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        syntax.status.success(),
        "{}",
        String::from_utf8_lossy(&syntax.stderr)
    );
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let ran = run_vane(["completions", shell]);
        assert!(
            ran.ok && ran.stdout.contains("plugin"),
            "{shell}: {}",
            ran.stderr
        );
    }
    let ran = run_vane(["completions", "tcsh"]);
    assert!(!ran.ok, "an unknown shell is refused");
}

#[test]
fn man_pages_are_generated_for_every_command() {
    let ran = run_vane(["man"]);
    assert!(ran.ok, "{}", ran.stderr);
    assert!(ran.stdout.contains(".TH vane 1"), "{}", ran.stdout);
    assert!(
        ran.stdout.contains("vane:balancer@"),
        "the version is in the page"
    );
    assert!(ran.stdout.contains("plugin"), "{}", ran.stdout);

    let dir = scratch_folder("man").join("man1");
    let ran = run_vane(["man", "--dir", &dir.display().to_string()]);
    assert!(ran.ok, "{}", ran.stderr);
    for page in [
        "vane.1",
        "vane-run.1",
        "vane-plugin-new.1",
        "vane-plugin-test.1",
    ] {
        let text = std::fs::read_to_string(dir.join(page)).unwrap_or_else(|_| panic!("{page}"));
        assert!(text.contains(".TH"), "{page}: {text}");
    }
}

#[test]
fn json_logs_are_one_object_per_line() {
    let misbehave = plugin("misbehave").display().to_string();
    let args = [
        "plugin",
        "test",
        &misbehave,
        "--config",
        "print",
        "--requests",
        "3",
        // What is tested is the log's shape, not the pick's time: on a loaded machine a
        // printing pick once went past the default 1 ms of CPU, and `plugin test` then fails.
        // The most a pick may be given.
        "--pick-timeout",
        "100ms",
    ];
    let by_flag = run_vane(["--log-format", "json"].iter().chain(&args));
    let by_env = Command::new(vane_binary())
        .args(args)
        .env("VANE_LOG_FORMAT", "json")
        .output()
        .unwrap();
    for (ok, stderr) in [
        (by_flag.ok, by_flag.stderr),
        (
            by_env.status.success(),
            String::from_utf8_lossy(&by_env.stderr).into_owned(),
        ),
    ] {
        assert!(ok, "{stderr}");
        let events: Vec<serde_json::Value> = stderr
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect();
        // The plugin's own output, with its fields at the top level.
        let printed = events
            .iter()
            .find(|event| event["stream"] == "stdout")
            .unwrap_or_else(|| panic!("no plugin stdout in {stderr}"));
        assert_eq!(printed["plugin"], "misbehave", "{printed}");
        assert_eq!(printed["level"], "INFO", "{printed}");
        assert!(printed["message"].is_string(), "{printed}");
    }
    // A fatal error is an object too.
    let ran = run_vane([
        "--log-format",
        "JSON",
        "run",
        "--config",
        "/nowhere/vane.toml",
    ]);
    assert!(!ran.ok);
    let error: serde_json::Value = serde_json::from_str(ran.stderr.trim()).unwrap_or_else(|e| {
        panic!("{e}: {}", ran.stderr);
    });
    assert_eq!(error["level"], "ERROR", "{error}");
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("/nowhere/vane.toml"),
        "{error}"
    );
}
