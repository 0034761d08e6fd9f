//! A TLS listener's certificates, read from their PEM files: each chain with its key (checked
//! to match), the names it covers and when it expires. A client's SNI name chooses the
//! certificate covering it (an exact name first, then a wildcard); the first one serves every
//! other client.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::config::{CertificateFiles, TlsConfig};

/// How close to its expiry a certificate is said to be soon expiring: in the log at start and
/// at every reload, and in the admin API.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 24 * 3600);

/// Why a certificate could not be used; each names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read.
    // The system's words are part of the message, not a source of their own: printed with
    // its causes, the error would say them twice.
    #[error("{}: cannot read it: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        error: std::io::Error,
    },
    /// The file holds no PEM block of the kind expected, or a broken one.
    #[error("{}: {what}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong, such as "no PEM certificate in it".
        what: String,
    },
    /// The certificate does not parse as X.509.
    #[error("{}: not a readable X.509 certificate: {what}", path.display())]
    Certificate {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        what: String,
    },
    /// The key is of a kind rustls cannot sign with.
    #[error("{}: not a usable private key: {what}", path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// rustls's complaint.
        what: String,
    },
    /// A backend's `server_name` is neither a DNS name nor an IP address.
    #[error("{0:?} is not a DNS name or an IP address")]
    ServerName(String),
    /// The key is not the certificate's.
    #[error("{}: this key does not belong to the certificate in {}", key.display(), cert.display())]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
}

/// One certificate in use.
#[derive(Debug)]
pub struct Certificate {
    /// The files it was read from.
    pub files: CertificateFiles,
    /// The DNS names it covers (subject alternative names, or else its common name), lower
    /// case; a wildcard stays as written (`*.example.com`).
    pub names: Vec<String>,
    /// When it expires (its `notAfter`).
    pub not_after: SystemTime,
    /// The chain and the signing key rustls serves.
    pub(super) key: Arc<CertifiedKey>,
}

/// A TLS listener's certificates, the first being the default.
#[derive(Debug)]
pub struct Certificates {
    list: Vec<Certificate>,
}

impl Certificates {
    /// Reads every certificate `config` names; the first error, naming its file, refuses them all.
    ///
    /// # Errors
    /// An unreadable file, a file without the PEM block expected or with a broken one, a
    /// certificate that is not X.509, a key rustls cannot sign with, or a key that is not the
    /// certificate's.
    pub fn load(config: &TlsConfig) -> Result<Self, TlsError> {
        let provider = super::provider();
        let list = config
            .certificates
            .iter()
            .map(|files| Certificate::load(files, &provider))
            .collect::<Result<_, _>>()?;
        Ok(Certificates { list })
    }

    /// Every certificate, the default first.
    pub fn list(&self) -> &[Certificate] {
        &self.list
    }

    /// The certificate for a client that asked for `server_name` (SNI), if any: the first whose
    /// names hold it exactly, else the first with a wildcard covering it, else the default.
    pub(super) fn choose(&self, server_name: Option<&str>) -> &Certificate {
        let default = &self.list[0];
        let Some(name) = server_name.map(str::to_ascii_lowercase) else {
            return default;
        };
        let exact = self.list.iter().find(|c| c.names.contains(&name));
        let wildcard = || {
            let (_, parent) = name.split_once('.')?;
            let wildcard = format!("*.{parent}");
            self.list.iter().find(|c| c.names.contains(&wildcard))
        };
        exact.or_else(wildcard).unwrap_or(default)
    }

    /// One line per certificate: its file, names and expiry, for `vane check` and the log.
    pub fn describe(&self) -> Vec<String> {
        let now = SystemTime::now();
        self.list
            .iter()
            .map(|certificate| {
                format!(
                    "{}: {}; {}",
                    certificate.files.cert.display(),
                    certificate.names.join(", "),
                    certificate.expiry(now)
                )
            })
            .collect()
    }

    /// Logs a warning for each certificate expired or expiring within [`EXPIRY_WARNING`].
    pub fn warn_of_expiry(&self) {
        let now = SystemTime::now();
        for certificate in &self.list {
            if certificate.expires_soon(now) {
                tracing::warn!(
                    file = %certificate.files.cert.display(),
                    names = %certificate.names.join(","),
                    "certificate {}",
                    certificate.expiry(now)
                );
            }
        }
    }
}

impl Certificate {
    /// Reads a chain and its key from `files`, the key loaded by `provider` and checked to be
    /// the certificate's.
    pub(super) fn load(
        files: &CertificateFiles,
        provider: &CryptoProvider,
    ) -> Result<Self, TlsError> {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(&read(&files.cert)?)
                .collect::<Result<_, _>>()
                .map_err(|err| pem_error(&files.cert, err))?;
        let Some(leaf) = chain.first() else {
            return Err(pem_error(&files.cert, "no PEM certificate in it"));
        };
        let (names, not_after) = leaf_facts(leaf).map_err(|what| TlsError::Certificate {
            path: files.cert.clone(),
            what,
        })?;
        let key = PrivateKeyDer::from_pem_slice(&read(&files.key)?).map_err(|err| match err {
            rustls::pki_types::pem::Error::NoItemsFound => {
                pem_error(&files.key, "no PEM private key in it")
            }
            err => pem_error(&files.key, err),
        })?;
        let signing = provider
            .key_provider
            .load_private_key(key)
            .map_err(|err| TlsError::Key {
                path: files.key.clone(),
                what: err.to_string(),
            })?;
        let key = CertifiedKey::new(chain, signing);
        key.keys_match().map_err(|_| TlsError::Mismatch {
            cert: files.cert.clone(),
            key: files.key.clone(),
        })?;
        Ok(Certificate {
            files: files.clone(),
            names,
            not_after,
            key: Arc::new(key),
        })
    }

    /// Whether it has expired, or expires within [`EXPIRY_WARNING`] of `now`.
    pub fn expires_soon(&self, now: SystemTime) -> bool {
        self.not_after < now + EXPIRY_WARNING
    }

    /// "expires in 89 days (2027-02-26T00:00:00Z)", or "EXPIRED 3 days ago (…)".
    pub fn expiry(&self, now: SystemTime) -> String {
        let date = humantime::format_rfc3339_seconds(self.not_after);
        let days = |d: Duration| d.as_secs() / 86_400;
        match self.not_after.duration_since(now) {
            Ok(left) => format!("expires in {} days ({date})", days(left)),
            Err(past) => format!("EXPIRED {} days ago ({date})", days(past.duration())),
        }
    }
}

/// The bytes of `path`, or an error naming it.
pub(super) fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError::Read {
        path: path.to_owned(),
        error,
    })
}

/// An error in the PEM content of `path`.
pub(super) fn pem_error(path: &Path, what: impl ToString) -> TlsError {
    TlsError::Pem {
        path: path.to_owned(),
        what: what.to_string(),
    }
}

/// The DNS names a leaf certificate covers and its expiry.
fn leaf_facts(leaf: &CertificateDer<'_>) -> Result<(Vec<String>, SystemTime), String> {
    let (_, parsed) = X509Certificate::from_der(leaf).map_err(|err| err.to_string())?;
    let mut names: Vec<String> = match parsed.subject_alternative_name() {
        Ok(Some(alternatives)) => alternatives
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::DNSName(dns) => Some(dns.to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
        Ok(None) => Vec::new(),
        Err(err) => return Err(err.to_string()),
    };
    if names.is_empty() {
        let common = parsed.subject().iter_common_name();
        names.extend(common.filter_map(|cn| Some(cn.as_str().ok()?.to_ascii_lowercase())));
    }
    let seconds = parsed.validity().not_after.timestamp();
    let not_after = SystemTime::UNIX_EPOCH
        .checked_add(Duration::from_secs(seconds.max(0) as u64))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    Ok((names, not_after))
}
