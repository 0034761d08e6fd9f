//! `vane plugin test`: a plugin run offline against simulated backends, on the real binary.

use vane_e2e::command::run_vane;
use vane_e2e::plugins::plugin;

/// Runs `vane plugin test` with `args` (and a pick deadline a loaded debug build keeps):
/// exit success, stdout and stderr.
fn plugin_test(args: &[&str]) -> (bool, String, String) {
    let command = ["plugin", "test", "--pick-timeout", "100ms"];
    let ran = run_vane(command.iter().chain(args));
    (ran.ok, ran.stdout, ran.stderr)
}

/// The requests column of `backend`'s row.
fn requests(stdout: &str, backend: &str) -> u64 {
    let row = stdout
        .lines()
        .find(|line| line.split_whitespace().next() == Some(backend))
        .unwrap_or_else(|| panic!("no row for {backend} in:\n{stdout}"));
    row.split_whitespace().nth(3).unwrap().parse().unwrap()
}

#[test]
fn round_robin_spreads_equally_and_by_weight() {
    let path = plugin("round_robin").display().to_string();
    let (ok, stdout, stderr) = plugin_test(&[&path, "--requests", "900"]);
    assert!(ok, "{stderr}");
    for backend in ["b0", "b1", "b2"] {
        assert_eq!(requests(&stdout, backend), 300, "{stdout}");
    }
    assert!(stdout.contains("fallbacks: none"), "{stdout}");
    assert!(stdout.contains("pick time p50"), "{stdout}");

    let (ok, stdout, _) = plugin_test(&[&path, "--requests", "800", "--scenario", "weights"]);
    assert!(ok);
    let got: Vec<u64> = ["b0", "b1", "b2"].map(|b| requests(&stdout, b)).to_vec();
    assert_eq!(got, [100, 200, 500], "{stdout}");
}

#[test]
fn least_conn_avoids_the_slow_backend_and_the_unhealthy_one() {
    let path = plugin("least_conn").display().to_string();
    let (ok, stdout, _) = plugin_test(&[&path, "--requests", "3000", "--scenario", "one-slow"]);
    assert!(ok, "{stdout}");
    // The slow backend holds its requests ten times longer, so least-conn sends it far fewer.
    assert!(
        requests(&stdout, "b2") * 5 < requests(&stdout, "b0"),
        "{stdout}"
    );

    let (ok, stdout, _) = plugin_test(&[&path, "--scenario", "one-unhealthy"]);
    assert!(ok, "{stdout}");
    assert_eq!(requests(&stdout, "b2"), 0, "{stdout}");
    assert!(stdout.contains("(unhealthy)"), "{stdout}");
}

#[test]
fn backends_joining_and_leaving_are_followed() {
    let path = plugin("round_robin").display().to_string();
    let (ok, stdout, stderr) = plugin_test(&[&path, "--requests", "900", "--scenario", "churn"]);
    assert!(ok, "{stderr}");
    // b3 joins after 300 requests; b0 leaves after 600.
    assert_eq!(requests(&stdout, "b0"), 100 + 75, "{stdout}");
    assert_eq!(requests(&stdout, "b3"), 75 + 100, "{stdout}");
}

#[test]
fn a_failing_plugin_exits_non_zero_with_its_fallbacks() {
    let path = plugin("misbehave").display().to_string();
    let (ok, stdout, stderr) =
        plugin_test(&[&path, "--config", "panic-every:10", "--requests", "200"]);
    assert!(!ok, "{stdout}");
    assert!(stdout.contains("fallbacks: trap 20"), "{stdout}");
    assert!(
        stderr.contains("the plugin failed 20 of 200 picks"),
        "{stderr}"
    );
    // The panic message reached the log through the plugin's stderr.
    assert!(stderr.contains("misbehave: pick 10"), "{stderr}");

    let (ok, stdout, _) = plugin_test(&[&path, "--config", "decline", "--requests", "50"]);
    assert!(ok, "declining is not a failure: {stdout}");
}
