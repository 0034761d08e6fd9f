//! TLS to a backend: the rustls client config a backend's `tls` asks for (the roots that may
//! sign its certificate, the name to check, ALPN for its protocol, a client certificate for
//! mutual TLS), read from its files with errors naming them.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use rustls::client::ResolvesClientCert;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};
use tokio_rustls::TlsConnector;

use super::certificates::{Certificate, pem_error, read};
use super::{TlsError, provider};
use crate::config::{BackendProtocol, BackendTls};

/// How vane connects to one TLS backend.
#[derive(Debug)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    /// Tells it apart from every other one made in this process: connections made with it are
    /// pooled under it.
    id: u64,
    /// A digest of everything it was made from (the files' content included), so that a reload
    /// reading the same files keeps it, and the connections made with it.
    fingerprint: [u8; 32],
}

impl ClientTls {
    /// Reads what `tls` names for a backend at `address` spoken to in `protocol`.
    pub fn load(
        tls: &BackendTls,
        address: SocketAddr,
        protocol: BackendProtocol,
    ) -> Result<Self, TlsError> {
        let mut digest = Sha256::new();
        let roots = match &tls.ca {
            Some(path) => {
                let pem = read(path)?;
                digest.update(&pem);
                Arc::new(roots_from(path, &pem)?)
            }
            None => system_roots(),
        };
        let builder = ClientConfig::builder_with_provider(Arc::new(provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .expect("ring supports TLS 1.2 and 1.3")
            .with_root_certificates(roots);
        let mut config = match &tls.client {
            Some(files) => {
                digest.update(read(&files.cert)?);
                digest.update(read(&files.key)?);
                let own = Certificate::load(files, &provider())?;
                builder.with_client_cert_resolver(Arc::new(OwnCertificate(own.key.clone())))
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![match protocol {
            BackendProtocol::H2 | BackendProtocol::H2c => b"h2".to_vec(),
            BackendProtocol::Http1 => b"http/1.1".to_vec(),
        }];
        let server_name = match &tls.server_name {
            Some(name) => ServerName::try_from(name.clone())
                .map_err(|_| TlsError::ServerName(name.clone()))?,
            None => ServerName::IpAddress(address.ip().into()),
        };
        digest.update(format!("{server_name:?} {protocol} {}", tls.ca.is_some()));
        static IDS: AtomicU64 = AtomicU64::new(1);
        Ok(ClientTls {
            id: IDS.fetch_add(1, Ordering::Relaxed),
            config: Arc::new(config),
            server_name,
            fingerprint: digest.finalize().into(),
        })
    }

    /// What performs the handshakes.
    pub fn connector(&self) -> TlsConnector {
        TlsConnector::from(self.config.clone())
    }

    /// The name sent as SNI (none for an IP address) and checked against the certificate.
    pub fn server_name(&self) -> &ServerName<'static> {
        &self.server_name
    }

    /// A number no other one made in this process has (never 0).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether `other` was made from the same settings and file contents.
    pub fn same_as(&self, other: &ClientTls) -> bool {
        self.fingerprint == other.fingerprint
    }
}

/// The certificates of a CA file at `path`, holding `pem`.
fn roots_from(path: &Path, pem: &[u8]) -> Result<RootCertStore, TlsError> {
    let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|err| pem_error(path, err))?;
    if certificates.is_empty() {
        return Err(pem_error(path, "no PEM certificate in it"));
    }
    let mut roots = RootCertStore::empty();
    for certificate in certificates {
        roots
            .add(certificate)
            .map_err(|err| TlsError::Certificate {
                path: path.to_owned(),
                what: err.to_string(),
            })?;
    }
    Ok(roots)
}

/// The system's trusted roots, read once (there may be hundreds); a system without any gets
/// an empty set, and every handshake then fails verification, counted as a connect failure.
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            for error in &found.errors {
                tracing::warn!(%error, "a system root certificate could not be read");
            }
            let mut roots = RootCertStore::empty();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                tracing::warn!("no system root certificates found: TLS backends need tls.ca");
            }
            Arc::new(roots)
        })
        .clone()
}

/// Presents the one client certificate vane has to every backend that asks.
#[derive(Debug)]
struct OwnCertificate(Arc<CertifiedKey>);

impl ResolvesClientCert for OwnCertificate {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
