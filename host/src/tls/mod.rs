//! TLS with rustls: a TLS listener's server config (TLS 1.2 and 1.3, ALPN `h2` and
//! `http/1.1`, session tickets) and its certificates, which a reload replaces without touching
//! the connections open; and the client config for TLS backends (`client.rs`). The crypto provider is *ring*: it builds in seconds where aws-lc-rs
//! needs cmake and a long C build, and it serves the same cipher suites.

mod certificates;
mod client;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

pub use certificates::{Certificate, Certificates, EXPIRY_WARNING, TlsError};
pub use client::ClientTls;

/// The protocols offered by ALPN, preferred first.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The crypto vane's TLS uses.
fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// One TLS listener: what its handshakes use, and how many succeeded.
#[derive(Debug)]
pub struct TlsListener {
    address: SocketAddr,
    config: Arc<ServerConfig>,
    certificates: Arc<ArcSwap<Certificates>>,
    handshakes: AtomicU64,
}

impl TlsListener {
    /// A listener bound to `address` serving `certificates`.
    pub fn new(address: SocketAddr, certificates: Certificates) -> Arc<Self> {
        let certificates = Arc::new(ArcSwap::from_pointee(certificates));
        let resolver = Resolver(certificates.clone());
        let mut config = ServerConfig::builder_with_provider(Arc::new(provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .expect("ring supports TLS 1.2 and 1.3")
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver));
        config.alpn_protocols = ALPN.iter().map(|protocol| protocol.to_vec()).collect();
        // Resumed sessions skip the key exchange: clients that come back cost far less.
        match rustls::crypto::ring::Ticketer::new() {
            Ok(ticketer) => config.ticketer = ticketer,
            Err(err) => tracing::warn!(error = %err, "TLS session tickets are off"),
        }
        Arc::new(TlsListener {
            address,
            config: Arc::new(config),
            certificates,
            handshakes: AtomicU64::new(0),
        })
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// What performs its handshakes.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.clone())
    }

    /// The certificates it serves now.
    pub fn certificates(&self) -> Arc<Certificates> {
        self.certificates.load_full()
    }

    /// Serves `certificates` from the next handshake on; connections open keep theirs.
    pub fn replace(&self, certificates: Certificates) {
        certificates.warn_of_expiry();
        self.certificates.store(Arc::new(certificates));
    }

    /// Counts a handshake that succeeded.
    pub(crate) fn handshake_done(&self) {
        self.handshakes.fetch_add(1, Ordering::Relaxed);
    }

    /// Handshakes that succeeded since start.
    pub fn handshakes(&self) -> u64 {
        self.handshakes.load(Ordering::Relaxed)
    }
}

/// Chooses each handshake's certificate by the client's SNI name, from the certificates in
/// force at that moment.
#[derive(Debug)]
struct Resolver(Arc<ArcSwap<Certificates>>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let certificates = self.0.load();
        Some(certificates.choose(hello.server_name()).key.clone())
    }
}
