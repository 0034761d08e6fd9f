//! Where the plugin components built from this repository are, and the vane binary.
//!
//! `scripts/test.sh` builds them before the tests run (`cargo build --release --target
//! wasm32-wasip2 -p round-robin -p least-conn -p misbehave -p other-world`, and `cargo build -p vane`).

use std::path::{Path, PathBuf};

/// The workspace's `target` folder, found from this test executable (`target/debug/deps/e2e-…`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    exe.ancestors()
        .find(|dir| dir.file_name().is_some_and(|name| name == "target"))
        .map(Path::to_path_buf)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// The path of a plugin built from this repository, such as `round_robin` or `misbehave`.
///
/// # Panics
/// If it has not been built, with the command that builds it.
pub fn plugin(name: &str) -> PathBuf {
    let path = target_dir().join(format!("wasm32-wasip2/release/{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run `bash scripts/test.sh`, or build the plugins with \
         `cargo build --release --target wasm32-wasip2 -p round-robin -p least-conn -p misbehave -p other-world`",
        path.display()
    );
    path
}

/// The example policy `fastest` in `language` (`rust`, `python`, `javascript`, `c`), as its
/// `examples/LANGUAGE/build.sh` leaves it.
///
/// # Panics
/// If it has not been built, with the command that builds it.
pub fn example(language: &str) -> PathBuf {
    let path = target_dir().join(format!("examples/fastest-{language}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run `bash scripts/test.sh`, or `bash examples/{language}/build.sh`",
        path.display()
    );
    path
}

/// The `vane` binary built for these tests.
///
/// # Panics
/// If it has not been built, with the command that builds it.
pub fn vane_binary() -> PathBuf {
    let path = target_dir().join("debug/vane");
    assert!(
        path.is_file(),
        "{} is missing: run `bash scripts/test.sh`, or `cargo build -p vane` first",
        path.display()
    );
    path
}
