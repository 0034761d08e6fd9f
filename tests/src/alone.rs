//! Running one test in a process of its own: for tests that measure their process (its resident
//! memory), which must not count what the rest of the suite, running beside them as threads of
//! the same process, holds at the time.

use std::process::Command;
use std::sync::Mutex;

/// Set in the environment of the process a test runs alone in.
const ALONE: &str = "VANE_E2E_ALONE";

/// Held while a test runs alone: one such process at a time, so that each shares the machine
/// only with the rest of the suite.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs the calling test again in a new process of this test binary, alone in it, and says
/// whether it did: the caller returns if so, and runs the test if not (it is that process).
///
/// In the suite's process this waits for the other process, shows what it printed and fails
/// with its output if the test failed there.
///
/// # Panics
/// If the test failed in its own process, or that process could not be started.
pub fn ran_alone() -> bool {
    if std::env::var_os(ALONE).is_some() {
        return false;
    }
    let thread = std::thread::current();
    let test = thread
        .name()
        .expect("the test harness names each test's thread");
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let exe = std::env::current_exe().expect("the test executable's path");
    let output = Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(ALONE, "1")
        .output()
        .unwrap_or_else(|err| panic!("cannot run {test} in its own process: {err}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{test} failed in its own process ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains("1 passed"),
        "{test} did not run in its own process:\n{stdout}"
    );
    print!("{stdout}");
    true
}
