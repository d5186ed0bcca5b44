//! TLS to a parent proxy: the parent's certificate is verified against the CA bundle the
//! operator names (a corporate proxy is usually signed by the corporate CA, not a public one),
//! for the name the operator expects it to present.

use std::fmt;
use std::io;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::names::Host;

/// A verified TLS client for one parent.
#[derive(Clone)]
pub struct ParentTls {
    connector: TlsConnector,
    server_name: ServerName<'static>,
}

impl ParentTls {
    /// `ca_pem` holds the certificates the parent's chain must lead to; `server_name` is the
    /// name (or IP) its certificate must carry, by default the parent's host.
    pub fn new(ca_pem: &[u8], server_name: Option<&str>, host: &Host) -> Result<Self, String> {
        let certs = rustls_pemfile::certs(&mut &*ca_pem)
            .collect::<Result<Vec<CertificateDer<'static>>, _>>()
            .map_err(|err| format!("ca_file: {err}"))?;
        if certs.is_empty() {
            return Err("ca_file: no PEM certificate found".into());
        }
        let mut roots = RootCertStore::empty();
        for cert in certs {
            roots.add(cert).map_err(|err| format!("ca_file: {err}"))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|err| format!("TLS protocol versions: {err}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = server_name.map_or_else(|| host.to_string(), str::to_owned);
        let server_name = ServerName::try_from(name.clone())
            .map_err(|_| format!("server_name `{name}` is not a DNS name or IP address"))?;
        Ok(Self {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }

    /// Runs the handshake over a connected socket; fails when the certificate does not verify.
    pub async fn connect(&self, tcp: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        self.connector.connect(self.server_name.clone(), tcp).await
    }
}

impl fmt::Debug for ParentTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParentTls")
            .field("server_name", &self.server_name)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_without_certificates_or_a_bad_name_is_refused() {
        let host = Host::parse("proxy.corp.example").unwrap();
        assert!(ParentTls::new(b"", None, &host)
            .unwrap_err()
            .contains("no PEM certificate"));
        let cert = rcgen::generate_simple_self_signed(vec!["proxy.corp.example".into()]).unwrap();
        let pem = cert.cert.pem();
        assert!(ParentTls::new(pem.as_bytes(), None, &host).is_ok());
        assert!(ParentTls::new(pem.as_bytes(), Some("not a name!"), &host)
            .unwrap_err()
            .contains("server_name"));
    }
}
