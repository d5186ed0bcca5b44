//! TLS origins and clients for `tests/sni*.rs`: a certificate for `allowed.test` made at test
//! time, a rustls origin that echoes or answers HTTP, rustls handshakes through the gateway's
//! `sni` listener (completing, or failing with an expected alert), and a transparent gateway that
//! allows `allowed.test:443` to one upstream.
//!
//! Test-side helpers only; they must not assert anything about a particular deny or allow path
//! beyond the handshake they run. [`read_until_closed`] here panics if the gateway does not close
//! within [`WAIT`], unlike [`super::read_until_closed`]; import it by name to pick this one.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{AlertDescription, ClientConfig, RootCertStore, ServerConfig};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::timeout;
use tokio_rustls::client::TlsStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::{connect_from, static_entry, transparent_gateway_yaml, ConfigDir, Gateway, WAIT};

/// The host every sni test allows.
pub const ALLOWED: &str = "allowed.test";

/// The fatal `access_denied` alert record (`[.., 0x02, 49]`) the sni listener answers a deny with.
pub const ACCESS_DENIED: [u8; 7] = super::ALERT_ACCESS_DENIED;

/// A self-signed certificate for `allowed.test`, generated per test.
pub struct Pki {
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
    /// The certificate PEM, for clients that read a CA file (curl, openssl).
    pub pem: String,
}

pub fn pki() -> Pki {
    let rcgen::CertifiedKey { cert, key_pair } =
        rcgen::generate_simple_self_signed(vec![ALLOWED.into()]).expect("generate certificate");
    Pki {
        cert: cert.der().clone(),
        key: PrivatePkcs8KeyDer::from(key_pair.serialize_der()),
        pem: cert.pem(),
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn server_config(pki: &Pki, alpn: &[&[u8]]) -> Arc<ServerConfig> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![pki.cert.clone()],
            PrivateKeyDer::Pkcs8(pki.key.clone_key()),
        )
        .expect("server certificate");
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// A client trusting only `pki`'s certificate (`None`: trusting nothing); `sni: false` leaves
/// the server_name extension out.
pub fn client_config(pki: Option<&Pki>, sni: bool) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    if let Some(pki) = pki {
        roots.add(pki.cert.clone()).expect("trust anchor");
    }
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.enable_sni = sni;
    Arc::new(config)
}

/// What a TLS origin does after its handshake.
#[derive(Clone, Copy)]
pub enum Serve {
    /// Echo every byte until the client closes, then close.
    Echo,
    /// Read one HTTP/1.1 request head, answer `200` with this body, close.
    Http(&'static str),
}

/// A rustls origin on 127.0.0.1 serving `pki`'s certificate; reports the SNI of every completed
/// handshake.
pub async fn tls_origin(
    pki: &Pki,
    serve: Serve,
) -> (SocketAddr, UnboundedReceiver<Option<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
    let addr = listener.local_addr().expect("addr");
    let acceptor = TlsAcceptor::from(server_config(pki, &[b"http/1.1"]));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let _ = tx.send(tls.get_ref().1.server_name().map(str::to_owned));
                match serve {
                    Serve::Echo => {
                        let (mut r, mut w) = tokio::io::split(tls);
                        let _ = tokio::io::copy(&mut r, &mut w).await;
                        let _ = w.shutdown().await;
                    }
                    Serve::Http(body) => {
                        let mut head = Vec::new();
                        let mut buf = [0u8; 1024];
                        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                            match tls.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => head.extend_from_slice(&buf[..n]),
                            }
                        }
                        let response = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = tls.write_all(response.as_bytes()).await;
                        let _ = tls.shutdown().await;
                    }
                }
            });
        }
    });
    (addr, rx)
}

/// Connects from `from` to the gateway's sni listener and runs a rustls handshake for `sni`.
async fn tls_connect(
    from: &str,
    gateway: SocketAddr,
    sni: &str,
    config: Arc<ClientConfig>,
) -> io::Result<TlsStream<TcpStream>> {
    let tcp = connect_from(from, gateway).await;
    let name = ServerName::try_from(sni.to_owned()).expect("server name");
    timeout(WAIT, TlsConnector::from(config).connect(name, tcp))
        .await
        .expect("handshake finished or failed in time")
}

/// The TLS alert a failed rustls handshake received, if that is why it failed.
fn alert_received(err: &io::Error) -> Option<AlertDescription> {
    match err.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::AlertReceived(alert) => Some(*alert),
        _ => None,
    }
}

/// Runs a rustls handshake that must fail with `alert`.
pub async fn expect_alert(
    from: &str,
    gw: &Gateway,
    sni: &str,
    sni_ext: bool,
    alert: AlertDescription,
) {
    let config = client_config(Some(&pki()), sni_ext);
    match tls_connect(from, gw.addr("sni"), sni, config).await {
        Ok(_) => panic!("handshake for {sni} from {from} completed; expected {alert:?}"),
        Err(err) => assert_eq!(
            alert_received(&err),
            Some(alert),
            "handshake for {sni} from {from} failed with {err:?}"
        ),
    }
}

/// Opens a TLS session through the gateway, writes `data`, reads the echo, closes cleanly.
pub async fn echo_through(gw: &Gateway, from: &str, pki: &Pki, data: &[u8]) {
    let mut tls = tls_connect(
        from,
        gw.addr("sni"),
        ALLOWED,
        client_config(Some(pki), true),
    )
    .await
    .expect("handshake through the gateway");
    let presented = tls
        .get_ref()
        .1
        .peer_certificates()
        .expect("origin certificate");
    assert_eq!(
        presented,
        std::slice::from_ref(&pki.cert),
        "the origin's own certificate"
    );
    tls.write_all(data).await.expect("write");
    let mut echoed = vec![0u8; data.len()];
    timeout(WAIT, tls.read_exact(&mut echoed))
        .await
        .expect("echo in time")
        .expect("read echo");
    assert_eq!(echoed, data);
    tls.shutdown().await.expect("close_notify");
    let mut rest = Vec::new();
    let _ = timeout(WAIT, tls.read_to_end(&mut rest))
        .await
        .expect("origin closes in time");
    assert!(rest.is_empty(), "nothing after the echo: {rest:?}");
}

/// A gateway whose app1 allows `allowed.test:443` (TLS) to `upstream`.
pub fn gateway_to(
    upstream: SocketAddr,
    extra_sources: &[(&str, &str)],
    extra: &str,
) -> (Gateway, ConfigDir) {
    let config = ConfigDir::new(&transparent_gateway_yaml(extra_sources, extra));
    config.entry(
        "app1/origin.yaml",
        &static_entry("origin", ALLOWED, 443, "TLS", upstream),
    );
    (Gateway::start(&config), config)
}

/// Reads until EOF or a reset, within [`WAIT`]; returns what arrived before.
pub async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        match timeout(WAIT, stream.read(&mut buf))
            .await
            .expect("the gateway closes in time")
        {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

pub fn log_is(line: &Value, listener: &str, field: &str, value: &str) -> bool {
    line["listener"] == listener && line[field] == value
}
