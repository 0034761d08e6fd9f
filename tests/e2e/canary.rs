//! The canary plugin: the configured share of requests to the tagged backends, exactly; a
//! header that says `always` or `never`; a share taken by key, sticky; a canary that is down
//! costs no request.

use std::collections::BTreeMap;

use vane_e2e::backend::backend;
use vane_e2e::proxy::policy;
use vane_e2e::{Backend, Client, Vane};

/// Two stable backends and one tagged `canary`, with the canary plugin set by `config`.
async fn start(config: &str) -> ([Backend; 3], Vane) {
    let backends = [
        backend("stable-1").start().await,
        backend("stable-2").start().await,
        backend("canary").start().await,
    ];
    let mut text = format!("listen = \"127.0.0.1:0\"\n{}", policy("canary", config));
    for backend in &backends {
        text.push_str(&backend.toml(1));
    }
    text.push_str("tags = [\"canary\"]\n");
    let vane = Vane::start(&text).await.unwrap();
    (backends, vane)
}

/// Sends `per_client` requests from each of `clients` concurrent clients, each with `headers`
/// made from the client's number and the request's; counts which backend served them.
async fn spread(
    vane: &Vane,
    clients: usize,
    per_client: usize,
    headers: fn(usize, usize) -> Vec<(String, String)>,
) -> BTreeMap<String, usize> {
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let client = vane.client();
        tasks.spawn(async move {
            let mut served = Vec::new();
            for r in 0..per_client {
                served.push(served_with(&client, &headers(c, r)).await);
            }
            served
        });
    }
    let mut counts = BTreeMap::new();
    for name in tasks.join_all().await.into_iter().flatten() {
        *counts.entry(name).or_default() += 1;
    }
    counts
}

async fn served_with(client: &Client, headers: &[(String, String)]) -> String {
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let reply = client
        .send(http::Method::GET, "/", &headers, bytes::Bytes::new())
        .await
        .expect("a reply");
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.backend.expect("served by a backend")
}

fn no_headers(_: usize, _: usize) -> Vec<(String, String)> {
    Vec::new()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_canary_gets_its_share_of_ten_thousand_requests() {
    let (_backends, vane) = start("share=5").await;
    let counts = spread(&vane, 8, 1250, no_headers).await;
    println!("share=5 over 10 000 requests: {counts:?}");
    let canary = counts.get("canary").copied().unwrap_or(0);
    // Within 1 % of the split (400 to 600); taken request by request, it is exact.
    assert!(
        (400..=600).contains(&canary),
        "{canary} of 10 000 to the canary"
    );
    assert_eq!(canary, 500, "request by request, the share is exact");
    for stable in ["stable-1", "stable-2"] {
        assert_eq!(counts[stable], 4750, "{counts:?}");
    }
    vane.assert_no_fallbacks();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_says_always_or_never_and_a_value_can_select() {
    let (_backends, vane) = start("share=50 header=x-canary header-value=beta").await;
    let client = vane.client();
    let with = |value: &str| vec![("x-canary".to_owned(), value.to_owned())];
    for _ in 0..20 {
        assert_eq!(served_with(&client, &with("always")).await, "canary");
        assert_eq!(served_with(&client, &with("beta")).await, "canary");
        assert_ne!(served_with(&client, &with("never")).await, "canary");
    }
    // Any other value, or none, goes by the share.
    let counts = spread(&vane, 2, 100, |_, _| {
        vec![("x-canary".to_owned(), "maybe".to_owned())]
    })
    .await;
    assert_eq!(counts.get("canary"), Some(&100), "{counts:?}");
    vane.assert_no_fallbacks();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sticky_share_keeps_each_user_on_one_side() {
    let (_backends, vane) = start("share=10 sticky=header:x-user").await;
    let user = |c: usize, r: usize| vec![("x-user".to_owned(), format!("user-{}", c * 1000 + r))];
    // Each of 2 000 users asks twice, from two clients: the same side both times.
    let first = spread(&vane, 4, 500, user).await;
    let second = spread(&vane, 4, 500, user).await;
    println!("share=10 sticky by user, 2 000 users: {first:?}");
    assert_eq!(first.get("canary"), second.get("canary"));
    let canary = first.get("canary").copied().unwrap_or(0);
    assert!(
        (140..=260).contains(&canary),
        "{canary} of 2 000 users on the canary"
    );
    let client = vane.client();
    for key in 0..50 {
        let headers = user(0, key);
        let side = served_with(&client, &headers).await == "canary";
        for _ in 0..3 {
            assert_eq!(served_with(&client, &headers).await == "canary", side);
        }
    }
    vane.assert_no_fallbacks();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_that_is_down_costs_no_request() {
    let ([_stable_1, _stable_2, canary], vane) = start("share=50").await;
    canary.stop();
    // Every request the canary was to take is retried on a stable backend, until passive
    // ejection takes it out; then the stable ones are its spares.
    let counts = spread(&vane, 4, 100, no_headers).await;
    assert_eq!(counts.values().sum::<usize>(), 400, "{counts:?}");
    assert_eq!(counts.get("canary"), None);
}
