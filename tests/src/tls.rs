//! TLS for the tests: a certificate authority made for one test, the certificates it issues as
//! PEM files, and clients that trust it (rustls, speaking HTTP/1.1 or HTTP/2 by ALPN).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, date_time_ymd,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::files::write_file;

/// A certificate authority of a test's own.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate issued by a [`TestCa`], written to PEM files.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate file.
    pub cert: PathBuf,
    /// Its key file.
    pub key: PathBuf,
    /// The certificate itself, to recognise it when a server presents it.
    pub der: CertificateDer<'static>,
}

impl Issued {
    /// The `{ cert = …, key = … }` entry naming it in a listener's `tls.certificates`.
    pub fn toml(&self) -> String {
        format!(
            "{{ cert = {:?}, key = {:?} }}",
            self.cert.display().to_string(),
            self.key.display().to_string()
        )
    }
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}

impl TestCa {
    /// A new authority with a key of its own.
    pub fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "vane test CA");
        let key = KeyPair::generate().expect("a CA key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("a CA certificate");
        TestCa { issuer }
    }

    /// The authority's certificate as PEM, written to `folder/ca.pem` (for `curl --cacert`).
    pub fn write_pem(&self, folder: &Path) -> PathBuf {
        write_file(folder, "ca.pem", self.issuer.pem())
    }

    /// Issues a certificate for `names`, valid until 2100, to `folder/FILE.pem` and
    /// `folder/FILE.key`.
    pub fn issue(&self, folder: &Path, file: &str, names: &[&str]) -> Issued {
        self.issue_until(folder, file, names, (2100, 1, 1))
    }

    /// As [`TestCa::issue`], valid until the date `(year, month, day)`.
    pub fn issue_until(
        &self,
        folder: &Path,
        file: &str,
        names: &[&str],
        (year, month, day): (i32, u8, u8),
    ) -> Issued {
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("certificate params");
        params.not_before = date_time_ymd(2000, 1, 1);
        params.not_after = date_time_ymd(year, month, day);
        let key = KeyPair::generate().expect("a key");
        let cert = params.signed_by(&key, &self.issuer).expect("a certificate");
        Issued {
            cert: write_file(folder, &format!("{file}.pem"), cert.pem()),
            key: write_file(folder, &format!("{file}.key"), key.serialize_pem()),
            der: cert.der().clone(),
        }
    }

    /// A rustls client config trusting this authority, offering `alpn`.
    pub fn client_config(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(self.issuer.der().clone())
            .expect("the CA as a root");
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
        Arc::new(config)
    }

    /// A rustls server config presenting `issued`, offering `alpn`; with `clients_too`, it
    /// asks every client for a certificate this authority issued and refuses one without
    /// (mutual TLS).
    pub fn server_config(
        &self,
        issued: &Issued,
        alpn: &[&[u8]],
        clients_too: bool,
    ) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::from_pem_file(&issued.key).expect("the issued key");
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("TLS versions");
        let builder = if clients_too {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(self.issuer.der().clone())
                .expect("the CA as a root");
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .expect("a client verifier");
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder
            .with_single_cert(vec![issued.der.clone()], key)
            .expect("a server config");
        config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
        Arc::new(config)
    }

    /// Connects to `address` over TLS, asking for `server_name` and offering `alpn`.
    ///
    /// # Errors
    /// If the connection or the handshake fails (such as a certificate this authority did not
    /// issue for `server_name`).
    pub async fn connect(
        &self,
        address: SocketAddr,
        server_name: &str,
        alpn: &[&[u8]],
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(address).await?;
        let name = ServerName::try_from(server_name.to_owned()).expect("a server name");
        TlsConnector::from(self.client_config(alpn))
            .connect(name, tcp)
            .await
    }
}

/// The certificate the server presented on `stream`.
pub fn served_certificate(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    let (_, session) = stream.get_ref();
    session
        .peer_certificates()
        .expect("the server's certificate")[0]
        .clone()
}

/// What came back for one request over TLS.
#[derive(Debug)]
pub struct TlsReply {
    /// Its status.
    pub status: u16,
    /// The HTTP version it came in.
    pub version: http::Version,
    /// Its body, as text.
    pub body: String,
}

/// A client connection over TLS that sends requests one after another, over HTTP/1.1 or
/// HTTP/2 as ALPN chose.
pub struct TlsClient {
    sender: Sender,
    host: String,
}

enum Sender {
    Http1(hyper::client::conn::http1::SendRequest<Empty<Bytes>>),
    Http2(hyper::client::conn::http2::SendRequest<Empty<Bytes>>),
}

impl TlsClient {
    /// Speaks HTTP on `stream` (HTTP/2 if ALPN chose `h2`), asking for `host`.
    pub async fn new(stream: TlsStream<TcpStream>, host: &str) -> Self {
        let http2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(stream);
        let sender = if http2 {
            let (sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .expect("an HTTP/2 handshake");
            tokio::spawn(connection);
            Sender::Http2(sender)
        } else {
            let (sender, connection) = hyper::client::conn::http1::handshake(io)
                .await
                .expect("an HTTP/1 handshake");
            tokio::spawn(connection);
            Sender::Http1(sender)
        };
        TlsClient {
            sender,
            host: host.to_owned(),
        }
    }

    /// `GET path`.
    ///
    /// # Errors
    /// If the connection broke.
    pub async fn get(&mut self, path: &str) -> hyper::Result<TlsReply> {
        let request = http::Request::get(format!("https://{}{path}", self.host));
        let response = match &mut self.sender {
            Sender::Http1(sender) => {
                let request = request
                    .header(http::header::HOST, &self.host)
                    .body(Empty::new())
                    .expect("a request");
                sender.send_request(request).await?
            }
            Sender::Http2(sender) => {
                let request = request.body(Empty::new()).expect("a request");
                sender.send_request(request).await?
            }
        };
        let status = response.status().as_u16();
        let version = response.version();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(TlsReply {
            status,
            version,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
}
