//! The example policy "fastest" is written in Rust, Python, JavaScript and C (`examples/`); each
//! build goes through vane here, and each must behave exactly the same: lowest latency EWMA per
//! unit of weight among healthy backends, ties rotating, and a header that pins a backend.

use std::time::Duration;

use vane_e2e::backend::backend;
use vane_e2e::plugins::example;
use vane_e2e::proxy::config_for;
use vane_e2e::{Backend, Client, Vane};

const LANGUAGES: [&str; 4] = ["rust", "python", "javascript", "c"];

/// A `[policy]` table for the example in `language` with `config`. The deadlines are raised
/// for debug builds on a loaded machine: a pick of every example takes microseconds in release,
/// and instantiating the Python and JavaScript components (megabytes each) counts against the
/// `configure` deadline.
fn policy(language: &str, config: &str) -> String {
    format!(
        "[policy]\nplugin = {:?}\nconfig = {config:?}\npick_timeout = \"100ms\"\n\
         configure_timeout = \"10s\"\n",
        example(language).display().to_string()
    )
}

/// Which backend served `GET /` with `headers`.
async fn served(client: &Client, headers: &[(&str, &str)]) -> String {
    let reply = client
        .send(http::Method::GET, "/", headers, bytes::Bytes::new())
        .await
        .expect("a reply");
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.backend.expect("served by a backend")
}

/// Everything one run of the shared scenario saw, in order: comparable across languages.
async fn transcript(
    language: &str,
    fast: &Backend,
    slow: &Backend,
    slower: &Backend,
) -> Vec<String> {
    let vane = Vane::start(&config_for(&[fast, slow, slower], &policy(language, "")))
        .await
        .unwrap_or_else(|err| panic!("{language}: {err:#}"));
    let client = vane.client();
    let mut seen = Vec::new();
    // No latency is known yet: equal scores, so the first three rotate over all backends.
    for _ in 0..3 {
        seen.push(served(&client, &[]).await);
    }
    // Then the fastest takes every request.
    for _ in 0..10 {
        seen.push(served(&client, &[]).await);
    }
    // The pin header wins over latency; a name that is no backend is ignored.
    seen.push(served(&client, &[("x-vane-pin", "slower")]).await);
    seen.push(served(&client, &[("x-vane-pin", "nobody")]).await);
    // Out of rotation, the fastest is skipped, pinned or not.
    vane.state().backends().backends()[0]
        .health
        .set_healthy(false);
    seen.push(served(&client, &[]).await);
    seen.push(served(&client, &[("x-vane-pin", "fast")]).await);
    vane.assert_no_fallbacks();
    vane.stop().await;
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_language_behaves_the_same() {
    let fast = backend("fast").start().await;
    let slow = backend("slow")
        .delay(Duration::from_millis(40))
        .start()
        .await;
    let slower = backend("slower")
        .delay(Duration::from_millis(80))
        .start()
        .await;
    let mut expected: Vec<String> = ["fast", "slow", "slower"].map(String::from).to_vec();
    expected.extend(std::iter::repeat_n("fast".to_owned(), 10));
    expected.extend(["slower", "fast", "slow", "slow"].map(String::from));
    for language in LANGUAGES {
        let seen = transcript(language, &fast, &slow, &slower).await;
        assert_eq!(seen, expected, "{language}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_language_reads_its_config_and_refuses_nonsense() {
    let a = backend("a").start().await;
    let b = backend("b").start().await;
    for language in LANGUAGES {
        let vane = Vane::start(&config_for(
            &[&a, &b],
            &policy(language, "header=x-user-backend"),
        ))
        .await
        .unwrap_or_else(|err| panic!("{language}: {err:#}"));
        let client = vane.client();
        for _ in 0..4 {
            assert_eq!(
                served(&client, &[("x-user-backend", "b")]).await,
                "b",
                "{language}"
            );
            assert_eq!(
                served(&client, &[("x-user-backend", "a")]).await,
                "a",
                "{language}"
            );
        }
        vane.stop().await;

        let refused = Vane::start(&config_for(&[&a, &b], &policy(language, "nonsense"))).await;
        let err = format!("{:#}", refused.err().expect("nonsense config refused"));
        assert!(
            err.contains("refused its configuration"),
            "{language}: {err}"
        );
        assert!(err.contains("nonsense"), "{language}: {err}");
    }
}
