//! The real `vane` binary, run to its end as a user runs it from a shell.

use std::ffi::OsStr;
use std::process::Command;

use crate::plugins::vane_binary;

/// What one run of `vane` left: whether it exited 0, and what it printed.
#[derive(Debug)]
pub struct Ran {
    /// Whether it exited with status 0.
    pub ok: bool,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error (the log).
    pub stderr: String,
}

/// Runs `vane` with `args` and waits for it to exit.
///
/// # Panics
/// If the binary cannot be started (see [`vane_binary`]).
pub fn run_vane<I, S>(args: I) -> Ran
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let output = Command::new(vane_binary())
        .args(args)
        .output()
        .expect("run the vane binary");
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    Ran {
        ok: output.status.success(),
        stdout: text(&output.stdout),
        stderr: text(&output.stderr),
    }
}
