//! A plugin that cannot serve is refused at start, with its path and the reason.

use std::path::{Path, PathBuf};

use vane_e2e::Vane;
use vane_e2e::backend::backend;
use vane_e2e::files::{scratch_folder, write_file};
use vane_e2e::proxy::{config_for, policy};

/// Starts vane with the plugin at `path` and returns the error it refuses with.
async fn refusal(path: &Path) -> String {
    let a = backend("a").start().await;
    let table = format!("[policy]\nplugin = {:?}\n", path.display().to_string());
    match Vane::start(&config_for(&[&a], &table)).await {
        Ok(_) => panic!("{} was accepted", path.display()),
        Err(err) => format!("{err:#}"),
    }
}

/// Writes `bytes` to the file `name` in a scratch folder of its own.
fn scratch_file(name: &str, bytes: &[u8]) -> PathBuf {
    write_file(&scratch_folder(&format!("plugin-load-{name}")), name, bytes)
}

#[tokio::test]
async fn a_missing_plugin_file_is_refused_with_its_path() {
    let path = std::env::temp_dir().join("vane-no-such-plugin.wasm");
    let error = refusal(&path).await;
    assert!(error.contains("cannot read plugin"), "{error}");
    assert!(error.contains(&path.display().to_string()), "{error}");
}

#[test]
fn a_missing_plugin_named_relative_to_the_config_is_named_in_full_with_its_cause_once() {
    let folder = scratch_folder("plugin-load-relative");
    write_file(
        &folder,
        "vane.toml",
        "listen = \"127.0.0.1:0\"\n[policy]\nplugin = \"missing/policy.wasm\"\n\
         [[backends]]\nname = \"a\"\naddress = \"127.0.0.1:9001\"\n",
    );
    let ran = std::process::Command::new(vane_e2e::plugins::vane_binary())
        .args(["check", "--config", "vane.toml"])
        .current_dir(&folder)
        .output()
        .expect("run the vane binary");
    let stderr = String::from_utf8_lossy(&ran.stderr);
    assert!(!ran.status.success(), "{stderr}");
    let full = folder
        .canonicalize()
        .expect("the scratch folder")
        .join("missing/policy.wasm");
    assert!(
        stderr.contains(&format!("cannot read plugin {}:", full.display())),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("No such file or directory").count(),
        1,
        "{stderr}"
    );
}

#[tokio::test]
async fn a_file_that_is_not_wasm_is_refused_with_its_path() {
    let path = scratch_file("not-wasm.wasm", b"#!/bin/sh\necho hello\n");
    let error = refusal(&path).await;
    assert!(error.contains("is not a WebAssembly file"), "{error}");
    assert!(error.contains(&path.display().to_string()), "{error}");
}

#[tokio::test]
async fn a_core_module_is_refused_as_not_a_component() {
    // The smallest valid core module: magic and version 1, no sections.
    let path = scratch_file("core.wasm", b"\0asm\x01\0\0\0");
    let error = refusal(&path).await;
    assert!(
        error.contains("core WebAssembly module, not a component"),
        "{error}"
    );
}

#[tokio::test]
async fn a_truncated_component_is_refused_as_invalid() {
    let good = std::fs::read(vane_e2e::plugins::plugin("round_robin")).unwrap();
    let path = scratch_file("truncated.wasm", &good[..good.len() / 2]);
    let error = refusal(&path).await;
    assert!(error.contains("is not a valid component"), "{error}");
}

#[tokio::test]
async fn a_plugin_refusing_its_config_is_refused_with_its_message() {
    let a = backend("a").start().await;
    let error = match Vane::start(&config_for(&[&a], &policy("misbehave", "refuse"))).await {
        Ok(_) => panic!("a refusing plugin was accepted"),
        Err(err) => format!("{err:#}"),
    };
    assert!(error.contains("refused its configuration"), "{error}");
    assert!(error.contains("refused on purpose"), "{error}");
    assert!(error.contains("misbehave.wasm"), "{error}");
}
