//! The `vane` binary: `check` accepts a good config and names every error of a bad one.

use std::path::PathBuf;
use std::process::Command;

use vane_e2e::plugins::{plugin, vane_binary};

fn write_config(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vane-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `vane check --config PATH`: exit success, stdout, stderr.
fn check(path: &PathBuf) -> (bool, String, String) {
    let output = Command::new(vane_binary())
        .args(["check", "--config"])
        .arg(path)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run vane");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn check_accepts_a_good_config_and_loads_its_plugin() {
    let text = format!(
        "listen = \"127.0.0.1:8080\"\n[policy]\nplugin = {:?}\n[[backends]]\nname = \"a\"\naddress = \"127.0.0.1:9001\"\n",
        plugin("least_conn").display().to_string()
    );
    let path = write_config("good.toml", &text);
    let (ok, stdout, stderr) = check(&path);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("ok"), "{stdout}");
    assert!(stdout.contains("least_conn"), "{stdout}");
}

#[test]
fn check_names_the_file_line_and_key_of_an_unknown_key() {
    let path = write_config(
        "typo.toml",
        "listen = \"127.0.0.1:8080\"\n\n[[backends]]\nname = \"a\"\naddress = \"127.0.0.1:9001\"\n\n[[backends]]\nname = \"b\"\nadress = \"127.0.0.1:9002\"\n",
    );
    let (ok, _, stderr) = check(&path);
    assert!(!ok);
    let expected = format!(
        "{}:9: backends[1].adress: unknown field `adress`",
        path.display()
    );
    assert!(
        stderr.contains(&expected),
        "wanted {expected:?} in:\n{stderr}"
    );
}

#[test]
fn check_reports_every_invalid_value_with_its_line() {
    let path = write_config(
        "invalid.toml",
        "listen = \"localhost\"\n[proxy]\nconnect_timeout = \"soon\"\n[[backends]]\nname = \"a\"\naddress = \"127.0.0.1:9001\"\nweight = 0\n[[backends]]\nname = \"a\"\naddress = \"127.0.0.1:99999\"\n",
    );
    let (ok, _, stderr) = check(&path);
    assert!(!ok);
    let file = path.display().to_string();
    for expected in [
        format!("{file}:1: listen:"),
        format!("{file}:3: proxy.connect_timeout:"),
        format!("{file}:7: backends[0].weight: must be between 1"),
        format!("{file}:9: backends[1].name: \"a\" is already the name of another backend"),
        format!("{file}:10: backends[1].address:"),
    ] {
        assert!(
            stderr.contains(&expected),
            "wanted {expected:?} in:\n{stderr}"
        );
    }
}

#[test]
fn check_refuses_a_bad_plugin_naming_it() {
    let bogus = write_config("bogus.wasm", "not wasm");
    let text = "listen = \"127.0.0.1:8080\"\n[policy]\nplugin = \"bogus.wasm\"\n[[backends]]\nname = \"a\"\naddress = \"127.0.0.1:9001\"\n";
    let path = write_config("bad-plugin.toml", text);
    let (ok, _, stderr) = check(&path);
    assert!(!ok);
    assert!(
        stderr.contains(&bogus.display().to_string()),
        "plugin path resolved against the config's folder:\n{stderr}"
    );
    assert!(stderr.contains("not a WebAssembly file"), "{stderr}");
}
