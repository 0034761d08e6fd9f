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

/// The number in column `column` (0 is the name) of `backend`'s row.
fn cell(stdout: &str, backend: &str, column: usize) -> u64 {
    let row = stdout
        .lines()
        .find(|line| line.split_whitespace().next() == Some(backend))
        .unwrap_or_else(|| panic!("no row for {backend} in:\n{stdout}"));
    row.split_whitespace().nth(column).unwrap().parse().unwrap()
}

/// The requests column of `backend`'s row.
fn requests(stdout: &str, backend: &str) -> u64 {
    cell(stdout, backend, 3)
}

/// The failed column of `backend`'s row.
fn failed(stdout: &str, backend: &str) -> u64 {
    cell(stdout, backend, 4)
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

#[test]
fn a_pick_past_its_deadline_is_let_run_to_say_how_it_ends() {
    let path = plugin("misbehave").display().to_string();
    let test = |config: &str| {
        let args = [
            "plugin",
            "test",
            &path,
            "--config",
            config,
            "--requests",
            "20",
        ];
        let ran = run_vane(args.iter().chain(&["--pick-timeout", "1ms"]));
        (ran.ok, ran.stdout, ran.stderr)
    };
    // 5 M rounds of arithmetic (2 to 4 ns each here: 10 to 20 ms of CPU, far from both 1 ms
    // and the 250 ms grace), then a panic: a trap, its message in the log, where `vane run`
    // would have cut it at 1 ms and counted a deadline with nothing to read.
    let (ok, stdout, stderr) = test("slow-panic:5000000");
    assert!(!ok, "{stdout}");
    assert!(stdout.contains("fallbacks: trap 5,"), "{stdout}");
    assert!(stderr.contains("misbehave: slow panic after"), "{stderr}");
    // Ten times the work, then an answer: too late, a deadline however it ends. The budget
    // is only looked at when the epoch ticker (a thread sleeping 1 ms) runs; on a loaded
    // machine it was once held off for the whole of a 6 ms pick, which then answered unseen.
    // 50 M rounds (60 to 200 ms) leave it that long to run, and end within the grace or not.
    let (ok, stdout, _) = test("busy:50000000");
    assert!(!ok, "{stdout}");
    assert!(stdout.contains("fallbacks: deadline 5,"), "{stdout}");
}

/// The `keys` line: (keys on the backend that left, of them moved, others moved).
fn key_moves(stdout: &str) -> (u64, u64, u64) {
    let line = stdout
        .lines()
        .find(|line| line.starts_with("keys:"))
        .unwrap_or_else(|| panic!("no keys line in:\n{stdout}"));
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit() && c != '.')
        .filter(|word| !word.is_empty() && !word.contains('.'))
        .filter_map(|word| word.parse().ok())
        .collect();
    // "of 1000 keys, 324 (32.4%) were on b2, ..., and 324 of them moved; 0 (0.0%) of the others"
    (numbers[1], numbers[3], numbers[4])
}

#[test]
fn the_strategy_scenarios_show_each_plugins_point() {
    // keys: consistent hashing moves only the leaving backend's keys; round-robin moves others.
    let hash = plugin("consistent_hash").display().to_string();
    let args = ["--scenario", "keys", "--requests", "4000", "--config"];
    let (ok, stdout, stderr) = plugin_test(
        &[
            &[hash.as_str()][..],
            &args,
            &["key=header:x-user bound=off"],
        ]
        .concat(),
    );
    assert!(ok, "{stderr}");
    let (on_leaving, moved, others) = key_moves(&stdout);
    assert!(on_leaving > 200, "{stdout}");
    assert_eq!((moved, others), (on_leaving, 0), "{stdout}");
    let rotation = plugin("round_robin").display().to_string();
    let (ok, stdout, _) = plugin_test(&[&rotation, "--scenario", "keys"]);
    assert!(ok);
    assert!(key_moves(&stdout).2 > 100, "{stdout}");

    // canary: the tagged backend gets the share.
    let canary = plugin("canary").display().to_string();
    let (ok, stdout, _) = plugin_test(&[&canary, "--scenario", "canary", "--config", "share=10"]);
    assert!(ok, "{stdout}");
    assert_eq!(requests(&stdout, "b2"), 1000, "{stdout}");

    // zones: zone a serves, but for the third of the run it is out.
    let locality = plugin("locality").display().to_string();
    let args = [
        "--scenario",
        "zones",
        "--backends",
        "4",
        "--requests",
        "3000",
        "--config",
        "zone=a",
    ];
    let (ok, stdout, _) = plugin_test(&[&[locality.as_str()][..], &args].concat());
    assert!(ok, "{stdout}");
    let got: Vec<u64> = ["b0", "b1", "b2", "b3"]
        .map(|b| requests(&stdout, b))
        .to_vec();
    assert_eq!(got, [1000, 500, 1000, 500], "{stdout}");
}

#[test]
fn the_failure_scenarios_show_which_policies_avoid_a_failing_backend() {
    // failing: b2 answers 503 to 30 % at once; least-conn, seeing it free sooner, sends it more.
    let least_conn = plugin("least_conn").display().to_string();
    let (ok, stdout, _) = plugin_test(&[&least_conn, "--scenario", "failing"]);
    assert!(ok, "{stdout}");
    let b2 = requests(&stdout, "b2");
    assert!(b2 > requests(&stdout, "b0"), "{stdout}");
    assert!(failed(&stdout, "b2") * 100 / b2 >= 20, "{stdout}");
    assert_eq!(failed(&stdout, "b0"), 0, "{stdout}");

    // outage: b2 answers nothing for the middle third. p2c-ewma learns of it from observe;
    // least-conn goes on sending it its share.
    let args = ["--scenario", "outage", "--concurrency", "6"];
    let (ok, lc, _) = plugin_test(&[&[least_conn.as_str()][..], &args].concat());
    assert!(ok, "{lc}");
    let p2c = plugin("p2c_ewma").display().to_string();
    let (ok, p2c_out, _) = plugin_test(&[&[p2c.as_str()][..], &args].concat());
    assert!(ok, "{p2c_out}");
    println!("{lc}\n{p2c_out}");
    assert!(failed(&lc, "b2") > 500, "{lc}");
    assert!(failed(&p2c_out, "b2") * 10 < failed(&lc, "b2"), "{p2c_out}");
}
