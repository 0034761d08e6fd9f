//! The `vane` binary: `check` accepts a good config and names every error of a bad one.

use std::path::{Path, PathBuf};

use vane_e2e::command::run_vane;
use vane_e2e::files::{scratch_folder, write_file};
use vane_e2e::plugins::plugin;

/// Writes the file `name` in this test's own scratch folder.
fn write_config(test: &str, name: &str, text: &str) -> PathBuf {
    write_file(&scratch_folder(test), name, text)
}

/// Runs `vane check --config PATH`: exit success, stdout, stderr.
fn check(path: &Path) -> (bool, String, String) {
    let ran = run_vane(["check".as_ref(), "--config".as_ref(), path.as_os_str()]);
    (ran.ok, ran.stdout, ran.stderr)
}

#[test]
fn check_accepts_a_good_config_and_loads_its_plugin() {
    let text = format!(
        "listen = \"127.0.0.1:8080\"\n[policy]\nplugin = {:?}\n[[backends]]\nname = \"a\"\naddress = \"127.0.0.1:9001\"\n",
        plugin("least_conn").display().to_string()
    );
    let path = write_config("cli-good", "good.toml", &text);
    let (ok, stdout, stderr) = check(&path);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("ok"), "{stdout}");
    assert!(stdout.contains("least_conn"), "{stdout}");
}

#[test]
fn check_names_the_file_line_and_key_of_an_unknown_key() {
    let path = write_config(
        "cli-typo",
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
        "cli-invalid",
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
    let folder = scratch_folder("cli-bad-plugin");
    let bogus = write_file(&folder, "bogus.wasm", "not wasm");
    let text = "listen = \"127.0.0.1:8080\"\n[policy]\nplugin = \"bogus.wasm\"\n[[backends]]\nname = \"a\"\naddress = \"127.0.0.1:9001\"\n";
    let path = write_file(&folder, "bad-plugin.toml", text);
    let (ok, _, stderr) = check(&path);
    assert!(!ok);
    assert!(
        stderr.contains(&bogus.display().to_string()),
        "plugin path resolved against the config's folder:\n{stderr}"
    );
    assert!(stderr.contains("not a WebAssembly file"), "{stderr}");
}

#[test]
fn check_refuses_a_shadow_that_cannot_load_though_vane_would_serve_without_it() {
    let folder = scratch_folder("cli-bad-shadow");
    write_file(&folder, "bogus.wasm", "not wasm");
    let text = format!(
        "listen = \"127.0.0.1:8080\"\n[policy]\nplugin = {:?}\n[policy.shadow]\nplugin = \"bogus.wasm\"\n\
         [[backends]]\nname = \"a\"\naddress = \"127.0.0.1:9001\"\n",
        plugin("least_conn").display().to_string()
    );
    let path = write_file(&folder, "bad-shadow.toml", text);
    let (ok, _, stderr) = check(&path);
    assert!(!ok);
    assert!(stderr.contains("the shadow policy"), "{stderr}");
    assert!(
        stderr.contains("bogus.wasm") && stderr.contains("not a WebAssembly file"),
        "{stderr}"
    );
}
