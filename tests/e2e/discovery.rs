//! Backends found at run time: a host name's addresses and a name's SRV records from a real DNS
//! server on loopback (dnsmasq) whose records the tests change, and a file of backends the
//! tests rewrite; members join and leave under load with no failed request, the TTL sets when
//! a name is looked up again, and a lookup that fails keeps the last members serving.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use vane_e2e::backend::backend;
use vane_e2e::dns::{DnsServer, Records};
use vane_e2e::files::scratch_folder;
use vane_e2e::load::Flood;
use vane_e2e::{Backend, Vane};

/// The names of the backends in vane's set.
async fn members(vane: &Vane) -> BTreeSet<String> {
    let backends = vane.backends_json().await;
    backends["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits until vane's set is `expected`; fails after 15 s.
async fn wait_for_members(vane: &Vane, expected: &[&str]) {
    let expected: BTreeSet<String> = expected.iter().map(|name| (*name).to_owned()).collect();
    let started = Instant::now();
    loop {
        let now = members(vane).await;
        if now == expected {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "waited 15 s for the set {expected:?}; it is {now:?}; /discovery says {}",
            vane.discovery_json().await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `/discovery` says `check` of group `name`, and answers the group as it said
/// it; fails after 15 s.
async fn wait_for_group(
    vane: &Vane,
    name: &str,
    what: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let discovery = vane.discovery_json().await;
        let group = discovery["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|group| group["name"] == name)
            .cloned();
        if let Some(group) = group.filter(|group| check(group)) {
            return group;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "waited 15 s for group {name} to say {what}; /discovery says {discovery}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Three backends on one port at 127.0.0.1, .2 and .3, as a headless Service's pods are
/// one port at several addresses.
async fn three_on_one_port() -> [Backend; 3] {
    let first = backend("one").start().await;
    let port = first.address.port();
    let at = |last: u8| SocketAddr::from(([127, 0, 0, last], port));
    let second = backend("two").start_on(at(2)).await;
    let third = backend("three").start_on(at(3)).await;
    [first, second, third]
}

/// Config for vane with the admin API, asking `dns` for names, looking them up again within
/// `refresh` (min, max), with `backends` entries.
fn config(dns: &DnsServer, refresh: (&str, &str), backends: &str) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\n[discovery]\ndns_servers = [\"{}\"]\n\
         min_refresh = \"{}\"\nmax_refresh = \"{}\"\n\n{backends}",
        dns.address, refresh.0, refresh.1
    )
}

fn dns_group(name: &str, host: &str, port: u16) -> String {
    format!("[[backends]]\nname = \"{name}\"\ndns = \"{host}\"\nport = {port}\n")
}

/// A DNS server saying that `web.vane.test` is 127.0.0.1 and .2 (TTL 1 s), and a vane
/// following that name at `port` (looked up every 100 ms to 1 s), holding both members.
async fn following_web_on_one_and_two(folder: &Path, port: u16) -> (DnsServer, Vane) {
    let dns = DnsServer::start(
        folder,
        &Records {
            hosts: &[
                ("127.0.0.1", "web.vane.test"),
                ("127.0.0.2", "web.vane.test"),
            ],
            srv: &[],
            ttl: 1,
        },
    );
    let text = config(
        &dns,
        ("100ms", "1s"),
        &dns_group("web", "web.vane.test", port),
    );
    let vane = Vane::start(&text).await.unwrap();
    let member = |last: u8| format!("web/127.0.0.{last}:{port}");
    wait_for_members(&vane, &[&member(1), &member(2)]).await;
    (dns, vane)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dns_members_join_and_leave_under_load_with_no_failed_request() {
    let folder = scratch_folder("discovery-dns-load");
    let [one, two, three] = three_on_one_port().await;
    let port = one.address.port();
    let (dns, vane) = following_web_on_one_and_two(&folder, port).await;
    let member = |last: u8| format!("web/127.0.0.{last}:{port}");

    let flood = Flood::start(&vane, 8);
    two.wait_for_hits(20, Duration::from_secs(10)).await;
    // .3 joins and .2 leaves, in one change of the records.
    dns.set_hosts(&[
        ("127.0.0.1", "web.vane.test"),
        ("127.0.0.3", "web.vane.test"),
    ]);
    wait_for_members(&vane, &[&member(1), &member(3)]).await;
    let changed = Instant::now();
    // Counted from the change on, so that both have served since.
    let (one_then, three_then) = (one.hits(), three.hits());
    one.wait_for_hits(one_then + 20, Duration::from_secs(10))
        .await;
    three
        .wait_for_hits(three_then + 20, Duration::from_secs(10))
        .await;
    let tally = flood.stop().await;

    assert_eq!(tally.failed(), 0, "{tally:?}");
    assert_eq!(tally.served_by_since("two", changed), 0, "{tally:?}");
    assert!(tally.served_by_since("one", changed) > 0, "{tally:?}");
    assert!(tally.served_by_since("three", changed) > 0, "{tally:?}");
    let metrics = vane.metrics().await;
    assert_eq!(metrics["vane_discovery_members{group=web}"], 2.0);
    assert!(metrics["vane_discovery_lookups_total{group=web}"] >= 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_records_ttl_sets_when_the_name_is_looked_up_again_within_the_bounds() {
    let folder = scratch_folder("discovery-dns-ttl");
    let [one, _two, _three] = three_on_one_port().await;
    let port = one.address.port();
    let dns = DnsServer::start(
        &folder,
        &Records {
            hosts: &[("127.0.0.1", "web.vane.test")],
            srv: &[],
            ttl: 300,
        },
    );
    let lookup_gap = |group: &serde_json::Value| {
        let at = |key: &str| humantime::parse_rfc3339(group[key].as_str().unwrap()).unwrap();
        at("next_lookup").duration_since(at("last_lookup")).unwrap()
    };

    // A TTL of 300 s within bounds of 100 ms to 1 h: looked up again in 300 s, not before.
    let patient = Vane::start(&config(
        &dns,
        ("100ms", "1h"),
        &dns_group("web", "web.vane.test", port),
    ))
    .await
    .unwrap();
    // Read after a lookup that answered (one that failed would be tried again sooner).
    let answered = |g: &serde_json::Value| g["last_lookup"] == g["last_answer"];
    let group = wait_for_group(&patient, "web", "its TTL", |g| {
        g["ttl_seconds"] == 300 && answered(g)
    })
    .await;
    assert_eq!(lookup_gap(&group), Duration::from_secs(300), "{group}");
    let lookups = group["lookups"].clone();

    // The same records under max_refresh = 1s: looked up every second, so a change shows.
    let bounded = Vane::start(&config(
        &dns,
        ("100ms", "1s"),
        &dns_group("web", "web.vane.test", port),
    ))
    .await
    .unwrap();
    let group = wait_for_group(&bounded, "web", "an answer", answered).await;
    assert_eq!(lookup_gap(&group), Duration::from_secs(1), "{group}");
    dns.set_hosts(&[
        ("127.0.0.1", "web.vane.test"),
        ("127.0.0.2", "web.vane.test"),
    ]);
    let member = |last: u8| format!("web/127.0.0.{last}:{port}");
    wait_for_members(&bounded, &[&member(1), &member(2)]).await;

    // The patient vane, which saw the same change, has not asked since.
    let group = patient.discovery_json().await["groups"][0].clone();
    assert_eq!(group["lookups"], lookups, "{group}");
    assert_eq!(
        members(&patient).await,
        BTreeSet::from([member(1)]),
        "{group}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_dns_server_leaves_the_last_members_serving() {
    let folder = scratch_folder("discovery-dns-stopped");
    let [one, two, _three] = three_on_one_port().await;
    let port = one.address.port();
    let (mut dns, vane) = following_web_on_one_and_two(&folder, port).await;

    dns.stop();
    wait_for_group(&vane, "web", "that it serves the last good answer", |g| {
        g["serving_last_good"] == true && !g["last_error"].is_null()
    })
    .await;
    let flood = Flood::start(&vane, 4);
    let (one_before, two_before) = (one.hits(), two.hits());
    one.wait_for_hits(one_before + 20, Duration::from_secs(10))
        .await;
    two.wait_for_hits(two_before + 20, Duration::from_secs(10))
        .await;
    let tally = flood.stop().await;
    assert_eq!(tally.failed(), 0, "{tally:?}");
    assert_eq!(members(&vane).await.len(), 2);
    let (status, body) = vane.admin_get("/ready").await;
    assert_eq!(status, 200, "{body}");
    let metrics = vane.metrics().await;
    assert_eq!(metrics["vane_discovery_stale{group=web}"], 1.0);
    assert!(metrics["vane_discovery_lookup_failures_total{group=web}"] >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn srv_records_give_each_member_its_port_and_weight() {
    let folder = scratch_folder("discovery-srv");
    let light = backend("light").start().await;
    let heavy = backend("heavy").start().await;
    let fallback = backend("fallback").start().await;
    let dns = DnsServer::start(
        &folder,
        &Records {
            hosts: &[
                ("127.0.0.1", "light.vane.test"),
                ("127.0.0.1", "heavy.vane.test"),
            ],
            srv: &[
                (
                    "_http._tcp.web.vane.test",
                    "light.vane.test",
                    light.address.port(),
                    0,
                    1,
                ),
                (
                    "_http._tcp.web.vane.test",
                    "heavy.vane.test",
                    heavy.address.port(),
                    0,
                    3,
                ),
                // A lower priority (a larger number): used by no one while the others answer.
                (
                    "_http._tcp.web.vane.test",
                    "light.vane.test",
                    fallback.address.port(),
                    1,
                    1,
                ),
            ],
            ttl: 5,
        },
    );
    let group = "[[backends]]\nname = \"web\"\nsrv = \"_http._tcp.web.vane.test\"\n";
    let vane = Vane::start(&config(&dns, ("100ms", "5s"), group))
        .await
        .unwrap();
    let light_name = format!("web/{}", light.address);
    let heavy_name = format!("web/{}", heavy.address);
    wait_for_members(&vane, &[&light_name, &heavy_name]).await;
    let backends = vane.backends_json().await;
    let weight = |name: &str| {
        backends["backends"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"] == name)
            .map(|b| b["weight"].as_u64().unwrap())
    };
    assert_eq!(
        (weight(&light_name), weight(&heavy_name)),
        (Some(1), Some(3))
    );

    // The built-in round-robin spreads by weight: 1 in 4 to light.
    let client = vane.client();
    for _ in 0..40 {
        assert_eq!(client.get("/").await.unwrap().status, 200);
    }
    assert_eq!((light.hits(), heavy.hits(), fallback.hits()), (10, 30, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_file_of_backends_is_followed_under_load_and_a_bad_one_changes_nothing() {
    let folder = scratch_folder("discovery-file");
    let [a, b, c] = [
        backend("a").start().await,
        backend("b").start().await,
        backend("c").start().await,
    ];
    let file = folder.join("members.json");
    let write = |path: &Path, text: String| {
        let staged = path.with_extension("tmp");
        std::fs::write(&staged, text).unwrap();
        std::fs::rename(&staged, path).unwrap();
    };
    write(
        &file,
        format!(
            "[{{\"address\": \"{}\"}}, {{\"address\": \"{}\", \"name\": \"b\"}}]",
            a.address, b.address
        ),
    );
    // max_refresh is long: only the watch on the file can tell of a change.
    let text = "listen = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n[discovery]\nmax_refresh = \"1h\"\n\n\
         [[backends]]\nname = \"files\"\nfile = \"members.json\"\n";
    std::fs::write(folder.join("vane.toml"), text).unwrap();
    let vane = Vane::start_file(&folder.join("vane.toml")).await.unwrap();
    let a_name = format!("files/{}", a.address);
    wait_for_members(&vane, &[&a_name, "files/b"]).await;

    let flood = Flood::start(&vane, 8);
    a.wait_for_hits(20, Duration::from_secs(10)).await;
    write(
        &file,
        format!(
            "{{\"backends\": [{{\"address\": \"{}\", \"name\": \"b\"}}, {{\"address\": \"{}\", \"name\": \"c\", \"weight\": 2}}]}}",
            b.address, c.address
        ),
    );
    wait_for_members(&vane, &["files/b", "files/c"]).await;
    let changed = Instant::now();
    c.wait_for_hits(c.hits() + 20, Duration::from_secs(10))
        .await;

    // Half a file (a writer that does not rename) is refused, and the set stays.
    std::fs::write(&file, "[{\"address\": \"127.0.0.1:1\"").unwrap();
    wait_for_group(&vane, "files", "the bad file", |g| {
        g["serving_last_good"] == true
            && g["last_error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("members.json"))
    })
    .await;
    let tally = flood.stop().await;
    assert_eq!(tally.failed(), 0, "{tally:?}");
    assert_eq!(tally.served_by_since("a", changed), 0, "{tally:?}");
    assert_eq!(
        members(&vane).await,
        BTreeSet::from(["files/b".to_owned(), "files/c".to_owned()])
    );

    // An empty list is an answer: the file says there are none.
    write(&file, "[]".to_owned());
    wait_for_members(&vane, &[]).await;
    assert_eq!(vane.client().get("/").await.unwrap().status, 503);
    let (status, body) = vane.admin_get("/ready").await;
    assert_eq!(status, 503, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reload_that_adds_a_group_finds_its_members_and_one_that_drops_it_forgets_them() {
    let folder = scratch_folder("discovery-reload");
    let [a, b] = [backend("a").start().await, backend("b").start().await];
    std::fs::write(
        folder.join("more.toml"),
        format!("[[backends]]\naddress = \"{}\"\nname = \"b\"\n", b.address),
    )
    .unwrap();
    let listed = a.toml(1);
    let head = "listen = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n";
    let path = folder.join("vane.toml");
    std::fs::write(&path, format!("{head}{listed}")).unwrap();
    let vane = Vane::start_file(&path).await.unwrap();
    assert_eq!(members(&vane).await, BTreeSet::from(["a".to_owned()]));

    let group = "[[backends]]\nname = \"more\"\nfile = \"more.toml\"\n";
    std::fs::write(&path, format!("{head}{listed}{group}")).unwrap();
    let (status, body) = vane.admin_post("/reload").await;
    assert_eq!(status, 200, "{body}");
    wait_for_members(&vane, &["a", "more/b"]).await;
    let client = vane.client();
    for _ in 0..4 {
        assert_eq!(client.get("/").await.unwrap().status, 200);
    }
    assert_eq!((a.hits(), b.hits()), (2, 2));

    std::fs::write(&path, format!("{head}{listed}")).unwrap();
    let (status, body) = vane.admin_post("/reload").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("backend more/b removed"), "{body}");
    wait_for_members(&vane, &["a"]).await;
    let discovery = vane.discovery_json().await;
    assert_eq!(discovery["groups"], serde_json::json!([]), "{discovery}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reload_that_adds_a_dns_group_or_points_it_elsewhere_admits_its_members_with_it() {
    let folder = scratch_folder("discovery-dns-reload");
    let [one, two, _three] = three_on_one_port().await;
    let port = one.address.port();
    let dns = DnsServer::start(
        &folder,
        &Records {
            hosts: &[
                ("127.0.0.1", "web.vane.test"),
                ("127.0.0.2", "api.vane.test"),
            ],
            srv: &[],
            ttl: 300,
        },
    );
    // At start no group asks DNS: the first that does comes with a reload.
    let listed = one.toml(1).replace("\"one\"", "\"listed\"");
    let path = folder.join("vane.toml");
    std::fs::write(&path, config(&dns, ("100ms", "1h"), &listed)).unwrap();
    let vane = Vane::start_file(&path).await.unwrap();

    let with_group = format!("{listed}{}", dns_group("web", "web.vane.test", port));
    std::fs::write(&path, config(&dns, ("100ms", "1h"), &with_group)).unwrap();
    let (status, body) = vane.admin_post("/reload").await;
    assert_eq!(status, 200, "{body}");
    // The member joins with the reload itself, not at a later lookup.
    assert!(
        body.contains(&format!("backend web/127.0.0.1:{port} added")),
        "{body}"
    );
    assert_eq!(members(&vane).await.len(), 2);

    // The group pointed at another name: the old member leaves and the new one joins at once.
    let elsewhere = format!("{listed}{}", dns_group("web", "api.vane.test", port));
    std::fs::write(&path, config(&dns, ("100ms", "1h"), &elsewhere)).unwrap();
    let (status, body) = vane.admin_post("/reload").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(&format!("backend web/127.0.0.2:{port} added")),
        "{body}"
    );
    assert!(
        body.contains(&format!("backend web/127.0.0.1:{port} removed")),
        "{body}"
    );
    let client = vane.client();
    for _ in 0..4 {
        assert_eq!(client.get("/").await.unwrap().status, 200);
    }
    assert_eq!(two.hits(), 2);
    let group = vane.discovery_json().await["groups"][0].clone();
    assert_eq!(
        group["source"],
        format!("dns api.vane.test port {port}"),
        "{group}"
    );
}
