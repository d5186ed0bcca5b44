//! The mTLS listener's test world (tests/mtls.rs, tests/mtls_h2.rs): a tenant CA, the gateway's
//! serving certificate and config, tenant client certificates with SPIFFE IDs, a TLS client for
//! the `connect_tls` listener, and an HTTP/2 client that opens CONNECT streams over it.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::pki::{Ca, Issued};
use super::{ConfigDir, Gateway, WAIT};

pub const APP1_ID: &str = "spiffe://cluster.local/ns/app1/sa/default";
pub const APP2_ID: &str = "spiffe://cluster.local/ns/app2/sa/worker";

/// The PKI and config of one test.
pub struct World {
    pub ca: Ca,
    pub config: ConfigDir,
}

pub fn certs(pem: &str) -> Vec<CertificateDer<'static>> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<_, _>>()
        .expect("certs")
}

pub fn key(pem: &str) -> PrivateKeyDer<'static> {
    rustls_pemfile::private_key(&mut pem.as_bytes())
        .expect("key")
        .expect("some key")
}

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS acceptor serving `issued` with `alpn`, no client certificates: for origins and parent
/// proxies the gateway dials.
pub fn server_acceptor(issued: &Issued, alpn: &[&[u8]]) -> TlsAcceptor {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs(&issued.cert), key(&issued.key))
        .expect("server config");
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsAcceptor::from(Arc::new(config))
}

/// [`super::serve_each`] behind TLS: every connection that completes the handshake with
/// `acceptor` is served with `handle` on its own task; returns the bound address.
pub async fn serve_each_tls<F, Fut>(acceptor: TlsAcceptor, handle: F) -> std::net::SocketAddr
where
    F: Fn(tokio_rustls::server::TlsStream<TcpStream>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let handle = Arc::new(handle);
    super::serve_each(move |tcp| {
        let (acceptor, handle) = (acceptor.clone(), handle.clone());
        async move {
            if let Ok(tls) = acceptor.accept(tcp).await {
                handle(tls).await;
            }
        }
    })
    .await
}

pub fn write(dir: &Path, name: &str, content: &str) {
    std::fs::write(dir.join(name), content).expect("write");
}

/// A config with the mTLS listener, its certificates, and `entries` in app1 (exported to app2 when
/// `shared`).
pub fn world(extra: &str) -> World {
    let ca = Ca::new("tenant-ca");
    let server = ca.server(&["127.0.0.1", "gateway.test"]);
    let config = ConfigDir::new(&format!(
        "listeners:\n  connect_tls: {{address: \"127.0.0.1:0\"}}\nadmin: {{address: \"127.0.0.1:0\"}}\ntls: {{cert: certs/gw.pem, key: certs/gw-key.pem, client_ca: certs/ca.pem}}\nidentity: {{trust_domain: cluster.local}}\n{extra}"
    ));
    let certs_dir = config.path().join("certs");
    std::fs::create_dir_all(&certs_dir).expect("mkdir");
    write(&certs_dir, "gw.pem", &server.cert);
    write(&certs_dir, "gw-key.pem", &server.key);
    write(&certs_dir, "ca.pem", &ca.pem);
    World { ca, config }
}

/// A TCP (opaque) entry for `host:port` in app1 that dials `upstream`.
pub fn tcp_entry(world: &World, name: &str, host: &str, port: u16, upstream: std::net::SocketAddr) {
    world.config.entry(
        &format!("app1/{name}.yaml"),
        &super::static_entry(name, host, port, "TCP", upstream),
    );
}

pub fn client_config(
    ca_pem: &str,
    client: Option<&Issued>,
    alpn: &[&[u8]],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs(ca_pem) {
        roots.add(cert).expect("root");
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let mut config = match client {
        Some(issued) => builder
            .with_client_auth_cert(certs(&issued.cert), key(&issued.key))
            .expect("client auth"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

pub async fn tls_connect(
    gateway: &Gateway,
    ca_pem: &str,
    client: Option<&Issued>,
    alpn: &[&[u8]],
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(gateway.addr("connect_tls")).await?;
    let connector = TlsConnector::from(client_config(ca_pem, client, alpn));
    let mut tls = connector
        .connect(ServerName::try_from("gateway.test").expect("name"), tcp)
        .await?;
    // TLS 1.3 reports a refused client certificate only on the first read.
    if client.is_none() {
        let mut byte = [0u8; 1];
        let _first = tls.read(&mut byte).await?;
    }
    Ok(tls)
}

/// An HTTP/2 client connection over mTLS, driven in the background.
pub async fn h2_client(
    gateway: &Gateway,
    world: &World,
    id: &str,
) -> h2::client::SendRequest<Bytes> {
    let tenant = world.ca.client(Some(id), &[], false);
    let tls = tls_connect(gateway, &world.ca.pem, Some(&tenant), &[b"h2"])
        .await
        .expect("handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (send, connection) = h2::client::handshake(tls).await.expect("h2 handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    send.ready().await.expect("ready")
}

/// Opens a CONNECT stream; returns the response and the body halves.
pub async fn h2_connect(
    send: &mut h2::client::SendRequest<Bytes>,
    authority: &str,
) -> (http::Response<h2::RecvStream>, h2::SendStream<Bytes>) {
    let request = http::Request::builder()
        .method("CONNECT")
        .uri(authority)
        .body(())
        .expect("request");
    let ready = send.clone().ready().await.expect("ready");
    *send = ready;
    let (response, stream) = send.send_request(request, false).expect("send");
    let response = tokio::time::timeout(WAIT, response)
        .await
        .expect("answer in time")
        .expect("response");
    (response, stream)
}
