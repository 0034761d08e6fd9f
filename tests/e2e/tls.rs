//! TLS termination: vane serves a TLS listener and a plaintext one at once; curl and a rustls
//! client reach the backends over HTTP/1.1 and HTTP/2 (by ALPN); the client's SNI name chooses
//! the certificate; a certificate replaced on disk is served to the next connection while an
//! open one goes on; a bad certificate is refused with its file's name, at start and on reload,
//! and the old one keeps serving; and what is not TLS on the TLS port is refused and counted.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use vane::state::ClientFault;
use vane_e2e::backend::backend;
use vane_e2e::command::run_vane;
use vane_e2e::files::{scratch_folder, write_file};
use vane_e2e::raw::RawClient;
use vane_e2e::tls::{Issued, TestCa, TlsClient, served_certificate};
use vane_e2e::{Backend, Vane, wait_until};

const H2: &[u8] = b"h2";
const HTTP1: &[u8] = b"http/1.1";

/// A config with a plaintext listener and a TLS one (serving `certificates`, the default
/// first), an admin listener, and the backends.
fn config(certificates: &[&Issued], backends: &[&Backend]) -> String {
    let list: Vec<String> = certificates.iter().map(|c| c.toml()).collect();
    let mut text = format!(
        "listen = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\ntls = {{ certificates = [{}] }}\n",
        list.join(", ")
    );
    for backend in backends {
        text.push_str(&backend.toml(1));
    }
    text
}

/// The TLS listener's address (the second listener).
fn tls_address(vane: &Vane) -> std::net::SocketAddr {
    vane.listeners[1]
}

/// Runs curl against the TLS listener of `vane` as `host`, trusting `ca`: the body and the
/// HTTP version, as curl reports them.
fn curl(vane: &Vane, ca: &Path, host: &str, path: &str, version: &str) -> (String, String) {
    let port = tls_address(vane).port();
    let output = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "10", version])
        .arg("--cacert")
        .arg(ca)
        .args(["--resolve", &format!("{host}:{port}:127.0.0.1")])
        .args(["--write-out", "\n%{http_version}"])
        .arg(format!("https://{host}:{port}{path}"))
        .output()
        .expect("curl runs (apt-get install curl)");
    assert!(
        output.status.success(),
        "curl {version}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("text");
    let (body, version) = text.rsplit_once('\n').expect("curl's version line");
    (body.to_owned(), version.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_reaches_the_backends_over_https_on_http1_and_http2_beside_plaintext() {
    let folder = scratch_folder("tls-curl");
    let ca = TestCa::new();
    let site = ca.issue(&folder, "site", &["site.test"]);
    let a = backend("a").start().await;
    let vane = Vane::start(&config(&[&site], &[&a])).await.unwrap();
    let ca_file = ca.write_pem(&folder);
    let curl = |path, version| curl(&vane, &ca_file, "site.test", path, version);
    // blocking: curl is a process of its own.
    let (body, version) = tokio::task::block_in_place(|| curl("/", "--http1.1"));
    assert_eq!((body.as_str(), version.as_str()), ("a", "1.1"));
    let (body, version) = tokio::task::block_in_place(|| curl("/", "--http2"));
    assert_eq!((body.as_str(), version.as_str()), ("a", "2"));
    // The backend hears that the client's connection was TLS.
    let (headers, _) = tokio::task::block_in_place(|| curl("/headers", "--http2"));
    assert!(headers.contains("x-forwarded-proto: https"), "{headers}");
    // The plaintext listener serves beside it, and says so.
    let reply = vane.client().get("/headers").await.unwrap();
    assert!(
        reply.text().contains("x-forwarded-proto: http\n"),
        "{}",
        reply.text()
    );
    assert_eq!(vane.reloader().tls_listeners()[0].handshakes(), 3);
    vane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_s_server_name_chooses_the_certificate() {
    let folder = scratch_folder("tls-sni");
    let ca = TestCa::new();
    let default = ca.issue(&folder, "default", &["default.test"]);
    let exact = ca.issue(&folder, "exact", &["a.test", "www.a.test"]);
    let wildcard = ca.issue(&folder, "wildcard", &["*.b.test"]);
    let a = backend("a").start().await;
    let vane = Vane::start(&config(&[&default, &exact, &wildcard], &[&a]))
        .await
        .unwrap();
    let address = tls_address(&vane);
    for (name, expected) in [
        ("a.test", &exact),
        ("WWW.A.test", &exact),
        ("x.b.test", &wildcard),
        ("default.test", &default),
    ] {
        let stream = ca.connect(address, name, &[HTTP1]).await.unwrap();
        assert_eq!(served_certificate(&stream), expected.der, "{name}");
        let mut client = TlsClient::new(stream, name).await;
        assert_eq!(client.get("/").await.unwrap().body, "a");
    }
    // A name no certificate covers gets the default one, which the client refuses.
    let refused = ca.connect(address, "other.test", &[HTTP1]).await;
    assert!(refused.is_err(), "a certificate for other.test was served");
    // A client sending no name (an IP address) gets the default one too.
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let ip = rustls::pki_types::ServerName::IpAddress(address.ip().into());
    let stream = tokio_rustls::TlsConnector::from(ca.client_config(&[]))
        .connect(ip, tcp)
        .await;
    assert!(
        stream.is_err(),
        "the default certificate does not name 127.0.0.1"
    );
    vane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_replaced_on_disk_serves_new_connections_while_open_ones_go_on() {
    let folder = scratch_folder("tls-replace");
    let ca = TestCa::new();
    let old = ca.issue(&folder, "site", &["site.test"]);
    let a = backend("a").start().await;
    let vane = Vane::start(&config(&[&old], &[&a])).await.unwrap();
    let address = tls_address(&vane);
    let stream = ca.connect(address, "site.test", &[H2]).await.unwrap();
    assert_eq!(served_certificate(&stream), old.der);
    let mut open = TlsClient::new(stream, "site.test").await;
    assert_eq!(open.get("/").await.unwrap().version, http::Version::HTTP_2);

    // A renewal writes the same files again: the watch reads them, vane serves the new one.
    let listener = vane.reloader().tls_listeners()[0].clone();
    let before = listener.certificates();
    let new = ca.issue(&folder, "site", &["site.test"]);
    assert_ne!(new.der, old.der);
    wait_until("the new certificate read", || {
        !Arc::ptr_eq(&before, &listener.certificates())
    })
    .await;
    assert_eq!(vane.reloader().status().refused, 0);
    let stream = ca.connect(address, "site.test", &[H2]).await.unwrap();
    assert_eq!(served_certificate(&stream), new.der);
    // The connection opened before goes on with its session.
    assert_eq!(open.get("/").await.unwrap().body, "a");
    vane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_certificate_is_refused_at_start_and_on_reload_and_the_old_one_serves() {
    let folder = scratch_folder("tls-bad");
    let ca = TestCa::new();
    let good = ca.issue(&folder, "good", &["site.test"]);
    let other = ca.issue(&folder, "other", &["site.test"]);
    let a = backend("a").start().await;

    // At start: a key that is not the certificate's, a file that is not PEM, a missing file.
    let mismatched = Issued {
        key: other.key.clone(),
        ..good.clone()
    };
    let garbage = Issued {
        cert: write_file(&folder, "garbage.pem", "not a certificate\n"),
        ..good.clone()
    };
    let missing = Issued {
        cert: folder.join("missing.pem"),
        ..good.clone()
    };
    for (bad, file, says) in [
        (
            &mismatched,
            &other.key,
            "does not belong to the certificate",
        ),
        (&garbage, &garbage.cert, "no PEM certificate"),
        (&missing, &missing.cert, "cannot read it"),
    ] {
        let refused = Vane::start(&config(&[bad], &[&a])).await;
        let error = format!("{:#}", refused.err().expect("vane refused the certificate"));
        assert!(error.contains(&file.display().to_string()), "{error}");
        assert!(error.contains(says), "{error}");
    }

    // On reload: the config file names a key that is not the certificate's.
    let config_file = folder.join("vane.toml");
    std::fs::write(&config_file, config(&[&good], &[&a])).unwrap();
    let vane = Vane::start_file(&config_file).await.unwrap();
    std::fs::write(&config_file, config(&[&mismatched], &[&a])).unwrap();
    let (status, body) = vane.admin_post("/reload").await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("does not belong"), "{body}");
    let stream = ca
        .connect(tls_address(&vane), "site.test", &[HTTP1])
        .await
        .unwrap();
    assert_eq!(
        served_certificate(&stream),
        good.der,
        "the old certificate serves"
    );
    // `GET /tls` shows the certificate in force.
    let (status, body) = vane.admin_get("/tls").await;
    assert_eq!(status, 200, "{body}");
    let tls: serde_json::Value = serde_json::from_str(&body).unwrap();
    let certificate = &tls["listeners"][0]["certificates"][0];
    assert_eq!(certificate["cert"], good.cert.display().to_string());
    assert_eq!(certificate["names"], serde_json::json!(["site.test"]));
    assert_eq!(certificate["expires_soon"], false);
    vane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiring_certificate_is_shown_in_the_admin_api_and_metrics() {
    let folder = scratch_folder("tls-expiry");
    let ca = TestCa::new();
    let expired = ca.issue_until(&folder, "expired", &["old.test"], (2020, 1, 1));
    let a = backend("a").start().await;
    let vane = Vane::start(&config(&[&expired], &[&a])).await.unwrap();
    let (_, body) = vane.admin_get("/tls").await;
    let tls: serde_json::Value = serde_json::from_str(&body).unwrap();
    let certificate = &tls["listeners"][0]["certificates"][0];
    assert_eq!(certificate["expired"], true, "{body}");
    assert_eq!(certificate["expires_soon"], true, "{body}");
    assert_eq!(
        certificate["not_after"], "2020-01-01T00:00:00.000Z",
        "{body}"
    );
    let metrics = vane.metrics().await;
    let key = format!(
        "vane_tls_certificate_expiry_timestamp_seconds{{cert={},listener={}}}",
        expired.cert.display(),
        tls["listeners"][0]["address"].as_str().unwrap()
    );
    assert_eq!(metrics.get(&key), Some(&1_577_836_800.0), "{metrics:?}");
    vane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_not_tls_on_the_tls_port_is_refused_and_counted() {
    let folder = scratch_folder("tls-garbage");
    let ca = TestCa::new();
    let site = ca.issue(&folder, "site", &["site.test"]);
    let a = backend("a").start().await;
    let vane = Vane::start(&config(&[&site], &[&a])).await.unwrap();
    let address = tls_address(&vane);
    let connections = vane.state().client_connections();

    // A plaintext request gets a 400 that says why.
    let mut plain = RawClient::connect(address).await;
    let reply = plain
        .exchange("GET / HTTP/1.1\r\nhost: site.test\r\n\r\n")
        .await;
    assert_eq!(reply.status(), 400, "{reply:?}");
    assert!(reply.text().contains("TLS listener"), "{reply:?}");
    assert!(plain.closed().await);
    // Bytes that are neither TLS nor HTTP end the handshake.
    let mut garbage = RawClient::connect(address).await;
    garbage
        .send(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5])
        .await;
    assert!(garbage.closed().await);
    wait_until("the failed handshake counted", || {
        connections.faults(ClientFault::TlsHandshake) == 1
    })
    .await;
    assert_eq!(connections.faults(ClientFault::PlainHttpOnTls), 1);
    // Everyone else is served.
    let stream = ca.connect(address, "site.test", &[HTTP1]).await.unwrap();
    let mut client = TlsClient::new(stream, "site.test").await;
    assert_eq!(client.get("/").await.unwrap().status, 200);
    let metrics = vane.metrics().await;
    assert_eq!(
        metrics["vane_client_faults_total{fault=tls_handshake}"],
        1.0
    );
    assert_eq!(
        metrics["vane_client_faults_total{fault=plain_http_on_tls}"],
        1.0
    );
    vane.stop().await;
}

#[test]
fn vane_check_shows_each_certificate_and_refuses_a_bad_one_naming_its_file() {
    let folder = scratch_folder("tls-check");
    let ca = TestCa::new();
    let good = ca.issue(&folder, "good", &["site.test", "*.site.test"]);
    let other = ca.issue(&folder, "other", &["other.test"]);
    let config = |certificate: &Issued| {
        format!(
            "[[listeners]]\naddress = \"127.0.0.1:8443\"\ntls = {{ certificates = [{}] }}\n\
             [[backends]]\nname = \"a\"\naddress = \"127.0.0.1:9001\"\n",
            certificate.toml()
        )
    };
    let path = write_file(&folder, "good.toml", config(&good));
    let ran = run_vane(["check".as_ref(), "--config".as_ref(), path.as_os_str()]);
    assert!(ran.ok, "{}", ran.stderr);
    assert!(
        ran.stdout.contains("site.test, *.site.test; expires in"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains("listen 127.0.0.1:8443 (TLS)"),
        "{}",
        ran.stdout
    );

    let mismatched = Issued {
        key: other.key.clone(),
        ..good.clone()
    };
    let path = write_file(&folder, "bad.toml", config(&mismatched));
    let ran = run_vane(["check".as_ref(), "--config".as_ref(), path.as_os_str()]);
    assert!(!ran.ok, "{}", ran.stdout);
    let key = other.key.display().to_string();
    assert!(
        ran.stderr.contains(&format!(
            "{key}: this key does not belong to the certificate"
        )),
        "{}",
        ran.stderr
    );
}
