//! Backends over TLS and HTTP/2: vane checks a TLS backend's certificate against the CA and
//! name configured (and refuses one it cannot trust, moving the request on), presents a client
//! certificate to a backend that asks for one, probes health the same way, and speaks HTTP/2
//! (h2 over TLS, h2c) to backends that declare it: requests from one client connection are
//! balanced one by one, many share one backend connection, each counts as in flight on its
//! own, trailers pass both ways, and a client that reads slowly holds the backend back.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use vane_e2e::backend::{LARGE_BODY, answering, backend};
use vane_e2e::client::raw_h2;
use vane_e2e::files::scratch_folder;
use vane_e2e::proxy::policy;
use vane_e2e::tls::TestCa;
use vane_e2e::{Backend, Vane, wait_until};

const H2: &[u8] = b"h2";
const HTTP1: &[u8] = b"http/1.1";

/// The `[[backends]]` entry for `backend` with `extra` lines (protocol, tls) in its table.
fn entry(backend: &Backend, extra: &str) -> String {
    format!("{}{extra}\n", backend.toml(1))
}

/// `tls = { … }` trusting the CA file `ca`, checking `name`, with `more` inside the table.
fn tls(ca: &std::path::Path, name: &str, more: &str) -> String {
    format!(
        "tls = {{ ca = {:?}, server_name = {name:?}{more} }}",
        ca.display().to_string()
    )
}

/// Config text for vane in front of `entries`, with an admin listener and `extra` tables.
fn config(extra: &str, entries: &[String]) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n{extra}\n{}",
        entries.concat()
    )
}

/// One HTTP/2 connection (h2c, prior knowledge) to `vane`, shared by every request sent on it.
async fn h2c_connection(vane: &Vane) -> http2::SendRequest<Empty<Bytes>> {
    let tcp = TcpStream::connect(vane.address).await.expect("connect");
    let (sender, connection) = http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
        .await
        .expect("an HTTP/2 handshake");
    tokio::spawn(connection);
    sender
}

/// `GET path` on `sender`: the status, the `x-backend` and `x-version` headers.
async fn get(
    sender: &mut http2::SendRequest<Empty<Bytes>>,
    vane: &Vane,
    path: &str,
) -> (StatusCode, String, String) {
    let request = Request::get(format!("http://{}{path}", vane.address))
        .body(Empty::new())
        .expect("a request");
    let response = sender.send_request(request).await.expect("a response");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (status, backend, version) = (response.status(), header("x-backend"), header("x-version"));
    response.into_body().collect().await.expect("the body");
    (status, backend, version)
}

#[tokio::test]
async fn tls_and_h2c_backends_are_reached_and_probed_as_they_are_configured() {
    let folder = scratch_folder("backend-tls");
    let ca = TestCa::new();
    let ca_file = ca.write_pem(&folder);
    let issued = ca.issue(&folder, "backend", &["backend.test"]);
    let a = backend("a")
        .tls(ca.server_config(&issued, &[HTTP1], false))
        .start()
        .await;
    let b = backend("b").start().await;
    // Two failed probes in a row take a backend out: both staying in through three probes
    // says the probes pass (a probe that could never pass would have taken them out).
    let health = "[health]\ninterval = \"500ms\"\ntimeout = \"500ms\"\nunhealthy_threshold = 2\n";
    let vane = Vane::start(&config(
        health,
        &[
            entry(&a, &tls(&ca_file, "backend.test", "")),
            entry(&b, "protocol = \"h2c\""),
        ],
    ))
    .await
    .expect("vane starts");
    let reply = vane.client().get("/").await.expect("a reply");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.backend.as_deref(), Some("a"));
    assert_eq!(reply.headers["x-version"], "HTTP/1.1");
    let state = vane.state();
    let healthy = || -> Vec<bool> {
        let set = state.backends();
        set.backends().iter().map(|b| b.health.healthy()).collect()
    };
    wait_until("three probes of each", || {
        a.probes() >= 3 && b.probes() >= 3
    })
    .await;
    assert_eq!(healthy(), [true, true]);
    a.set_healthy(false);
    b.set_healthy(false);
    wait_until("both out after answering 503", || {
        healthy() == [false, false]
    })
    .await;
    vane.stop().await;
}

#[tokio::test]
async fn a_backend_whose_certificate_cannot_be_trusted_gets_no_request_and_fails_its_checks() {
    let folder = scratch_folder("backend-tls-untrusted");
    let ca = TestCa::new();
    let ca_file = ca.write_pem(&folder);
    let issued = ca.issue(&folder, "backend", &["backend.test"]);
    let stranger = TestCa::new();
    let stranger_file = stranger.write_pem(&scratch_folder("backend-tls-stranger"));
    let server = ca.server_config(&issued, &[HTTP1], false);
    let other_ca = backend("other-ca").tls(server.clone()).start().await;
    let other_name = backend("other-name").tls(server).start().await;
    let good = backend("good").start().await;
    let health = "[health]\ninterval = \"200ms\"\ntimeout = \"200ms\"\nunhealthy_threshold = 1\n";
    let vane = Vane::start(&config(
        health,
        &[
            entry(&other_ca, &tls(&stranger_file, "backend.test", "")),
            entry(&other_name, &tls(&ca_file, "elsewhere.test", "")),
            entry(&good, ""),
        ],
    ))
    .await
    .expect("vane starts");
    let client = vane.client();
    for _ in 0..12 {
        let reply = client.get("/").await.expect("a reply");
        assert_eq!(reply.status, 200);
        assert_eq!(reply.backend.as_deref(), Some("good"));
    }
    assert_eq!(other_ca.hits() + other_name.hits(), 0);
    let state = vane.state();
    wait_until("both untrusted backends out of rotation", || {
        let set = state.backends();
        !set.backends()[0].health.healthy() && !set.backends()[1].health.healthy()
    })
    .await;
    assert_eq!(
        other_ca.probes() + other_name.probes(),
        0,
        "no probe got through"
    );
    vane.stop().await;
}

#[tokio::test]
async fn a_backend_that_asks_for_a_client_certificate_gets_the_one_configured() {
    let folder = scratch_folder("backend-mtls");
    let ca = TestCa::new();
    let ca_file = ca.write_pem(&folder);
    let issued = ca.issue(&folder, "backend", &["backend.test"]);
    let client_cert = ca.issue(&folder, "vane-client", &["vane.test"]);
    let a = backend("a")
        .tls(ca.server_config(&issued, &[HTTP1], true))
        .start()
        .await;
    let without = Vane::start(&config(
        "",
        &[entry(&a, &tls(&ca_file, "backend.test", ""))],
    ))
    .await
    .expect("vane starts");
    let reply = without.client().get("/").await.expect("a reply");
    assert_eq!(reply.status, 502, "refused without a client certificate");
    assert_eq!(a.hits(), 0);
    without.stop().await;

    let mine = format!(
        ", cert = {:?}, key = {:?}",
        client_cert.cert.display().to_string(),
        client_cert.key.display().to_string()
    );
    let with = Vane::start(&config(
        "",
        &[entry(&a, &tls(&ca_file, "backend.test", &mine))],
    ))
    .await
    .expect("vane starts");
    let reply = with.client().get("/").await.expect("a reply");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.backend.as_deref(), Some("a"));
    with.stop().await;
}

#[tokio::test]
async fn requests_on_one_client_connection_are_balanced_one_by_one_over_h2c_backends() {
    let backends = [
        backend("a").start().await,
        backend("b").start().await,
        backend("c").start().await,
    ];
    let entries: Vec<String> = backends
        .iter()
        .map(|b| entry(b, "protocol = \"h2c\""))
        .collect();
    let vane = Vane::start(&config(&policy("round_robin", ""), &entries))
        .await
        .expect("vane starts");
    let mut sender = h2c_connection(&vane).await;
    for _ in 0..30 {
        let (status, _, version) = get(&mut sender, &vane, "/").await;
        assert_eq!(status, 200);
        assert_eq!(version, "HTTP/2.0", "the backend was spoken to in HTTP/2");
    }
    for b in &backends {
        assert_eq!(b.hits(), 10, "{} took a third of the calls", b.name);
        assert_eq!(b.connections(), 1, "{} got one connection for all", b.name);
    }
    vane.assert_no_fallbacks();
    vane.stop().await;
}

#[tokio::test]
async fn concurrent_requests_share_one_h2c_connection_and_count_one_by_one_in_flight() {
    let slow = backend("slow")
        .delay(Duration::from_millis(500))
        .start()
        .await;
    let vane = Vane::start(&config("", &[entry(&slow, "protocol = \"h2c\"")]))
        .await
        .expect("vane starts");
    let sender = h2c_connection(&vane).await;
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let mut sender = sender.clone();
        let uri = format!("http://{}/", vane.address);
        calls.spawn(async move {
            let request = Request::get(uri).body(Empty::<Bytes>::new()).unwrap();
            let response = sender.send_request(request).await.expect("a response");
            response.status()
        });
    }
    wait_until("eight requests in flight on the backend", || {
        vane.in_flight() == [8]
    })
    .await;
    while let Some(status) = calls.join_next().await {
        assert_eq!(status.expect("the call"), 200);
    }
    assert_eq!(slow.connections(), 1, "eight streams on one connection");
    wait_until("nothing in flight", || vane.in_flight() == [0]).await;
    vane.stop().await;
}

#[tokio::test]
async fn an_h2_backend_over_tls_is_spoken_to_in_http2_and_one_without_h2_is_refused() {
    let folder = scratch_folder("backend-h2");
    let ca = TestCa::new();
    let ca_file = ca.write_pem(&folder);
    let issued = ca.issue(&folder, "backend", &["backend.test"]);
    let h2 = backend("h2")
        .tls(ca.server_config(&issued, &[H2, HTTP1], false))
        .start()
        .await;
    let http1_only = backend("http1-only")
        .tls(ca.server_config(&issued, &[HTTP1], false))
        .start()
        .await;
    let h2_entry = |b: &Backend| {
        entry(
            b,
            &format!("protocol = \"h2\"\n{}", tls(&ca_file, "backend.test", "")),
        )
    };
    let vane = Vane::start(&config("", &[h2_entry(&h2), h2_entry(&http1_only)]))
        .await
        .expect("vane starts");
    let client = vane.client();
    for _ in 0..6 {
        let reply = client.get("/").await.expect("a reply");
        assert_eq!(reply.status, 200);
        assert_eq!(reply.backend.as_deref(), Some("h2"));
        assert_eq!(reply.headers["x-version"], "HTTP/2.0");
    }
    assert_eq!(
        http1_only.hits(),
        0,
        "a backend that did not agree to h2 gets nothing"
    );
    assert_eq!(h2.connections(), 1);
    vane.stop().await;
}

/// An HTTP/2 response body's data, and its trailers (which must come).
async fn data_and_trailers(mut body: h2::RecvStream) -> (Vec<u8>, HeaderMap) {
    let mut data = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("data");
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    let trailers = body
        .trailers()
        .await
        .expect("the trailers")
        .expect("trailers came");
    (data, trailers)
}

#[tokio::test]
async fn trailers_pass_both_ways_between_an_http2_client_and_an_h2c_backend() {
    let a = backend("a").start().await;
    let vane = Vane::start(&config("", &[entry(&a, "protocol = \"h2c\"")]))
        .await
        .expect("vane starts");
    let mut client = raw_h2(vane.address).await;
    let request = Request::post(format!("http://{}/trailers", vane.address))
        .header("te", "trailers")
        .header("content-type", "application/grpc")
        .body(())
        .expect("a request");
    let (response, mut send) = client.send_request(request, false).expect("a stream");
    send.send_data(Bytes::from_static(b"hello"), false)
        .expect("data");
    let mut trailers = HeaderMap::new();
    trailers.insert("x-checksum", HeaderValue::from_static("5d41402a"));
    send.send_trailers(trailers).expect("trailers");
    let response = response.await.expect("a response");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-version"], "HTTP/2.0");
    let (data, trailers) = data_and_trailers(response.into_body()).await;
    assert_eq!(data, b"hello");
    assert_eq!(
        trailers["x-checksum"], "5d41402a",
        "the request's trailer reached the backend"
    );
    assert_eq!(
        trailers["grpc-status"], "0",
        "the backend's trailer reached the client"
    );
    vane.stop().await;
}

#[tokio::test]
async fn a_backend_tls_file_that_cannot_be_used_is_refused_at_start_naming_it() {
    let folder = scratch_folder("backend-tls-bad");
    let missing = folder.join("no-such-ca.pem");
    let a = backend("a").start().await;
    let Err(error) = Vane::start(&config(
        "",
        &[entry(&a, &tls(&missing, "backend.test", ""))],
    ))
    .await
    else {
        panic!("vane started with a CA file that does not exist");
    };
    let message = format!("{error:#}");
    assert!(message.contains("backend a"), "{message}");
    assert!(message.contains("no-such-ca.pem"), "{message}");
    assert_eq!(
        message.matches("os error").count(),
        1,
        "said once: {message}"
    );
}

#[tokio::test]
async fn a_client_that_does_not_read_holds_an_http2_backend_back() {
    let a = backend("a").start().await;
    let vane = Vane::start(&config("", &[entry(&a, "protocol = \"h2c\"")]))
        .await
        .expect("vane starts");
    let mut client = raw_h2(vane.address).await;
    let request = Request::get(format!("http://{}/large", vane.address))
        .body(())
        .expect("a request");
    let (response, _) = client.send_request(request, true).expect("a stream");
    let response = response.await.expect("a response");
    assert_eq!(response.status(), 200);
    // The client reads nothing: flow control holds the backend back once the windows and
    // buffers between them are full, however long it waits.
    let mut sent = a.large_sent();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = a.large_sent();
        if now == sent {
            break;
        }
        sent = now;
    }
    assert!(
        sent < 8 << 20,
        "the backend sent {sent} bytes of {LARGE_BODY} to a client that read none"
    );
    let mut body = response.into_body();
    let mut received = 0;
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("data");
        let _ = body.flow_control().release_capacity(chunk.len());
        received += chunk.len();
    }
    assert_eq!(received, LARGE_BODY, "all of it once the client reads");
    vane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_to_http2_backends_finish_through_the_drain() {
    let slow = backend("slow")
        .delay(Duration::from_millis(500))
        .start()
        .await;
    let vane = Vane::start(&config(
        "[proxy]\ndrain_timeout = \"10s\"\n",
        &[entry(&slow, "protocol = \"h2c\"")],
    ))
    .await
    .expect("vane starts");
    // One request opens the backend connection; two more are in flight when vane stops.
    assert_eq!(vane.client().get("/").await.expect("a reply").status, 200);
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..2 {
        let client = vane.client();
        calls.spawn(async move { client.get("/").await.map(|reply| reply.status) });
    }
    slow.wait_for_hits(3, Duration::from_secs(10)).await;
    let stopping = tokio::spawn(vane.stop());
    while let Some(status) = calls.join_next().await {
        assert_eq!(
            status.expect("the call").expect("a reply"),
            200,
            "finished in the drain"
        );
    }
    stopping.await.expect("vane stopped");
}

#[tokio::test]
async fn a_backend_allowing_two_streams_a_connection_gets_more_connections_not_a_queue() {
    let slow = backend("slow")
        .delay(Duration::from_millis(300))
        .max_streams(2)
        .start()
        .await;
    let vane = Vane::start(&config("", &[entry(&slow, "protocol = \"h2c\"")]))
        .await
        .expect("vane starts");
    // The backend's limit comes in its SETTINGS, which h2 applies on the connection's turn
    // after they arrive: a few requests one after another give it those turns.
    for _ in 0..3 {
        assert_eq!(vane.client().get("/").await.expect("a reply").status, 200);
    }
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let client = vane.client();
        calls.spawn(async move { client.get("/").await.map(|reply| reply.status) });
    }
    wait_until("eight streams on connections of two", || {
        slow.connections() >= 4
    })
    .await;
    while let Some(status) = calls.join_next().await {
        assert_eq!(status.expect("the call").expect("a reply"), 200);
    }
    vane.stop().await;
}

#[tokio::test]
async fn a_ca_file_replaced_on_disk_is_trusted_from_then_on() {
    let folder = scratch_folder("backend-ca-replaced");
    let ca = TestCa::new();
    let issued = ca.issue(&folder, "backend", &["backend.test"]);
    let a = backend("a")
        .tls(ca.server_config(&issued, &[HTTP1], false))
        .start()
        .await;
    // The CA file holds another authority at first: nothing of `a` is trusted.
    let ca_file = TestCa::new().write_pem(&folder);
    let vane = Vane::start(&config(
        "",
        &[entry(&a, &tls(&ca_file, "backend.test", ""))],
    ))
    .await
    .expect("vane starts");
    assert_eq!(vane.client().get("/").await.expect("a reply").status, 502);
    // The right authority written over it: the watch reads it again.
    let replaced = ca.write_pem(&folder);
    assert_eq!(replaced, ca_file);
    let client = vane.client();
    let mut status = 502;
    for _ in 0..100 {
        status = client.get("/").await.expect("a reply").status.as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "the new CA file trusted");
    let reloads = vane.reloader().status();
    assert!(reloads.last_error.is_none(), "{:?}", reloads.last_error);
    vane.stop().await;
}

#[tokio::test]
async fn an_http1_backends_chunked_trailers_reach_an_http2_client_but_the_forbidden_ones() {
    // An HTTP/1.1 backend that always answers in chunks with a trailer section: a checksum a
    // client may read, and a Content-Length, which a trailer section may not carry.
    let address = answering(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
          5\r\nhello\r\n0\r\nx-checksum: 5d41402a\r\ncontent-length: 3\r\n\r\n",
    )
    .await;
    let vane = Vane::start(&format!(
        "listen = \"127.0.0.1:0\"\n[[backends]]\nname = \"x\"\naddress = \"{address}\"\n"
    ))
    .await
    .expect("vane starts");
    let mut client = raw_h2(vane.address).await;
    let request = Request::get(format!("http://{}/", vane.address))
        .body(())
        .expect("a request");
    let (response, _) = client.send_request(request, true).expect("a stream");
    let response = response.await.expect("a response");
    assert_eq!(response.status(), 200);
    let (data, trailers) = data_and_trailers(response.into_body()).await;
    assert_eq!(data, b"hello");
    assert_eq!(trailers["x-checksum"], "5d41402a");
    assert!(
        !trailers.contains_key("content-length"),
        "a length is no trailer: {trailers:?}"
    );
    vane.stop().await;
}
