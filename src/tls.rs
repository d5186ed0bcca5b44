//! The mTLS listener's TLS: a rustls server config built from the serving certificate, its key
//! and the tenant CA, reloadable when the files rotate, and handshake failures classified into a
//! small fixed set of metric reasons.
//!
//! It does not decide who the tenant is (`identify` reads the certificate) and records nothing.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::config::gateway::TlsFiles;

/// ALPN protocols offered, in preference order: HTTP/2 CONNECT is cheaper per tunnel.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The current server config, swapped when the files change.
pub struct TlsReloader {
    files: TlsFiles,
    current: ArcSwap<ServerConfig>,
}

impl TlsReloader {
    /// Loads the files; fails with a message naming the file at fault.
    pub fn new(files: TlsFiles) -> Result<Self, String> {
        let config = build(&files)?;
        Ok(Self {
            files,
            current: ArcSwap::from(config),
        })
    }

    /// Re-reads the files; a broken replacement is refused and the previous config kept.
    pub fn reload(&self) -> Result<(), String> {
        let config = build(&self.files)?;
        self.current.store(config);
        Ok(())
    }

    /// An acceptor for the next handshake.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.load_full())
    }

    /// The files this config comes from, for watching.
    pub fn files(&self) -> Vec<PathBuf> {
        vec![
            self.files.cert.clone(),
            self.files.key.clone(),
            self.files.client_ca.clone(),
        ]
    }
}

fn build(files: &TlsFiles) -> Result<Arc<ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = read_certs(&files.cert)?;
    let key = read_key(&files.key)?;
    let mut roots = RootCertStore::empty();
    for ca in read_certs(&files.client_ca)? {
        roots
            .add(ca)
            .map_err(|e| format!("{}: {e}", files.client_ca.display()))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("{}: {e}", files.client_ca.display()))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS protocol versions: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| format!("{} / {}: {e}", files.cert.display(), files.key.display()))?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

fn read_certs(path: &PathBuf) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate found", path.display()));
    }
    Ok(certs)
}

fn read_key(path: &PathBuf) -> Result<PrivateKeyDer<'static>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| format!("{}: {e}", path.display()))?
        .ok_or_else(|| format!("{}: no PEM private key found", path.display()))
}

/// Why a handshake failed, as a bounded label value.
pub fn handshake_failure_reason(err: &io::Error) -> &'static str {
    let Some(tls) = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    else {
        return match err.kind() {
            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => "client_closed",
            _ => "io",
        };
    };
    match tls {
        rustls::Error::NoCertificatesPresented => "no_client_cert",
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => "unknown_ca",
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => "expired",
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "not_yet_valid"
            }
            CertificateError::Revoked => "revoked",
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                "bad_key_usage"
            }
            _ => "bad_certificate",
        },
        rustls::Error::NoApplicationProtocol => "no_alpn",
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => "not_tls",
        rustls::Error::PeerIncompatible(_) => "incompatible",
        rustls::Error::AlertReceived(_) => "alert_received",
        _ => "handshake_failed",
    }
}
