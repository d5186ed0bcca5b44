//! The shared world of every scenario: the origins' addresses, the PKI (tenant CA, gateway and
//! client certificates), a captured ClientHello, and the gateway config directories built on them.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::origins::{echo_conn, fake_tls_conn, http_conn, serve, source_conn};
use crate::Res;

/// The tenant identity of the mTLS client.
const SPIFFE: &str = "spiffe://cluster.local/ns/bench/sa/load";

/// Everything the scenarios share: origins, certificates, a captured ClientHello.
pub(crate) struct World {
    pub(crate) echo: SocketAddr,
    pub(crate) source: SocketAddr,
    pub(crate) tls: SocketAddr,
    pub(crate) http: SocketAddr,
    pub(crate) pki: Pki,
    pub(crate) hello: &'static [u8],
}

impl World {
    pub(crate) async fn new() -> Res<Self> {
        let echo = serve(echo_conn).await?;
        let source = serve(source_conn).await?;
        let tls = serve(fake_tls_conn).await?;
        let http = serve(http_conn).await?;
        let hello: &'static [u8] = Box::leak(client_hello("allowed.test")?.into_boxed_slice());
        println!(
            "# origins: echo {echo}, source {source}, fake TLS {tls}, HTTP {http}; ClientHello {} bytes (rustls)",
            hello.len()
        );
        Ok(Self {
            echo,
            source,
            tls,
            http,
            pki: Pki::new()?,
            hello,
        })
    }

    /// A config directory: every listener on 127.0.0.1:0, one runtime worker, tenant `bench` by
    /// source address and by SPIFFE ID, and STATIC entries for `allowed.test` pointing at the
    /// origins; plus `filler` more entries in 100 other namespaces.
    pub(crate) fn config(&self, filler: usize) -> Res<tempfile::TempDir> {
        let dir = tempfile::tempdir()?;
        let path = dir.path();
        std::fs::create_dir_all(path.join("certs"))?;
        std::fs::create_dir_all(path.join("serviceentries/bench"))?;
        std::fs::write(path.join("certs/gw.pem"), &self.pki.server.0)?;
        std::fs::write(path.join("certs/gw-key.pem"), &self.pki.server.1)?;
        std::fs::write(path.join("certs/ca.pem"), &self.pki.ca_pem)?;
        std::fs::write(
            path.join("gateway.yaml"),
            "listeners:\n  connect: {address: \"127.0.0.1:0\"}\n  connect_tls: {address: \"127.0.0.1:0\"}\n  sni: {address: \"127.0.0.1:0\", port: 443}\n  http: {address: \"127.0.0.1:0\", port: 80}\ntls: {cert: certs/gw.pem, key: certs/gw-key.pem, client_ca: certs/ca.pem}\nidentity:\n  trust_domain: cluster.local\n  sources:\n    - {cidr: \"127.0.0.1/32\", namespace: bench}\ndns:\n  servers: [\"127.0.0.1:53\"]\nlimits:\n  max_connections_per_namespace: 1000000\n  max_streams_per_connection: 256\nruntime: {worker_threads: 1}\n",
        )?;
        std::fs::write(
            path.join("serviceentries/bench/allowed.yaml"),
            format!(
                "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: allowed}}\nspec:\n  hosts: [\"allowed.test\"]\n  ports:\n    - {{number: 9000, name: echo, protocol: TCP, targetPort: {}}}\n    - {{number: 9001, name: source, protocol: TCP, targetPort: {}}}\n    - {{number: 443, name: tls, protocol: TLS, targetPort: {}}}\n    - {{number: 80, name: http, protocol: HTTP, targetPort: {}}}\n  resolution: STATIC\n  endpoints:\n    - address: 127.0.0.1\n",
                self.echo.port(),
                self.source.port(),
                self.tls.port(),
                self.http.port()
            ),
        )?;
        let mut written = 0;
        let mut file = 0;
        while written < filler {
            let mut text = String::new();
            for _ in 0..100.min(filler - written) {
                let _ = write!(
                    text,
                    "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: e{written}, namespace: fill{}}}\nspec:\n  hosts: [\"{}svc{written}.fill.test\"]\n  ports:\n    - {{number: 443, name: https, protocol: HTTPS}}\n  resolution: {}\n",
                    written % 100,
                    if written % 10 == 0 { "*." } else { "" },
                    if written % 10 == 0 { "NONE" } else { "DNS" }
                );
                written += 1;
            }
            std::fs::write(
                path.join(format!("serviceentries/fill-{file:04}.yaml")),
                text,
            )?;
            file += 1;
        }
        Ok(dir)
    }
}

/// The first flight of a real rustls client for `name` (ALPN h2 + http/1.1).
pub(crate) fn client_hello(name: &str) -> Res<Vec<u8>> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), ServerName::try_from(name)?.to_owned())?;
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out)?;
    }
    Ok(out)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A tenant CA, the gateway's server certificate and a tenant client certificate (SPIFFE).
pub(crate) struct Pki {
    ca_pem: String,
    server: (String, String),
    client: (String, String),
}

impl Pki {
    fn new() -> Res<Self> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "bench tenant CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate()?;
        let ca = ca_params.self_signed(&ca_key)?;
        let issue = |mut params: CertificateParams| -> Res<(String, String)> {
            let key = KeyPair::generate()?;
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            let cert = params.signed_by(&key, &ca, &ca_key)?;
            Ok((cert.pem(), key.serialize_pem()))
        };
        let mut server = CertificateParams::new(vec!["gateway.test".to_owned()])?;
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let mut client = CertificateParams::new(Vec::<String>::new())?;
        client
            .subject_alt_names
            .push(SanType::URI(SPIFFE.try_into()?));
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        Ok(Self {
            ca_pem: ca.pem(),
            server: issue(server)?,
            client: issue(client)?,
        })
    }

    /// A client config with the tenant certificate, offering `alpn`; session resumption off, so
    /// every connection is a full mTLS handshake.
    pub(crate) fn client_config(&self, alpn: &[u8]) -> Res<Arc<rustls::ClientConfig>> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut self.ca_pem.as_bytes()) {
            roots.add(cert?)?;
        }
        let chain: Vec<CertificateDer<'static>> =
            rustls_pemfile::certs(&mut self.client.0.as_bytes()).collect::<Result<_, _>>()?;
        let key: PrivateKeyDer<'static> =
            rustls_pemfile::private_key(&mut self.client.1.as_bytes())?.ok_or("no client key")?;
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)?;
        config.alpn_protocols = vec![alpn.to_vec()];
        config.resumption = rustls::client::Resumption::disabled();
        Ok(Arc::new(config))
    }
}
