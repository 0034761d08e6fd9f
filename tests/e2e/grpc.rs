//! gRPC end to end, with grpcio (gRPC's C core) as server and client and vane between them over
//! h2c: calls from one client channel spread over three backends by the plugin, statuses,
//! messages and server streams intact; a `grpc-timeout` that vane itself enforces; a backend
//! killed mid-stream ending its call at once with UNAVAILABLE while other calls go on; and
//! vane's own refusals as gRPC statuses; and calls over a TLS listener (HTTP/2 by ALPN).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use vane_e2e::Vane;
use vane_e2e::backend::refusing_port;
use vane_e2e::client::raw_h2;
use vane_e2e::files::scratch_folder;
use vane_e2e::grpc::{GrpcPeer, GrpcServer};
use vane_e2e::proxy::policy;
use vane_e2e::tls::TestCa;

/// How long a peer may take to say its next line: far longer than any of these calls needs.
const PATIENCE: Duration = Duration::from_secs(30);

/// vane with the round-robin plugin in front of `servers`.
async fn vane_for(servers: &[&GrpcServer]) -> Vane {
    let mut config = format!("listen = \"127.0.0.1:0\"\n{}", policy("round_robin", ""));
    for server in servers {
        config.push_str(&server.toml());
    }
    Vane::start(&config).await.expect("vane starts")
}

/// Runs the peer command `args` (with vane's address put in for `ADDRESS`) to its end.
async fn client(vane: &Vane, args: &[&str]) -> Vec<String> {
    let address = vane.address.to_string();
    let args: Vec<&str> = args
        .iter()
        .map(|arg| {
            if *arg == "ADDRESS" {
                address.as_str()
            } else {
                arg
            }
        })
        .collect();
    GrpcPeer::run(&args).rest(PATIENCE).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_from_one_channel_are_spread_over_three_backends_intact() {
    let servers = [
        GrpcServer::start("a").await,
        GrpcServer::start("b").await,
        GrpcServer::start("c").await,
    ];
    let vane = vane_for(&servers.iter().collect::<Vec<_>>()).await;

    let mut served = BTreeMap::new();
    for line in client(&vane, &["unary", "ADDRESS", "30"]).await {
        let name = line
            .strip_prefix("served ")
            .unwrap_or_else(|| panic!("{line}"));
        *served.entry(name.to_owned()).or_insert(0) += 1;
    }
    let expected: BTreeMap<String, i32> = [("a", 10), ("b", 10), ("c", 10)]
        .map(|(name, count)| (name.to_owned(), count))
        .into();
    assert_eq!(
        served, expected,
        "one channel, each call balanced on its own"
    );

    let streamed = client(&vane, &["stream", "ADDRESS", "5", "10"]).await;
    let (status, messages) = streamed.split_last().expect("lines");
    assert_eq!(status, "status OK");
    let owner = messages[0]["message ".len()..].split(':').next().unwrap();
    let expected: Vec<String> = (0..5).map(|i| format!("message {owner}:{i}")).collect();
    assert_eq!(
        messages, expected,
        "a server stream arrives whole and in order"
    );

    let failed = client(&vane, &["fail", "ADDRESS"]).await;
    assert_eq!(
        failed,
        ["status NOT_FOUND no such thing"],
        "the backend's status"
    );
    vane.assert_no_fallbacks();
    vane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_over_a_tls_listener_reach_the_backends() {
    let folder = scratch_folder("grpc-tls");
    let ca = TestCa::new();
    let ca_file = ca.write_pem(&folder);
    let issued = ca.issue(&folder, "vane", &["grpc.test"]);
    let servers = [GrpcServer::start("a").await, GrpcServer::start("b").await];
    let mut config = format!(
        "listen = \"127.0.0.1:0\"\n[[listeners]]\naddress = \"127.0.0.1:0\"\n\
         tls = {{ certificates = [{}] }}\n{}",
        issued.toml(),
        policy("round_robin", "")
    );
    for server in &servers {
        config.push_str(&server.toml());
    }
    let vane = Vane::start(&config).await.expect("vane starts");
    let address = vane.listeners[1].to_string();
    let ca_path = ca_file.display().to_string();
    let args = ["unary-tls", &address, &ca_path, "grpc.test", "4"];
    let lines = GrpcPeer::run(&args).rest(PATIENCE).await;
    let mut served: Vec<&str> = lines
        .iter()
        .map(|line| {
            line.strip_prefix("served ")
                .unwrap_or_else(|| panic!("{line}"))
        })
        .collect();
    served.sort_unstable();
    assert_eq!(
        served,
        ["a", "a", "b", "b"],
        "HTTP/2 by ALPN, each call balanced"
    );
    vane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_killed_mid_stream_ends_its_call_with_unavailable_while_others_go_on() {
    let mut servers = [
        GrpcServer::start("a").await,
        GrpcServer::start("b").await,
        GrpcServer::start("c").await,
    ];
    let vane = vane_for(&servers.iter().collect::<Vec<_>>()).await;
    let address = vane.address.to_string();
    // A stream of a thousand messages, one every 50 ms: it would run for 50 s.
    let mut stream = GrpcPeer::run(&["stream", &address, "1000", "50"]);
    let first = stream.line(PATIENCE).await;
    let owner = first["message ".len()..]
        .split(':')
        .next()
        .unwrap()
        .to_owned();
    for _ in 0..2 {
        stream.line(PATIENCE).await;
    }
    let dying = servers
        .iter_mut()
        .find(|server| server.name == owner)
        .expect("the stream's backend");
    dying.peer.kill().await;
    let killed = Instant::now();
    let status = loop {
        let line = stream.line(PATIENCE).await;
        if line.starts_with("status") {
            break line;
        }
    };
    println!(
        "the stream ended {:?} after its backend was killed",
        killed.elapsed()
    );
    assert!(
        status.starts_with("status UNAVAILABLE"),
        "the call ends with UNAVAILABLE, not a reset read as INTERNAL: {status}"
    );
    assert!(
        killed.elapsed() < Duration::from_secs(10),
        "the call ended at once, not after a timeout"
    );

    let others = client(&vane, &["unary", "ADDRESS", "6"]).await;
    assert_eq!(others.len(), 6);
    for line in &others {
        assert!(
            line.starts_with("served ") && !line.ends_with(&owner),
            "another backend served: {line}"
        );
    }
    vane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_timeout_is_enforced_by_vane_and_cancels_the_backends_call() {
    let mut server = GrpcServer::start("a").await;
    let vane = vane_for(&[&server]).await;
    // A client that sends a deadline but never enforces it: only vane can end the call.
    let mut h2 = raw_h2(vane.address).await;
    let request = Request::post(format!("http://{}/vane.test.Echo/Slow", vane.address))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-timeout", "300m")
        .body(())
        .expect("a request");
    let (response, mut send) = h2.send_request(request, false).expect("a stream");
    // One gRPC message: not compressed, length 2, "hi".
    send.send_data(Bytes::from_static(b"\0\0\0\0\x02hi"), true)
        .expect("the message");
    let started = Instant::now();
    let response = tokio::time::timeout(PATIENCE, response)
        .await
        .expect("an answer")
        .expect("a response");
    let took = started.elapsed();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["grpc-status"],
        "4",
        "DEADLINE_EXCEEDED, trailers-only"
    );
    assert!(
        took >= Duration::from_millis(300),
        "not before the deadline: {took:?}"
    );
    assert_eq!(
        server.peer.line(PATIENCE).await,
        "cancelled Slow",
        "the backend's call was cancelled"
    );
    vane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_vane_cannot_forward_gets_unavailable_with_the_reason() {
    let (_held, refusing) = refusing_port();
    let config = format!(
        "listen = \"127.0.0.1:0\"\n[[backends]]\nname = \"gone\"\naddress = \"{refusing}\"\nprotocol = \"h2c\"\n"
    );
    let vane = Vane::start(&config).await.expect("vane starts");
    let lines = client(&vane, &["unary", "ADDRESS", "1"]).await;
    assert_eq!(
        lines,
        ["status UNAVAILABLE 502 Bad Gateway: could not connect to the backend"]
    );
    vane.stop().await;
}
