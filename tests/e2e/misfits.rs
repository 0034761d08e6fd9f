//! Components that do not fit vane's world are refused by `vane check` (and at start and
//! reload) with what is wrong, in words a plugin author can act on. The components are written
//! here in the component text format, each wrong in one way.

use vane_e2e::command::run_vane;
use vane_e2e::files::{scratch_folder, write_file};

/// A component that exports `vane:balancer/policy@{version}` with each of `functions` as
/// `func() -> u32`, and imports each instance in `imports`.
fn misfit(version: &str, functions: &[&str], imports: &[&str]) -> Vec<u8> {
    let imports: String = imports
        .iter()
        .map(|name| {
            format!("(import \"{name}\" (instance (export \"get\" (func (result u32)))))\n")
        })
        .collect();
    let exports: String = functions
        .iter()
        .map(|name| format!("(export \"{name}\" (func $f))\n"))
        .collect();
    let text = format!(
        "(component
           {imports}
           (core module $m (func (export \"f\") (result i32) i32.const 0))
           (core instance $i (instantiate $m))
           (func $f (result u32) (canon lift (core func $i \"f\")))
           (instance $policy {exports})
           (export \"vane:balancer/policy@{version}\" (instance $policy)))"
    );
    wat::parse_str(&text).expect("valid component text")
}

const ALL: [&str; 3] = ["configure", "pick", "observe"];

/// Runs `vane check` on a config naming the component `bytes`: fails, and answers stderr.
fn check_refuses(name: &str, bytes: &[u8]) -> String {
    let folder = scratch_folder(&format!("misfit-{name}"));
    let plugin = write_file(&folder, &format!("{name}.wasm"), bytes);
    let text = format!(
        "listen = \"127.0.0.1:8080\"\n[policy]\nplugin = \"{name}.wasm\"\ncache = false\n\
         [[backends]]\nname = \"a\"\naddress = \"127.0.0.1:9001\"\n"
    );
    let config = write_file(&folder, &format!("{name}.toml"), text);
    let ran = run_vane(["check".as_ref(), "--config".as_ref(), config.as_os_str()]);
    let stderr = ran.stderr;
    assert!(!ran.ok, "{name} was accepted: {stderr}");
    assert!(stderr.contains(&plugin.display().to_string()), "{stderr}");
    assert!(stderr.contains("does not fit vane's world"), "{stderr}");
    stderr
}

#[test]
fn a_plugin_built_for_another_version_is_told_to_rebuild() {
    let imports = ["vane:balancer/types@0.2.0", "vane:balancer/host@0.2.0"];
    let stderr = check_refuses("version", &misfit("0.2.0", &ALL, &imports));
    assert!(
        stderr.contains("built for vane:balancer@0.2.0, but this vane speaks vane:balancer@0.3.0"),
        "{stderr}"
    );
    // Said once, not once per import and again for the export.
    assert_eq!(stderr.matches("rebuild it against").count(), 1, "{stderr}");
    let stderr = check_refuses(
        "import-version",
        &misfit("0.3.0", &ALL, &["vane:balancer/host@0.1.0"]),
    );
    assert!(
        stderr.contains("built for vane:balancer@0.1.0 (it imports vane:balancer/host@0.1.0)"),
        "{stderr}"
    );
}

#[test]
fn a_plugin_without_the_policy_export_is_told_what_it_exports() {
    let text = "(component (core module $m) (core instance $i (instantiate $m)) \
                (instance $x) (export \"acme:other/thing@1.0.0\" (instance $x)))";
    let stderr = check_refuses("no-policy", &wat::parse_str(text).unwrap());
    assert!(
        stderr.contains(
            "it does not export vane:balancer/policy@0.3.0; it exports acme:other/thing@1.0.0"
        ),
        "{stderr}"
    );
}

#[test]
fn a_plugin_missing_a_function_is_told_which() {
    let stderr = check_refuses("missing", &misfit("0.3.0", &["configure", "observe"], &[]));
    assert!(
        stderr.contains(
            "lacks the function `pick: func(request: request, states: list<u64>) -> list<u32>`"
        ),
        "{stderr}"
    );
}

#[test]
fn a_plugin_with_a_wrong_signature_is_shown_both_signatures() {
    let stderr = check_refuses("signature", &misfit("0.3.0", &ALL, &[]));
    for expected in [
        "its function `pick` is `func() -> u32`, but vane calls \
         `func(request: request, states: list<u64>) -> list<u32>`",
        "its function `observe` is `func() -> u32`, but vane calls \
         `func(outcomes: list<outcome>)`",
    ] {
        assert!(
            stderr.contains(expected),
            "wanted {expected:?} in:\n{stderr}"
        );
    }
}

#[test]
fn a_plugin_importing_what_vane_does_not_provide_is_told_what_it_may_import() {
    for import in [
        "vane:balancer/secrets@0.3.0",
        "wasi:http/outgoing-handler@0.1.0",
    ] {
        let stderr = check_refuses("import", &misfit("0.3.0", &ALL, &[import]));
        assert!(
            stderr.contains(&format!("it imports {import}, which vane does not provide")),
            "{stderr}"
        );
    }
}
