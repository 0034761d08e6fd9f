//! gRPC peers for the tests: grpcio servers and clients (`tests/grpc/peer.py`, run with the
//! grpcio that `scripts/install-grpc.sh` puts under `target/grpc-python`), as processes whose
//! output lines are read as they come.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use crate::plugins::target_dir;

/// A running `peer.py`, killed when dropped.
pub struct GrpcPeer {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl GrpcPeer {
    /// Runs `peer.py` with `args`.
    ///
    /// # Panics
    /// If grpcio is not installed (with the command that installs it) or python3 cannot run.
    pub fn run(args: &[&str]) -> GrpcPeer {
        let grpcio = target_dir().join("grpc-python");
        assert!(
            grpcio.join("grpc").is_dir(),
            "{} has no grpcio: run `bash scripts/test.sh`, or `bash scripts/install-grpc.sh`",
            grpcio.display()
        );
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("grpc/peer.py");
        let mut child = Command::new(std::env::var("PYTHON").unwrap_or("python3".into()))
            .arg(script)
            .args(args)
            .env("PYTHONPATH", grpcio)
            .env("PYTHONUNBUFFERED", "1")
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs tests/grpc/peer.py");
        let stdout = child.stdout.take().expect("its output");
        GrpcPeer {
            child,
            lines: BufReader::new(stdout).lines(),
        }
    }

    /// Its next output line; panics if none comes within `within` (the peer hangs) or it ended.
    pub async fn line(&mut self, within: Duration) -> String {
        match tokio::time::timeout(within, self.lines.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(_) => panic!("the gRPC peer ended without another line"),
            Err(_) => panic!("the gRPC peer said nothing within {within:?}"),
        }
    }

    /// Every line until it exits (at most `within`).
    pub async fn rest(&mut self, within: Duration) -> Vec<String> {
        let mut lines = Vec::new();
        let read = async {
            while let Ok(Some(line)) = self.lines.next_line().await {
                lines.push(line);
            }
        };
        tokio::time::timeout(within, read)
            .await
            .expect("the gRPC peer finished in time");
        lines
    }

    /// Kills it at once (SIGKILL), as a crash would.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}

/// A grpcio server named `name` on a free loopback port.
pub struct GrpcServer {
    /// Its name, which its answers carry.
    pub name: String,
    /// Where it listens.
    pub address: SocketAddr,
    /// The process, to read its events (`cancelled Slow`) or kill it.
    pub peer: GrpcPeer,
}

impl GrpcServer {
    /// Starts one and waits until it listens.
    pub async fn start(name: &str) -> GrpcServer {
        let mut peer = GrpcPeer::run(&["serve", name]);
        let line = peer.line(Duration::from_secs(30)).await;
        let port: u16 = line
            .strip_prefix("port ")
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("the gRPC server said {line:?}, not its port"));
        GrpcServer {
            name: name.to_owned(),
            address: SocketAddr::from(([127, 0, 0, 1], port)),
            peer,
        }
    }

    /// Its `[[backends]]` entry: h2c, weight 1.
    pub fn toml(&self) -> String {
        format!(
            "[[backends]]\nname = \"{}\"\naddress = \"{}\"\nprotocol = \"h2c\"\n",
            self.name, self.address
        )
    }
}
