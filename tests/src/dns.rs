//! A real DNS server on loopback for the discovery tests: dnsmasq (Debian's `dnsmasq-base`,
//! which `scripts/test.sh` installs), answering only from records the test writes, with a TTL
//! the test sets. A change of the host records reaches it by SIGHUP, as an operator's would;
//! SRV records are fixed when it starts.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A dnsmasq serving on `127.0.0.1:port`; it stops when dropped.
pub struct DnsServer {
    /// Where it answers, UDP and TCP.
    pub address: SocketAddr,
    hosts: PathBuf,
    child: Option<Child>,
}

/// What a [`DnsServer`] answers.
pub struct Records<'a> {
    /// `ip name` lines, as in `/etc/hosts`: the A and AAAA records.
    pub hosts: &'a [(&'a str, &'a str)],
    /// SRV records: (name, target, port, priority, weight).
    pub srv: &'a [(&'a str, &'a str, u16, u16, u16)],
    /// The TTL of every record, in seconds.
    pub ttl: u32,
}

impl DnsServer {
    /// Starts dnsmasq answering `records`, its files in `folder`; waits until it answers.
    pub fn start(folder: &Path, records: &Records<'_>) -> DnsServer {
        let port = free_udp_port();
        let hosts = folder.join("dns-hosts");
        write_hosts(&hosts, records.hosts);
        let mut command = Command::new(dnsmasq());
        command
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
                "--user=root",
                "--pid-file=",
                "--log-facility=-",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--addn-hosts={}", hosts.display()))
            .arg(format!("--local-ttl={}", records.ttl))
            .arg(format!("--auth-ttl={}", records.ttl));
        for (name, target, port, priority, weight) in records.srv {
            command.arg(format!(
                "--srv-host={name},{target},{port},{priority},{weight}"
            ));
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq runs (apt-get install dnsmasq-base; scripts/test.sh does)");
        let server = DnsServer {
            address: SocketAddr::from(([127, 0, 0, 1], port)),
            hosts,
            child: Some(child),
        };
        server.wait_until_answering();
        server
    }

    /// Replaces the A and AAAA records and tells dnsmasq to read them again (SIGHUP).
    pub fn set_hosts(&self, hosts: &[(&str, &str)]) {
        write_hosts(&self.hosts, hosts);
        let pid = self.child.as_ref().expect("running").id();
        let status = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Stops the server: every lookup from now on goes unanswered.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits until a query gets an answer; panics after 10 s.
    fn wait_until_answering(&self) {
        let started = Instant::now();
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        // A query for `probe.` type A, class IN: any answer (even "refused") means it is up.
        let query =
            b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05probe\x00\x00\x01\x00\x01";
        let mut buffer = [0; 512];
        loop {
            let _ = socket.send_to(query, self.address);
            if socket.recv(&mut buffer).is_ok() {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "dnsmasq on {} never answered",
                self.address
            );
        }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// dnsmasq: on the PATH, or where Debian installs it (`/usr/sbin`, off a user's PATH).
fn dnsmasq() -> PathBuf {
    let installed = Path::new("/usr/sbin/dnsmasq");
    if installed.exists() {
        installed.to_owned()
    } else {
        PathBuf::from("dnsmasq")
    }
}

fn write_hosts(path: &Path, hosts: &[(&str, &str)]) {
    let text: String = hosts
        .iter()
        .map(|(ip, name)| format!("{ip} {name}\n"))
        .collect();
    // Written whole and renamed into place, so dnsmasq never reads half of it.
    let staged = path.with_extension("new");
    std::fs::write(&staged, text).unwrap();
    std::fs::rename(&staged, path).unwrap();
}

/// A UDP port free on 127.0.0.1 now (dnsmasq also takes the TCP port of the same number).
fn free_udp_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
