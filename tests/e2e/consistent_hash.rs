//! The consistent-hash plugin: a key keeps its backend, across vane instances and whatever the
//! order of the backends; when a backend leaves only its keys move, and they come back with it;
//! a hot key is held to its bounded load; the key comes from a header, a cookie, the path or
//! the client's address.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vane_e2e::backend::backend;
use vane_e2e::files::{scratch_folder, write_file};
use vane_e2e::proxy::{config_for, policy};
use vane_e2e::{Backend, Client, Vane};

/// Keys per test: enough that each of three backends holds dozens.
const KEYS: usize = 300;

async fn three() -> [Backend; 3] {
    [
        backend("a").start().await,
        backend("b").start().await,
        backend("c").start().await,
    ]
}

/// The backend that served a request carrying `name: value`.
async fn served(client: &Client, name: &str, value: &str) -> String {
    let reply = client
        .send(
            http::Method::GET,
            "/",
            &[(name, value)],
            bytes::Bytes::new(),
        )
        .await
        .expect("a reply");
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.backend.expect("served by a backend")
}

/// Which backend each of the keys `user-0`, `user-1`... (in header `x-user`) goes to.
async fn placement(vane: &Vane) -> Vec<String> {
    let client = vane.client();
    let mut placed = Vec::with_capacity(KEYS);
    for key in 0..KEYS {
        placed.push(served(&client, "x-user", &format!("user-{key}")).await);
    }
    placed
}

fn shares(placed: &[String]) -> BTreeMap<&str, usize> {
    let mut shares = BTreeMap::new();
    for backend in placed {
        *shares.entry(backend.as_str()).or_default() += 1;
    }
    shares
}

fn by_header(backends: &[&Backend]) -> String {
    config_for(backends, &policy("consistent_hash", "key=header:x-user"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_keeps_its_backend_across_instances_and_orders() {
    let [a, b, c] = three().await;
    let first = Vane::start(&by_header(&[&a, &b, &c])).await.unwrap();
    // Another instance, its backends listed the other way round, as another replica's config
    // (or this one's after an edit) might.
    let second = Vane::start(&by_header(&[&c, &b, &a])).await.unwrap();

    let placed = placement(&first).await;
    let spread = shares(&placed);
    println!("{KEYS} keys over three backends: {spread:?}");
    assert_eq!(spread.len(), 3, "{spread:?}");
    assert!(
        spread.values().all(|&n| (60..=140).contains(&n)),
        "uneven: {spread:?}"
    );
    assert_eq!(placement(&first).await, placed, "asked again");
    assert_eq!(placement(&second).await, placed, "another instance");
    first.assert_no_fallbacks();
    second.assert_no_fallbacks();
    first.stop().await;
    second.stop().await;

    // And after a restart.
    let again = Vane::start(&by_header(&[&a, &b, &c])).await.unwrap();
    assert_eq!(placement(&again).await, placed, "after a restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_a_backend_leaves_only_its_keys_move_and_they_come_back() {
    let [a, b, c] = three().await;
    let folder = scratch_folder("consistent-hash-leaves");
    let path = write_file(&folder, "vane.toml", by_header(&[&a, &b, &c]));
    let vane = Vane::start_file(&path).await.unwrap();
    let before = placement(&vane).await;

    // c leaves the set.
    write_file(&folder, "vane.toml", by_header(&[&a, &b]));
    vane.reloader().reload().await.unwrap();
    let after = placement(&vane).await;
    let on_c = before.iter().filter(|name| *name == "c").count();
    let moved = before.iter().zip(&after).filter(|(x, y)| x != y).count();
    println!(
        "c held {on_c} of {KEYS} keys; {moved} moved when it left, to {:?}",
        shares(&after)
    );
    for (key, (was, is)) in before.iter().zip(&after).enumerate() {
        if was != "c" {
            assert_eq!(is, was, "user-{key} moved though its backend stayed");
        }
    }
    assert_eq!(moved, on_c, "every key of c moved, and no other");
    assert!(after.iter().all(|name| name != "c"));

    // Out of rotation is the same as gone; back, every key is home again.
    write_file(&folder, "vane.toml", by_header(&[&a, &b, &c]));
    vane.reloader().reload().await.unwrap();
    assert_eq!(placement(&vane).await, before, "c is back");
    vane.state().backends().backends()[2]
        .health
        .set_healthy(false);
    assert_eq!(placement(&vane).await, after, "c out of rotation");
    vane.assert_no_fallbacks();
}

/// Sends `rounds` requests from each of `clients` concurrent clients, all with the key
/// `hot`; answers how many each backend served.
async fn hot_key(vane: &Vane, clients: usize, rounds: usize) -> BTreeMap<String, usize> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let client = vane.client();
        tasks.spawn(async move {
            let mut served_by = Vec::new();
            for _ in 0..rounds {
                served_by.push(served(&client, "x-user", "hot").await);
            }
            served_by
        });
    }
    let mut counts = BTreeMap::new();
    for name in tasks.join_all().await.into_iter().flatten() {
        *counts.entry(name).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_key_spills_past_its_bounded_load_only_when_bounded() {
    // Each request holds its backend 200 ms, far longer than a client takes to send the next,
    // so twelve clients keep about twelve in flight however slow the machine.
    let delay = Duration::from_millis(200);
    let backends = [
        backend("a").delay(delay).start().await,
        backend("b").delay(delay).start().await,
        backend("c").delay(delay).start().await,
    ];
    let refs: Vec<&Backend> = backends.iter().collect();
    let unbounded = Vane::start(&config_for(
        &refs,
        &policy("consistent_hash", "key=header:x-user bound=off"),
    ))
    .await
    .unwrap();
    let counts = hot_key(&unbounded, 12, 8).await;
    println!("bound=off: {counts:?}");
    assert_eq!(counts.len(), 1, "one key, one backend: {counts:?}");
    unbounded.stop().await;

    let bounded = Vane::start(&by_header(&refs)).await.unwrap();
    let counts = hot_key(&bounded, 12, 8).await;
    println!("bound=1.25: {counts:?}");
    let home = counts.values().max().copied().unwrap_or(0);
    // With n in flight, the key's backend may hold ceil(1.25 × (n + 1) / 3): 6 of 12 at most.
    assert!(
        home <= 96 * 6 / 10,
        "the hot key's backend served {home} of 96"
    );
    assert_eq!(counts.values().sum::<usize>(), 96);
    bounded.assert_no_fallbacks();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_comes_from_a_cookie_or_the_path() {
    let [a, b, c] = three().await;
    let vane = Vane::start(&config_for(
        &[&a, &b, &c],
        &policy("consistent_hash", "key=cookie:sid"),
    ))
    .await
    .unwrap();
    let client = vane.client();
    let mut seen = BTreeMap::new();
    for session in 0..60 {
        let alone = served(&client, "cookie", &format!("sid=s{session}")).await;
        let among = served(
            &client,
            "cookie",
            &format!("theme=dark; sid=s{session}; x=1"),
        )
        .await;
        assert_eq!(alone, among, "session s{session}");
        *seen.entry(alone).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 3, "sessions spread: {seen:?}");
    vane.stop().await;

    let vane = Vane::start(&config_for(
        &[&a, &b, &c],
        &policy("consistent_hash", "key=path"),
    ))
    .await
    .unwrap();
    let client = vane.client();
    let mut seen = BTreeMap::new();
    for item in 0..60 {
        let path = format!("/items/{item}");
        let plain = client.get(&path).await.unwrap().backend.unwrap();
        let queried = client.get(&format!("{path}?v=2")).await.unwrap().backend;
        assert_eq!(queried.as_deref(), Some(plain.as_str()), "{path}");
        *seen.entry(plain).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 3, "paths spread: {seen:?}");
    vane.assert_no_fallbacks();
}

/// The backend that served `GET /` over a connection from the loopback address `from`.
async fn served_from(vane: &Vane, from: [u8; 4]) -> String {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind((from, 0).into()).unwrap();
    let mut stream = socket.connect(vane.address).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: vane\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.unwrap();
    reply
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("x-backend").then(|| value.trim())
        })
        .unwrap_or_else(|| panic!("no x-backend in {reply:?}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_the_key_is_the_client_address() {
    let [a, b, c] = three().await;
    let vane = Vane::start(&config_for(&[&a, &b, &c], &policy("consistent_hash", "")))
        .await
        .unwrap();
    let mut seen = BTreeMap::new();
    for host in 2..62u8 {
        let first = served_from(&vane, [127, 0, 0, host]).await;
        assert_eq!(
            served_from(&vane, [127, 0, 0, host]).await,
            first,
            "127.0.0.{host}"
        );
        *seen.entry(first).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 3, "clients spread: {seen:?}");
    vane.assert_no_fallbacks();
}
