//! Hot reload under load: the plugin file replaced (atomic rename, or written in place in two
//! chunks), garbage and a component of another world refused while the old plugin serves,
//! `POST /reload` with good and bad configs, and backends removed and added live.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vane_e2e::backend::backend;
use vane_e2e::files::scratch_folder;
use vane_e2e::load::Flood;
use vane_e2e::plugins::plugin;
use vane_e2e::{Backend, Vane};

/// A fresh folder for one test's config and plugin files.
fn folder(test: &str) -> PathBuf {
    scratch_folder(&format!("reload-{test}"))
}

/// Config text with the admin API, the plugin at `policy.wasm` (if `plugin`) and `backends`.
fn config_text(plugin: bool, backends: &[&Backend], extra: &str) -> String {
    let mut text = String::from("listen = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n");
    if plugin {
        text.push_str("[policy]\nplugin = \"policy.wasm\"\npick_timeout = \"100ms\"\n");
    }
    text.push_str(extra);
    for backend in backends {
        text.push_str(&backend.toml(1));
    }
    text
}

fn sha256(path: &Path) -> String {
    let output = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)[..64].to_owned()
}

/// Waits until `/policy` says `check`; fails after 15 s (a debug build of wasmtime compiles
/// slowly when every test runs at once).
async fn wait_for_policy(vane: &Vane, what: &str, check: impl Fn(&serde_json::Value) -> bool) {
    let started = Instant::now();
    loop {
        let policy = vane.policy_json().await;
        if check(&policy) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "waited 15 s for {what}; /policy says {policy}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Two fast backends and one that answers after 200 ms, with round-robin at `policy.wasm`.
async fn fast_fast_slow(dir: &Path) -> ([Backend; 3], Vane) {
    let backends = [
        backend("a").start().await,
        backend("b").start().await,
        backend("slow")
            .delay(Duration::from_millis(200))
            .start()
            .await,
    ];
    std::fs::copy(plugin("round_robin"), dir.join("policy.wasm")).unwrap();
    let [a, b, slow] = &backends;
    let path = dir.join("vane.toml");
    std::fs::write(&path, config_text(true, &[a, b, slow], "")).unwrap();
    let vane = Vane::start_file(&path).await.unwrap();
    (backends, vane)
}

/// Runs load for `time` and tallies it.
async fn under_load(vane: &Vane, time: Duration) -> vane_e2e::load::Tally {
    let flood = Flood::start(vane, 8);
    tokio::time::sleep(time).await;
    flood.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapping_round_robin_for_least_conn_by_atomic_rename_drops_nothing() {
    let dir = folder("rename");
    let (_backends, vane) = fast_fast_slow(&dir).await;
    let before = under_load(&vane, Duration::from_millis(1000)).await;

    let flood = Flood::start(&vane, 8);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let staged = dir.join(".policy.wasm.new");
    std::fs::copy(plugin("least_conn"), &staged).unwrap();
    std::fs::rename(&staged, dir.join("policy.wasm")).unwrap();
    let least_conn = sha256(&plugin("least_conn"));
    wait_for_policy(&vane, "least-conn", |p| p["plugin"]["sha256"] == least_conn).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let during = flood.stop().await;
    let after = under_load(&vane, Duration::from_millis(1000)).await;

    println!(
        "rename swap: before {} sent, slow share {:.1}%; during {} sent, {} failed; after {} sent, slow share {:.1}%",
        before.sent(),
        before.share("slow") * 100.0,
        during.sent(),
        during.failed(),
        after.sent(),
        after.share("slow") * 100.0
    );
    assert_eq!(before.failed() + during.failed() + after.failed(), 0);
    assert!(
        (before.share("slow") - 1.0 / 3.0).abs() < 0.05,
        "{before:?}"
    );
    assert!(after.share("slow") < 0.1, "{after:?}");
    assert_eq!(vane.policy_json().await["generation"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_written_in_place_in_two_chunks_is_swapped_once_complete() {
    let dir = folder("in-place");
    let (_backends, vane) = fast_fast_slow(&dir).await;
    let flood = Flood::start(&vane, 8);
    let bytes = std::fs::read(plugin("least_conn")).unwrap();
    let (first, second) = bytes.split_at(bytes.len() / 2);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(dir.join("policy.wasm"))
        .unwrap();
    file.write_all(first).unwrap();
    file.flush().unwrap();
    // Longer than the watcher's quiet period: it reads the half-written file and refuses it.
    tokio::time::sleep(Duration::from_millis(600)).await;
    file.write_all(second).unwrap();
    file.flush().unwrap();
    drop(file);
    let least_conn = sha256(&plugin("least_conn"));
    wait_for_policy(&vane, "least-conn", |p| p["plugin"]["sha256"] == least_conn).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let during = flood.stop().await;
    let policy = vane.policy_json().await;
    println!(
        "in-place swap: {} sent, {} failed; reloads {}",
        during.sent(),
        during.failed(),
        policy["reloads"]
    );
    assert_eq!(during.failed(), 0, "{during:?}");
    assert_eq!(policy["reloads"]["succeeded"], 1, "{policy}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_a_component_of_another_world_are_refused_and_the_old_plugin_serves() {
    let dir = folder("refused");
    let (_backends, vane) = fast_fast_slow(&dir).await;
    let round_robin = sha256(&plugin("round_robin"));
    let flood = Flood::start(&vane, 4);

    std::fs::write(dir.join("policy.wasm"), b"this is not wasm at all").unwrap();
    wait_for_policy(&vane, "a refusal", |p| p["reloads"]["refused"] == 1).await;
    let policy = vane.policy_json().await;
    let error = policy["reloads"]["last_error"]["message"].as_str().unwrap();
    assert!(error.contains("not a WebAssembly file"), "{error}");
    assert_eq!(policy["plugin"]["sha256"], round_robin);

    std::fs::copy(plugin("other_world"), dir.join("policy.wasm")).unwrap();
    wait_for_policy(&vane, "a second refusal", |p| p["reloads"]["refused"] == 2).await;
    let policy = vane.policy_json().await;
    let error = policy["reloads"]["last_error"]["message"].as_str().unwrap();
    assert!(error.contains("does not fit vane's world"), "{error}");
    assert_eq!(policy["plugin"]["sha256"], round_robin);
    assert_eq!(policy["generation"], 1);

    let during = flood.stop().await;
    println!(
        "refused swaps: {} sent, {} failed",
        during.sent(),
        during.failed()
    );
    assert_eq!(during.failed(), 0, "{during:?}");
    vane.assert_no_fallbacks();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_naming_another_plugin_file_watches_that_file_from_then_on() {
    let dir = folder("moved");
    let a = backend("a").start().await;
    let b = backend("b").start().await;
    std::fs::copy(plugin("round_robin"), dir.join("policy.wasm")).unwrap();
    let path = dir.join("vane.toml");
    let text = config_text(true, &[&a, &b], "");
    std::fs::write(&path, &text).unwrap();
    let vane = Vane::start_file(&path).await.unwrap();

    // The new file is in another folder, which nothing watched before the reload.
    let moved = dir.join("next").join("least.wasm");
    std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
    std::fs::copy(plugin("least_conn"), &moved).unwrap();
    std::fs::write(&path, text.replace("policy.wasm", "next/least.wasm")).unwrap();
    let (status, body) = vane.admin_post("/reload").await;
    assert_eq!(status, 200, "{body}");

    // Written the moment the reload is answered: the new file is watched already.
    std::fs::write(&moved, b"this is not wasm at all").unwrap();
    wait_for_policy(&vane, "a refusal", |p| p["reloads"]["refused"] == 1).await;
    let policy = vane.policy_json().await;
    assert_eq!(policy["plugin"]["sha256"], sha256(&plugin("least_conn")));

    std::fs::copy(plugin("round_robin"), &moved).unwrap();
    wait_for_policy(&vane, "the swap", |p| p["reloads"]["succeeded"] == 2).await;
    let policy = vane.policy_json().await;
    assert_eq!(policy["plugin"]["sha256"], sha256(&plugin("round_robin")));
    let served = under_load(&vane, Duration::from_millis(300)).await;
    assert_eq!(served.failed(), 0, "{served:?}");
    assert_eq!(
        served.served.len(),
        2,
        "round-robin over a and b: {served:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_reload_answers_what_changed_or_why_not() {
    let dir = folder("post");
    let a = backend("a").start().await;
    let path = dir.join("vane.toml");
    std::fs::copy(plugin("round_robin"), dir.join("policy.wasm")).unwrap();
    // No watching: only POST /reload may change anything.
    let text = config_text(true, &[&a], "watch = false\n");
    std::fs::write(&path, &text).unwrap();
    let vane = Vane::start_file(&path).await.unwrap();
    let flood = Flood::start(&vane, 4);

    std::fs::copy(plugin("least_conn"), dir.join("least.wasm")).unwrap();
    std::fs::write(&path, text.replace("policy.wasm", "least.wasm")).unwrap();
    let (status, body) = vane.admin_post("/reload").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("least.wasm") && body.contains("replaces"),
        "{body}"
    );

    std::fs::write(dir.join("bad.wasm"), b"\0asm garbage").unwrap();
    std::fs::write(&path, text.replace("policy.wasm", "bad.wasm")).unwrap();
    let (status, body) = vane.admin_post("/reload").await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("bad.wasm"), "{body}");

    std::fs::write(
        &path,
        text.replace("admin = \"127.0.0.1:0\"", "admin = \"127.0.0.1:1\""),
    )
    .unwrap();
    let (status, body) = vane.admin_post("/reload").await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body.contains("admin changed, which needs a restart"),
        "{body}"
    );

    std::fs::write(&path, "listen = \n").unwrap();
    let (status, body) = vane.admin_post("/reload").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("vane.toml:1"), "{body}");

    let during = flood.stop().await;
    let policy = vane.policy_json().await;
    assert!(
        policy["plugin"]["path"]
            .as_str()
            .unwrap()
            .ends_with("least.wasm"),
        "{policy}"
    );
    assert_eq!(policy["reloads"]["succeeded"], 1);
    assert_eq!(policy["reloads"]["refused"], 3);
    assert_eq!(during.failed(), 0, "{during:?}");
    assert_eq!(vane.admin_get("/reload").await.0, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_and_adding_a_backend_under_load_drops_nothing() {
    let dir = folder("backends");
    let [a, b, c] = [
        backend("a").start().await,
        backend("b").start().await,
        backend("c").start().await,
    ];
    let path = dir.join("vane.toml");
    std::fs::copy(plugin("least_conn"), dir.join("policy.wasm")).unwrap();
    std::fs::write(&path, config_text(true, &[&a, &b, &c], "")).unwrap();
    let vane = Vane::start_file(&path).await.unwrap();
    let generation = || async { vane.backends_json().await["generation"].as_u64().unwrap() };
    let first = generation().await;

    let flood = Flood::start(&vane, 8);
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::write(&path, config_text(true, &[&a, &b], "")).unwrap();
    let (status, body) = vane.admin_post("/reload").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("backend c removed"), "{body}");
    let second = generation().await;
    let removed_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let removed = flood.stop().await;
    // Requests already sent to c finish there; none sent after the reload answered go to it.
    assert_eq!(
        removed.served_by_since("c", removed_at),
        0,
        "c served requests sent after it was removed: {removed:?}"
    );

    std::fs::write(&path, config_text(true, &[&a, &b, &c], "")).unwrap();
    let (status, body) = vane.admin_post("/reload").await;
    assert_eq!(status, 200, "{body}");
    let added = under_load(&vane, Duration::from_millis(500)).await;
    println!(
        "backend removal: {} sent, {} failed; after adding it back c served {:.1}%",
        removed.sent(),
        removed.failed(),
        added.share("c") * 100.0
    );
    assert_eq!(removed.failed() + added.failed(), 0);
    assert!(added.share("c") > 0.2, "{added:?}");
    // Each set swapped in has a generation of its own, never one seen before.
    let third = generation().await;
    assert!(first < second && second < third, "{first} {second} {third}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_plugins_are_cached_by_content_and_reused() {
    let dir = folder("cache");
    let a = backend("a").start().await;
    std::fs::copy(plugin("least_conn"), dir.join("policy.wasm")).unwrap();
    let path = dir.join("vane.toml");
    let text = config_text(true, &[&a], "cache_dir = \"compiled\"\n");
    std::fs::write(&path, &text).unwrap();

    let mut loads = Vec::new();
    for _ in 0..2 {
        let started = Instant::now();
        let vane = Vane::start_file(&path).await.unwrap();
        loads.push(started.elapsed());
        assert_eq!(vane.client().get("/").await.unwrap().status, 200);
        vane.stop().await;
    }
    let entries: Vec<String> = std::fs::read_dir(dir.join("compiled"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let sha = sha256(&plugin("least_conn"));
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(
        entries[0].starts_with(&sha) && entries[0].ends_with(".cwasm"),
        "{entries:?}"
    );
    println!(
        "start with a compile: {:?}; start from the cache: {:?} (debug build)",
        loads[0], loads[1]
    );
}

/// `component` with a `component-name` section naming it `name` appended, as `wasm-tools
/// metadata add --name` leaves it (a custom section may come last).
fn named(component: &[u8], name: &str) -> Vec<u8> {
    let mut subsection = vec![name.len() as u8];
    subsection.extend_from_slice(name.as_bytes());
    let mut section = vec![b"component-name".len() as u8];
    section.extend_from_slice(b"component-name");
    section.extend_from_slice(&[0, subsection.len() as u8]);
    section.extend_from_slice(&subsection);
    let mut bytes = component.to_vec();
    bytes.push(0);
    bytes.push(section.len() as u8);
    bytes.extend_from_slice(&section);
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swapped_plugin_file_shows_the_new_components_own_name() {
    let dir = folder("named");
    let (_backends, vane) = fast_fast_slow(&dir).await;
    // An unnamed component is named by its file.
    assert_eq!(vane.policy_json().await["plugin"]["name"], "policy");

    let bytes = named(
        &std::fs::read(plugin("least_conn")).unwrap(),
        "fewest-failures",
    );
    let staged = dir.join(".policy.wasm.new");
    std::fs::write(&staged, &bytes).unwrap();
    std::fs::rename(&staged, dir.join("policy.wasm")).unwrap();
    wait_for_policy(&vane, "the swap", |p| p["generation"] == 2).await;
    let policy = vane.policy_json().await;
    assert_eq!(policy["plugin"]["name"], "fewest-failures", "{policy}");

    // Unnamed behind a symlink, it is named by the file the link points to.
    std::fs::copy(plugin("round_robin"), dir.join("fewest-v3.wasm")).unwrap();
    std::os::unix::fs::symlink("fewest-v3.wasm", &staged).unwrap();
    std::fs::rename(&staged, dir.join("policy.wasm")).unwrap();
    wait_for_policy(&vane, "the second swap", |p| p["generation"] == 3).await;
    let policy = vane.policy_json().await;
    assert_eq!(policy["plugin"]["name"], "fewest-v3", "{policy}");
}

/// Lays out `files` as kubelet mounts a ConfigMap in `dir`: the files in a timestamped folder
/// `..NAME`, a `..data` symlink to it, and each file a symlink through `..data`. A second call
/// swaps to a new folder as kubelet updates one: a `..data_tmp` symlink renamed over `..data`,
/// then the old folder removed.
fn configmap(dir: &Path, name: &str, files: &[(&str, &[u8])]) {
    let folder = dir.join(format!("..{name}"));
    std::fs::create_dir(&folder).unwrap();
    for (file, bytes) in files {
        std::fs::write(folder.join(file), bytes).unwrap();
        let link = dir.join(file);
        if link.symlink_metadata().is_err() {
            std::os::unix::fs::symlink(format!("..data/{file}"), link).unwrap();
        }
    }
    let old = std::fs::read_link(dir.join("..data")).ok();
    std::os::unix::fs::symlink(format!("..{name}"), dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    if let Some(old) = old {
        std::fs::remove_dir_all(dir.join(old)).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configmap_update_reloads_the_config_and_the_plugin() {
    let dir = folder("configmap");
    let (a, b) = (backend("a").start().await, backend("b").start().await);
    let round_robin = std::fs::read(plugin("round_robin")).unwrap();
    let least_conn = std::fs::read(plugin("least_conn")).unwrap();
    // A top-level key, before the tables.
    let first = format!("watch_config = true\n{}", config_text(true, &[&a], ""));
    configmap(
        &dir,
        "2026_11_29_1",
        &[
            ("vane.toml", first.as_bytes()),
            ("policy.wasm", &round_robin),
        ],
    );
    let vane = Vane::start_file(&dir.join("vane.toml")).await.unwrap();
    assert_eq!(
        vane.backends_json().await["backends"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // kubelet's update: a new backend in the config, least-conn as the plugin.
    let second = format!("watch_config = true\n{}", config_text(true, &[&a, &b], ""));
    configmap(
        &dir,
        "2026_11_29_2",
        &[
            ("vane.toml", second.as_bytes()),
            ("policy.wasm", &least_conn),
        ],
    );
    let least_conn_sha = sha256(&plugin("least_conn"));
    wait_for_policy(&vane, "the plugin of the new ConfigMap", |p| {
        p["plugin"]["sha256"] == least_conn_sha
    })
    .await;
    let started = Instant::now();
    while vane.backends_json().await["backends"]
        .as_array()
        .unwrap()
        .len()
        != 2
    {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the config was not reloaded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_linked_from_another_folder_reloads_when_its_target_is_replaced() {
    let dir = folder("linked");
    let elsewhere = folder("linked-plugins");
    let a = backend("a").start().await;
    let target = elsewhere.join("current.wasm");
    std::fs::copy(plugin("round_robin"), &target).unwrap();
    // policy.wasm -> /absolute/path/current.wasm, in a folder of its own.
    std::os::unix::fs::symlink(&target, dir.join("policy.wasm")).unwrap();
    let path = dir.join("vane.toml");
    std::fs::write(&path, config_text(true, &[&a], "")).unwrap();
    let vane = Vane::start_file(&path).await.unwrap();

    // The target is replaced where it is (atomic rename); the link is not touched.
    let staged = elsewhere.join("next.wasm");
    std::fs::copy(plugin("least_conn"), &staged).unwrap();
    std::fs::rename(&staged, &target).unwrap();
    let least_conn_sha = sha256(&plugin("least_conn"));
    wait_for_policy(&vane, "the replaced target", |p| {
        p["plugin"]["sha256"] == least_conn_sha
    })
    .await;
}
