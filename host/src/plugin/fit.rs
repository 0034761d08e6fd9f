//! Whether a component fits vane's `balancer` world, explained the way a plugin author can act
//! on: a version built for another vane, a missing export or function, a function whose
//! signature differs from `wit/balancer.wit`, an import vane does not provide. wasmtime's own
//! linking remains the final word; this only finds the words.

use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::component::types::{ComponentFunc, ComponentItem, Type};

/// The interface a plugin must export.
const POLICY: &str = "policy";

/// The WASI 0.2 packages vane links (granting nothing but clocks and random numbers).
const WASI_PACKAGES: [&str; 6] = ["io", "clocks", "random", "cli", "filesystem", "sockets"];

/// A function of the policy interface as `wit/balancer.wit` declares it.
struct Expected {
    /// The function's name.
    name: &'static str,
    /// Each parameter's name and kind (`record`, `list`, `u32`, ...).
    params: &'static [(&'static str, &'static str)],
    /// The result's kind, if the function returns one.
    result: Option<&'static str>,
    /// The whole signature as the WIT writes it.
    wit: &'static str,
}

// `PACKAGE_VERSION`, `HOST_INTERFACES` and `FUNCTIONS`, which build.rs reads from `wit/`.
include!(concat!(env!("OUT_DIR"), "/contract.rs"));

/// Every way `component` does not fit vane's world; empty if it fits by name and shape. A
/// component built for another version of the package gets that one sentence: whatever else
/// differs follows from it.
pub(crate) fn problems(engine: &Engine, component: &Component) -> Vec<String> {
    let ty = component.component_type();
    if let Some(problem) = other_version(engine, component) {
        return vec![problem];
    }
    let mut problems = Vec::new();
    for (name, _) in ty.imports(engine) {
        if let Some(problem) = import_problem(name) {
            problems.push(problem);
        }
    }
    let policy = format!("vane:balancer/{POLICY}@{PACKAGE_VERSION}");
    match ty.get_export(engine, &policy).map(|export| export.ty) {
        Some(ComponentItem::ComponentInstance(instance)) => {
            for expected in &FUNCTIONS {
                match instance.get_export(engine, expected.name).map(|e| e.ty) {
                    Some(ComponentItem::ComponentFunc(found)) => {
                        if let Some(problem) = signature_problem(expected, &found) {
                            problems.push(problem);
                        }
                    }
                    Some(_) => problems.push(format!(
                        "its {policy} exports `{}`, but not as a function",
                        expected.name
                    )),
                    None => problems.push(format!(
                        "its {policy} lacks the function `{}: {}`",
                        expected.name, expected.wit
                    )),
                }
            }
        }
        Some(_) => problems.push(format!("it exports {policy}, but not as an interface")),
        None => {
            let exports: Vec<&str> = ty.exports(engine).map(|(name, _)| name).collect();
            let other_version = exports
                .iter()
                .find_map(|name| name.strip_prefix("vane:balancer/policy@"));
            problems.push(match other_version {
                Some(version) => format!(
                    "it is built for vane:balancer@{version}, but this vane speaks \
                     vane:balancer@{PACKAGE_VERSION}: rebuild it against this vane's wit/"
                ),
                None if exports.is_empty() => {
                    format!("it does not export {policy}; it exports nothing")
                }
                None => format!(
                    "it does not export {policy}; it exports {}",
                    exports.join(", ")
                ),
            });
        }
    }
    problems.dedup();
    problems
}

/// The sentence for a component built for another version of vane's package, if it is: by the
/// policy it exports, or else by the first of vane's interfaces it imports.
fn other_version(engine: &Engine, component: &Component) -> Option<String> {
    let ty = component.component_type();
    let rebuild = |version: &str, imported: Option<&str>| {
        let imports = imported.map_or(String::new(), |name| format!(" (it imports {name})"));
        format!(
            "it is built for vane:balancer@{version}{imports}, but this vane speaks \
             vane:balancer@{PACKAGE_VERSION}: rebuild it against this vane's wit/"
        )
    };
    let exported = ty
        .exports(engine)
        .find_map(|(name, _)| name.strip_prefix("vane:balancer/policy@"))
        .filter(|version| *version != PACKAGE_VERSION);
    if let Some(version) = exported {
        return Some(rebuild(version, None));
    }
    ty.imports(engine).find_map(|(name, _)| {
        let (path, version) = name.split_once('@')?;
        (path.starts_with("vane:balancer/") && version != PACKAGE_VERSION)
            .then(|| rebuild(version, Some(name)))
    })
}

/// Why an import cannot be satisfied, if it cannot.
fn import_problem(name: &str) -> Option<String> {
    let (path, version) = name.split_once('@').unwrap_or((name, ""));
    let (package, interface) = path.split_once('/').unwrap_or((path, ""));
    match package {
        "vane:balancer" if version == PACKAGE_VERSION && HOST_INTERFACES.contains(&interface) => {
            None
        }
        _ if package
            .strip_prefix("wasi:")
            .is_some_and(|wasi| WASI_PACKAGES.contains(&wasi))
            && version.starts_with("0.2.") =>
        {
            None
        }
        _ => Some(format!(
            "it imports {name}, which vane does not provide (a plugin may import \
             vane:balancer/host@{PACKAGE_VERSION} and WASI 0.2's io, clocks, random, cli, \
             filesystem and sockets, which grant nothing but clocks and random numbers)"
        )),
    }
}

/// How `found` differs from the expected function, in names, arity and kinds of types.
fn signature_problem(expected: &Expected, found: &ComponentFunc) -> Option<String> {
    let params: Vec<(&str, &'static str)> = found.params().map(|(n, ty)| (n, kind(&ty))).collect();
    let results: Vec<&'static str> = found.results().map(|ty| kind(&ty)).collect();
    let fits = params.as_slice() == expected.params && results.first().copied() == expected.result;
    if fits {
        return None;
    }
    Some(format!(
        "its function `{}` is `{}`, but vane calls `{}`",
        expected.name,
        render(found),
        expected.wit
    ))
}

/// A function type written in WIT's style, with composite types named by kind.
fn render(func: &ComponentFunc) -> String {
    let params: Vec<String> = func
        .params()
        .map(|(name, ty)| format!("{name}: {}", kind(&ty)))
        .collect();
    let results: Vec<&str> = func.results().map(|ty| kind(&ty)).collect();
    match results.as_slice() {
        [] => format!("func({})", params.join(", ")),
        [one] => format!("func({}) -> {one}", params.join(", ")),
        many => format!("func({}) -> ({})", params.join(", "), many.join(", ")),
    }
}

/// The kind of a component type, as WIT spells it.
fn kind(ty: &Type) -> &'static str {
    match ty {
        Type::Bool => "bool",
        Type::S8 => "s8",
        Type::U8 => "u8",
        Type::S16 => "s16",
        Type::U16 => "u16",
        Type::S32 => "s32",
        Type::U32 => "u32",
        Type::S64 => "s64",
        Type::U64 => "u64",
        Type::Float32 => "f32",
        Type::Float64 => "f64",
        Type::Char => "char",
        Type::String => "string",
        Type::List(_) | Type::FixedLengthList(_) => "list",
        Type::Map(_) => "map",
        Type::Record(_) => "record",
        Type::Tuple(_) => "tuple",
        Type::Variant(_) => "variant",
        Type::Enum(_) => "enum",
        Type::Option(_) => "option",
        Type::Result(_) => "result",
        Type::Flags(_) => "flags",
        Type::Own(_) => "own",
        Type::Borrow(_) => "borrow",
        Type::Future(_) => "future",
        Type::Stream(_) => "stream",
        Type::ErrorContext => "error-context",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_vane_provides_pass_and_others_are_named() {
        let ours = |interface: &str| format!("vane:balancer/{interface}@{PACKAGE_VERSION}");
        for fine in [
            ours("host"),
            ours("types"),
            "wasi:io/streams@0.2.6".into(),
            "wasi:cli/stdout@0.2.0".into(),
        ] {
            assert_eq!(import_problem(&fine), None, "{fine}");
        }
        // Refused here too, though `problems` says it once, as the version it was built for.
        assert!(import_problem("vane:balancer/host@0.1.0").is_some());
        for foreign in [
            ours("secrets"),
            "wasi:http/types@0.2.0".into(),
            "wasi:io/streams@0.3.0".into(),
        ] {
            let problem = import_problem(&foreign).unwrap();
            assert!(problem.contains("which vane does not provide"), "{problem}");
        }
    }
}

/// Properties of the import check over generated import names: only vane's own interfaces of
/// this version and WASI 0.2 packages vane grants pass, and a refusal always names the import.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn import_name() -> impl Strategy<Value = String> {
        let package = prop_oneof![
            Just("vane:balancer".to_owned()),
            proptest::sample::select(&WASI_PACKAGES[..]).prop_map(|p| format!("wasi:{p}")),
            Just("wasi:http".to_owned()),
            "[a-z]{1,5}:[a-z]{1,5}",
        ];
        let interface = prop_oneof![
            proptest::sample::select(&HOST_INTERFACES[..]).prop_map(str::to_owned),
            "[a-z-]{0,8}",
        ];
        let version = prop_oneof![
            Just(PACKAGE_VERSION.to_owned()),
            "0\\.[0-9]\\.[0-9]{1,2}",
            "[0-9.]{0,6}",
        ];
        (package, interface, version, any::<bool>()).prop_map(
            |(package, interface, version, versioned)| {
                if versioned {
                    format!("{package}/{interface}@{version}")
                } else {
                    format!("{package}/{interface}")
                }
            },
        )
    }

    proptest! {
        #[test]
        fn only_vanes_interfaces_and_granted_wasi_pass(name in import_name()) {
            let (path, version) = name.split_once('@').unwrap_or((&name, ""));
            let (package, interface) = path.split_once('/').unwrap_or((path, ""));
            let ours = package == "vane:balancer"
                && version == PACKAGE_VERSION
                && HOST_INTERFACES.contains(&interface);
            let granted_wasi = package
                .strip_prefix("wasi:")
                .is_some_and(|wasi| WASI_PACKAGES.contains(&wasi))
                && version.starts_with("0.2.");
            match import_problem(&name) {
                None => prop_assert!(ours || granted_wasi, "{} passed", name),
                Some(problem) => {
                    prop_assert!(!ours && !granted_wasi, "{} refused", name);
                    prop_assert!(problem.contains(&name), "{}", problem);
                }
            }
        }

        #[test]
        fn no_name_makes_the_check_panic(name in "\\PC{0,40}") {
            let _ = import_problem(&name);
        }
    }
}

/// The fuzz target for the fit check: whatever component the bytes make, telling how it does
/// not fit vane's world never panics (bytes that are no component are refused by wasmtime).
#[cfg(fuzzing)]
pub(crate) fn fuzz(data: &[u8]) {
    use std::sync::OnceLock;
    static ENGINE: OnceLock<super::PluginEngine> = OnceLock::new();
    let engine = &ENGINE
        .get_or_init(|| super::PluginEngine::new().expect("an engine"))
        .engine;
    if let Ok(component) = Component::new(engine, data) {
        let _ = problems(engine, &component);
    }
}
