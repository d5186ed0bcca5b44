//! Chaining to a parent proxy: where the only way out of a network is a corporate proxy, the
//! gateway still identifies, decides and checks SNI exactly as without one, then asks the parent
//! for `CONNECT host:port` instead of dialling the destination itself.
//!
//! The parent resolves names, so the deny list cannot see what a name resolves to there; what it
//! still sees is every IP literal a tenant asks for and the parent's own address, which alone is
//! exempt from it (a corporate proxy usually lives in a private range).
//!
//! The parent is spoken to in plaintext or, with `tls`, over TLS verified against the CA the
//! operator names (`parent_tls.rs`): credentials and the destinations asked for then never cross
//! the network in the clear.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::Arc;

use base64::Engine;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::parent_tls::ParentTls;
use super::Upstream;
use crate::names::Host;

/// The longest response head a parent may send to a `CONNECT`.
const MAX_RESPONSE_HEAD: usize = 8 * 1024;

/// One configured parent proxy.
pub struct Parent {
    /// `host:port` as configured: how metrics, logs and `explain` name the parent.
    pub name: Box<str>,
    /// The parent's host; a name is resolved by the gateway's resolver.
    pub host: Host,
    /// The parent's port.
    pub port: u16,
    /// `Proxy-Authorization` value, when credentials are configured.
    authorization: Option<Box<str>>,
    /// How to speak TLS to the parent, when it is reached over TLS.
    pub tls: Option<ParentTls>,
}

impl Parent {
    /// Parses `host:port` (IPv6 in brackets) and turns `user:password` credentials into a Basic
    /// `Proxy-Authorization` value.
    /// The parent is spoken to in plaintext until `tls` is set.
    pub fn new(address: &str, credentials: Option<&str>) -> Result<Self, String> {
        let (host, port) = address
            .rsplit_once(':')
            .ok_or_else(|| format!("parent proxy `{address}` is not host:port"))?;
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|port| *port != 0)
            .ok_or_else(|| format!("parent proxy `{address}` has no valid port"))?;
        let host = Host::parse(host)
            .map_err(|err| format!("parent proxy `{address}` has no valid host: {err}"))?;
        let authorization = match credentials {
            None => None,
            Some(text) => {
                let pair = text.trim_end_matches(['\r', '\n']);
                if pair.contains('\n') || !pair.contains(':') {
                    return Err("the credentials file must hold one line `user:password`".into());
                }
                let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
                Some(format!("Basic {encoded}").into_boxed_str())
            }
        };
        Ok(Self {
            name: address.into(),
            host,
            port,
            authorization,
            tls: None,
        })
    }

    /// The `CONNECT` request asking the parent for `authority`.
    fn connect_request(&self, authority: &str) -> String {
        let credentials = self
            .authorization
            .as_deref()
            .map(|value| format!("Proxy-Authorization: {value}\r\n"))
            .unwrap_or_default();
        format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n{credentials}\r\n")
    }

    /// Asks the parent, over `stream`, for a tunnel to `authority`; returns the parent's status.
    /// Leaves `stream` positioned just after the response head: bytes the destination sends at
    /// once (an SSH or SMTP banner) stay for the tunnel.
    pub async fn handshake(&self, stream: &mut Upstream, authority: &str) -> io::Result<u16> {
        stream
            .write_all(self.connect_request(authority).as_bytes())
            .await?;
        stream.flush().await?;
        let head = match stream {
            Upstream::Tcp(tcp) => read_head_peeking(tcp).await?,
            Upstream::Tls(tls) => read_head_bytewise(tls.as_mut()).await?,
        };
        parse_status(&head)
    }
}

/// Credentials never reach a log or `explain`.
impl fmt::Debug for Parent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Parent")
            .field("name", &self.name)
            .field(
                "credentials",
                &self.authorization.as_ref().map(|_| "<redacted>"),
            )
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// Which parent, if any, each namespace's connections go through.
#[derive(Debug, Clone, Default)]
pub struct ParentRoutes {
    default: Option<Arc<Parent>>,
    namespaces: HashMap<String, Option<Arc<Parent>>>,
}

impl ParentRoutes {
    /// `default` for every namespace except those in `namespaces` (`None` there: direct).
    pub fn new(
        default: Option<Arc<Parent>>,
        namespaces: HashMap<String, Option<Arc<Parent>>>,
    ) -> Self {
        Self {
            default,
            namespaces,
        }
    }

    /// Every configured parent (a parent named twice comes twice).
    pub fn all(&self) -> impl Iterator<Item = &Arc<Parent>> {
        self.default
            .iter()
            .chain(self.namespaces.values().flatten())
    }

    /// The parent for `namespace` (the default one for an unknown tenant, who is refused anyway).
    pub fn for_namespace(&self, namespace: Option<&str>) -> Option<&Arc<Parent>> {
        match namespace.and_then(|ns| self.namespaces.get(ns)) {
            Some(route) => route.as_ref(),
            None => self.default.as_ref(),
        }
    }
}

/// Reads the parent's response head and consumes exactly it: peeks, and reads only up to the
/// blank line, so whatever follows in the same segment stays in the socket.
async fn read_head_peeking(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut head: Vec<u8> = Vec::with_capacity(256);
    let mut chunk = [0u8; 1024];
    loop {
        let peeked = stream.peek(&mut chunk).await?;
        if peeked == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the parent closed before answering",
            ));
        }
        let before = head.len();
        let search_from = before.saturating_sub(3);
        head.extend_from_slice(&chunk[..peeked]);
        let end = head[search_from..]
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|at| search_from + at + 4);
        if let Some(end) = end {
            head.truncate(end);
        }
        stream.read_exact(&mut chunk[..head.len() - before]).await?;
        if end.is_some() {
            break;
        }
        if head.len() > MAX_RESPONSE_HEAD {
            return Err(too_long());
        }
    }
    Ok(head)
}

/// Reads the parent's response head over TLS, where nothing can be peeked: one byte at a time
/// (from rustls's buffer, not the socket), so the tunnel's first bytes stay unread.
async fn read_head_bytewise<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<Vec<u8>> {
    let mut head: Vec<u8> = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > MAX_RESPONSE_HEAD {
            return Err(too_long());
        }
        let byte = stream.read_u8().await.map_err(|err| match err.kind() {
            io::ErrorKind::UnexpectedEof => io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the parent closed before answering",
            ),
            _ => err,
        })?;
        head.push(byte);
    }
    Ok(head)
}

fn parse_status(head: &[u8]) -> io::Result<u16> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(head) {
        Ok(httparse::Status::Complete(_)) => response.code.ok_or_else(malformed),
        _ => Err(malformed()),
    }
}

fn too_long() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "the parent's response head is too long",
    )
}

fn malformed() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "the parent's answer is not HTTP",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_credentials_are_parsed_and_credentials_are_never_printed() {
        let parent = Parent::new("proxy.corp.example:3128", Some("alice:s3cret\n")).unwrap();
        assert_eq!(parent.port, 3128);
        assert!(parent
            .connect_request("api.example.com:443")
            .contains("Proxy-Authorization: Basic YWxpY2U6czNjcmV0\r\n"));
        assert!(!format!("{parent:?}").contains("YWxp"));
        assert!(Parent::new("[2001:db8::1]:8080", None).is_ok());
        for bad in ["proxy", "proxy:0", "proxy:http", ":3128", "bad_name!:3128"] {
            assert!(Parent::new(bad, None).is_err(), "{bad} must be refused");
        }
        assert!(Parent::new("proxy:3128", Some("no-colon")).is_err());
    }
}
