//! `deploy/kubernetes/`: its `vane.toml` is a config vane accepts, and the manifests agree
//! with it: the probes ask the admin listener's `/ready` and `/live`, the ports are the ones
//! vane listens on, the pod's kill deadline covers preStop, the shutdown grace and the drain,
//! and the ConfigMap carries the plugin the config names.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use vane::config::{Config, GroupSource};
use vane_e2e::files::scratch_folder;

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/kubernetes")
        .join(file)
}

fn read(file: &str) -> String {
    std::fs::read_to_string(deploy(file)).unwrap_or_else(|err| panic!("{file}: {err}"))
}

/// The number after `key:` on the manifest's first line holding it.
fn number_after(manifest: &str, key: &str) -> u64 {
    manifest
        .lines()
        .find_map(|line| line.trim().strip_prefix(key)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} with a number"))
}

/// `deploy/kubernetes/vane.toml`, checked as vane checks it, with the admin token file it
/// names (a Secret in the pod) written to a folder of the test's own.
fn config() -> Config {
    let folder = scratch_folder("kubernetes-config");
    let text = read("vane.toml");
    let token = folder.join("admin.token");
    std::fs::write(&token, "0123456789abcdef0123456789abcdef\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let text = text.replace(
        "\"/etc/vane-token/admin.token\"",
        &format!("{:?}", token.display().to_string()),
    );
    assert!(
        text.contains(&token.display().to_string()),
        "the token path moved"
    );
    Config::parse(&text, &deploy("vane.toml"), Path::new("/etc/vane"))
        .unwrap_or_else(|err| panic!("deploy/kubernetes/vane.toml: {err}"))
}

#[test]
fn the_config_is_one_vane_accepts_and_follows_the_headless_service() {
    let config = config();
    assert!(config.watch_config, "a ConfigMap update must reload");
    assert_eq!(
        config.policy.as_ref().map(|policy| policy.plugin.clone()),
        Some(PathBuf::from("/etc/vane/least-conn.wasm"))
    );
    let service = read("backends-headless-service.yaml");
    assert!(service.contains("clusterIP: None"), "{service}");
    match &config.groups[..] {
        [group] => match &group.source {
            GroupSource::Dns { host, port } => {
                assert!(host.starts_with("backends.vane.svc."), "{host}");
                assert_eq!(number_after(&service, "targetPort:"), u64::from(*port));
            }
            other => panic!("the group follows {other}"),
        },
        groups => panic!("one group expected, not {groups:?}"),
    }
}

#[test]
fn the_deployment_agrees_with_the_config() {
    let config = config();
    let deployment = read("deployment.yaml");
    let admin = config.admin.expect("the probes need the admin listener");
    assert_eq!(
        number_after(&deployment, "containerPort:"),
        u64::from(config.listeners[0].address.port())
    );
    let ports: Vec<u64> = deployment
        .lines()
        .filter_map(|line| {
            line.trim()
                .strip_prefix("containerPort:")?
                .trim()
                .parse()
                .ok()
        })
        .collect();
    assert!(ports.contains(&u64::from(admin.port())), "{ports:?}");
    for probe in ["path: /ready", "path: /live"] {
        assert!(deployment.contains(probe), "no probe with {probe}");
    }
    assert!(
        deployment.contains("port: admin"),
        "the probes go to the admin port"
    );
    assert!(
        !deployment
            .lines()
            .any(|line| line.trim().starts_with("subPath:")),
        "a subPath mount never sees a ConfigMap update"
    );

    let grace = Duration::from_secs(number_after(&deployment, "terminationGracePeriodSeconds:"));
    let pre_stop = Duration::from_secs(number_after(&deployment, "seconds:"));
    let needed = pre_stop + config.proxy.shutdown_grace + config.proxy.drain_timeout;
    assert!(
        grace > needed,
        "terminationGracePeriodSeconds {grace:?} must cover preStop {pre_stop:?}, shutdown_grace \
         and drain_timeout: {needed:?}"
    );
}

#[test]
fn the_configmap_carries_the_config_and_the_plugin_it_names() {
    let config = config();
    let kustomization = read("kustomization.yaml");
    let plugin = config.policy.unwrap().plugin;
    let plugin = plugin.file_name().unwrap().to_str().unwrap();
    for file in ["vane.toml", plugin] {
        assert!(
            kustomization.contains(&format!("- {file}")),
            "{file} is not in the ConfigMap"
        );
    }
    assert!(kustomization.contains("disableNameSuffixHash: true"));
    for line in kustomization.lines() {
        if let Some(file) = line.trim().strip_prefix("- ")
            && file.ends_with(".yaml")
        {
            assert!(
                deploy(file).is_file(),
                "kustomization.yaml lists {file}, which is missing"
            );
        }
    }
}
