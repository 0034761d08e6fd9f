//! Graceful shutdown of the real `vane` binary: on SIGTERM it stops accepting, lets the request
//! in flight finish, and exits 0.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use vane_e2e::Client;
use vane_e2e::backend::backend;
use vane_e2e::plugins::vane_binary;
use vane_e2e::proxy::config_for;

/// Where the running vane says it listens, from its start-up log line.
fn listen_address(lines: &mpsc::Receiver<String>) -> SocketAddr {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let Ok(line) = lines.recv_timeout(Duration::from_millis(100)) else {
            continue;
        };
        if let Some(rest) = line.split("listen=").nth(1) {
            let address = rest.split_whitespace().next().unwrap();
            return address.parse().expect("a socket address after listen=");
        }
    }
    panic!("vane did not log its listen address");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_request_in_flight_refuses_new_ones_and_exits_0() {
    let slow = backend("slow")
        .delay(Duration::from_millis(1500))
        .start()
        .await;
    let dir = std::env::temp_dir().join(format!("vane-shutdown-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("vane.toml");
    std::fs::write(&config, config_for(&[&slow], "")).unwrap();

    let mut child = Command::new(vane_binary())
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start vane");
    let stderr = child.stderr.take().unwrap();
    let (send, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = send.send(line);
        }
    });
    let address = listen_address(&lines);

    let client = Client::new(address);
    let in_flight = tokio::spawn(async move { client.get("/").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let terminated = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(terminated.success());

    // New connections are refused while the slow request is still being served.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!in_flight.is_finished(), "the slow request ended early");
    let refused = tokio::net::TcpStream::connect(address).await;
    assert!(
        refused.is_err(),
        "a new connection was accepted after SIGTERM"
    );

    let reply = in_flight
        .await
        .unwrap()
        .expect("the request in flight completes");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.backend.as_deref(), Some("slow"));

    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "vane did not exit after draining"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0), "{status:?}");
}
