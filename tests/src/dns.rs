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
    /// The name only this server answers for.
    own: String,
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
        // A port found free may be taken before dnsmasq binds it: then it exits, and another
        // port is tried.
        for _ in 0..5 {
            if let Some(server) = DnsServer::start_on(free_udp_port(), folder, records) {
                return server;
            }
        }
        panic!("dnsmasq did not start on any of 5 free ports");
    }

    /// dnsmasq on `port`, once it answers for itself; `None` if it exited (the port taken).
    fn start_on(port: u16, folder: &Path, records: &Records<'_>) -> Option<DnsServer> {
        let hosts = folder.join("dns-hosts");
        // A name only this server knows, which says that the server answering is this one.
        let own = format!("own-{port}.vane.test");
        write_hosts(&hosts, &own, records.hosts);
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
        let mut server = DnsServer {
            address: SocketAddr::from(([127, 0, 0, 1], port)),
            hosts,
            own,
            child: Some(child),
        };
        server.wait_until_answering().then_some(server)
    }

    /// Replaces the A and AAAA records and tells dnsmasq to read them again (SIGHUP).
    pub fn set_hosts(&self, hosts: &[(&str, &str)]) {
        write_hosts(&self.hosts, &self.own, hosts);
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

    /// Waits until this server answers for its own name: `true`; `false` if dnsmasq exited
    /// first. Panics after 10 s.
    fn wait_until_answering(&mut self) -> bool {
        let started = Instant::now();
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let query = a_query(&self.own);
        let mut buffer = [0; 512];
        loop {
            let child = self.child.as_mut().expect("running");
            if child.try_wait().expect("dnsmasq's status").is_some() {
                self.child = None;
                return false;
            }
            let _ = socket.send_to(&query, self.address);
            // One answer record (ANCOUNT, bytes 6 and 7) to our own query id.
            if let Ok(read) = socket.recv(&mut buffer)
                && read > 12
                && buffer[..2] == query[..2]
                && u16::from_be_bytes([buffer[6], buffer[7]]) > 0
            {
                return true;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "dnsmasq on {} never answered",
                self.address
            );
        }
    }
}

/// A DNS query for `name`'s A record (id 0x1234, recursion desired).
fn a_query(name: &str) -> Vec<u8> {
    let mut query = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    query
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

/// Writes `hosts` and the server's `own` name to the hosts file at `path`.
fn write_hosts(path: &Path, own: &str, hosts: &[(&str, &str)]) {
    let text: String = std::iter::once(("127.0.0.1", own))
        .chain(hosts.iter().copied())
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
