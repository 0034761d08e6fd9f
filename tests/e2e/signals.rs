//! Signals to the real `vane` binary: SIGTERM drains and exits 0; SIGHUP reloads the config file,
//! refusing a broken one while the old config keeps serving.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use vane_e2e::Client;
use vane_e2e::backend::backend;
use vane_e2e::files::scratch_folder;
use vane_e2e::plugins::vane_binary;
use vane_e2e::proxy::config_for;

use crate::{counts, tally};

/// `vane run --config FILE` as a child process, killed when dropped (so a failing test does
/// not leave it running), with its log lines read on a thread.
struct VaneProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Where it listens, from its start-up log line.
    address: SocketAddr,
    /// Where its admin API listens, if the config has one.
    admin: Option<SocketAddr>,
}

impl VaneProcess {
    fn start(config: &Path) -> VaneProcess {
        let mut child = Command::new(vane_binary())
            .args(["run", "--config"])
            .arg(config)
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
        let mut process = VaneProcess {
            child,
            lines,
            address: SocketAddr::from(([0, 0, 0, 0], 0)),
            admin: None,
        };
        let line = process.wait_for_line("listen=");
        let rest = line.split("listen=").nth(1).unwrap();
        let address = rest.split_whitespace().next().unwrap();
        process.address = address.parse().expect("a socket address after listen=");
        process.admin = line
            .split("admin=Some(")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .map(|admin| admin.parse().expect("a socket address after admin="));
        process
    }

    /// The next log line containing `needle`; panics after 20 s without one.
    fn wait_for_line(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100))
                && line.contains(needle)
            {
                return line;
            }
        }
        panic!("vane did not log {needle:?} within 20 s");
    }

    fn signal(&self, name: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{name} failed");
    }

    /// Its exit status, waiting up to 10 s without blocking the runtime.
    async fn exit_status(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "vane did not exit");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for VaneProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `text` to `path` by atomic rename, as config management tools do.
fn replace_file(path: &Path, text: &str) {
    let next = path.with_extension("next");
    std::fs::write(&next, text).unwrap();
    std::fs::rename(&next, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_request_in_flight_refuses_new_ones_and_exits_0() {
    let slow = backend("slow")
        .delay(Duration::from_millis(3000))
        .start()
        .await;
    let config = scratch_folder("sigterm").join("vane.toml");
    std::fs::write(&config, config_for(&[&slow], "")).unwrap();
    let mut vane = VaneProcess::start(&config);

    let client = Client::new(vane.address);
    let in_flight = tokio::spawn(async move { client.get("/").await });
    slow.wait_for_hits(1, Duration::from_secs(10)).await;
    vane.signal("TERM");

    // New connections are refused while the slow request is still being served.
    tokio::task::block_in_place(|| vane.wait_for_line("stopped accepting"));
    assert!(!in_flight.is_finished(), "the slow request ended early");
    let refused = tokio::net::TcpStream::connect(vane.address).await;
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

    let status = vane.exit_status().await;
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_makes_ready_answer_503_while_vane_serves_on_through_the_grace_and_a_second_ends_it()
 {
    let a = backend("a").start().await;
    let config = scratch_folder("sigterm-grace").join("vane.toml");
    // A grace far longer than this test takes: what it checks happens within it however slow
    // the machine, and dropping the process ends it.
    let extra = "admin = \"127.0.0.1:0\"\n[proxy]\nshutdown_grace = \"5m\"\n";
    std::fs::write(&config, config_for(&[&a], extra)).unwrap();
    let mut vane = VaneProcess::start(&config);
    let admin = Client::new(vane.admin.expect("an admin address in the log"));
    let ready = admin.get("/ready").await.unwrap();
    assert_eq!(ready.status, 200, "{}", ready.text());
    let connection = |reply: &vane_e2e::client::Reply| {
        let value = reply.headers.get("connection");
        value.map(|v| v.to_str().unwrap().to_owned())
    };
    let kept = Client::new(vane.address).get("/").await.unwrap();
    assert_eq!(
        connection(&kept),
        None,
        "a keep-alive response before SIGTERM"
    );
    // An HTTP/2 client (h2c), with one request answered on its connection.
    let tcp = tokio::net::TcpStream::connect(vane.address).await.unwrap();
    let (mut h2, h2_connection) = h2::client::handshake(tcp).await.unwrap();
    let h2_connection = tokio::spawn(h2_connection);
    let request = http::Request::get("/").body(()).unwrap();
    let (answer, _) = h2.send_request(request, true).unwrap();
    assert_eq!(answer.await.unwrap().status(), 200);

    vane.signal("TERM");
    tokio::task::block_in_place(|| vane.wait_for_line("not ready"));
    let ready = admin.get("/ready").await.unwrap();
    assert_eq!(ready.status, 503, "{}", ready.text());
    assert!(ready.text().contains("shutting down"), "{}", ready.text());
    assert_eq!(admin.get("/live").await.unwrap().status, 200);
    // The listener is still open, and requests are served as before, each response telling
    // its client to close the connection and come back (elsewhere, once /ready has done its
    // work).
    let reply = Client::new(vane.address).get("/").await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.backend.as_deref(), Some("a"));
    assert_eq!(connection(&reply).as_deref(), Some("close"));
    // The HTTP/2 client was told GOAWAY: its connection ends, long before the grace does.
    let ended = tokio::time::timeout(Duration::from_secs(60), h2_connection).await;
    assert!(
        matches!(ended, Ok(Ok(Ok(())))),
        "the h2 connection did not end gracefully: {ended:?}"
    );

    // A second signal cuts the grace short: vane drains and exits 0.
    vane.signal("TERM");
    tokio::task::block_in_place(|| vane.wait_for_line("grace skipped"));
    let status = vane.exit_status().await;
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_config_file_and_refuses_a_broken_one() {
    let a = backend("a").start().await;
    let b = backend("b").start().await;
    let config = scratch_folder("sighup").join("vane.toml");
    std::fs::write(&config, config_for(&[&a, &b], "")).unwrap();
    let mut vane = VaneProcess::start(&config);
    let client = Client::new(vane.address);
    assert_eq!(tally(&client, 10).await, counts(&[("a", 5), ("b", 5)]));

    // A broken config is refused with its location; the running config keeps serving.
    replace_file(
        &config,
        "listen = \"127.0.0.1:0\"\n[[backends]]\nname = \"a\"\n",
    );
    vane.signal("HUP");
    let refused = vane.wait_for_line("reload refused");
    assert!(refused.contains("vane.toml"), "{refused}");
    assert_eq!(tally(&client, 10).await, counts(&[("a", 5), ("b", 5)]));

    // A good one is swapped in: b leaves the set, and vane keeps running on the same socket.
    replace_file(&config, &config_for(&[&a], ""));
    vane.signal("HUP");
    let reloaded = vane.wait_for_line("reloaded");
    assert!(reloaded.contains("b"), "{reloaded}");
    assert_eq!(tally(&client, 10).await, counts(&[("a", 10)]));
    assert!(vane.child.try_wait().unwrap().is_none(), "vane exited");

    vane.signal("TERM");
    let status = vane.exit_status().await;
    assert_eq!(status.code(), Some(0), "{status:?}");
}
