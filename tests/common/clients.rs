//! Client-side helpers: blocking HTTP GETs against admin, tenant connections from 127.0.0.x,
//! CONNECT requests and tunnels, echo round trips, reading to close, and the exact ClientHello
//! a rustls client sends.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::WAIT;

/// A blocking HTTP/1.1 GET: (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = StdTcpStream::connect(addr).expect("connect admin");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A blocking HTTP/1.1 GET that reports failure instead of panicking.
pub fn try_http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = StdTcpStream::connect_timeout(&addr, WAIT).ok()?;
    stream.set_read_timeout(Some(WAIT)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

/// Connects to `to` from source address `from` (a 127.0.0.x tenant).
pub async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{from}:0").parse().expect("addr"))
        .expect("bind tenant address");
    socket.connect(to).await.expect("connect")
}

/// A CONNECT exchange's answer head.
pub struct ConnectAnswer {
    /// Status code.
    pub status: u16,
    /// The whole head as text.
    pub head: String,
    /// The stream, positioned after the head.
    pub stream: TcpStream,
}

impl ConnectAnswer {
    /// The `X-Egress-Deny-Reason` header, if any.
    pub fn deny_reason(&self) -> Option<String> {
        self.head
            .lines()
            .find_map(|l| l.strip_prefix("X-Egress-Deny-Reason: "))
            .map(str::to_owned)
    }
}

/// Sends `CONNECT authority` from `from` and reads the answer head.
pub async fn connect_request(from: &str, proxy: SocketAddr, authority: &str) -> ConnectAnswer {
    let mut stream = connect_from(from, proxy).await;
    let request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let head = read_head(&mut stream).await;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    ConnectAnswer {
        status,
        head,
        stream,
    }
}

/// Reads bytes up to and including the blank line that ends an HTTP head.
pub async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(WAIT, stream.read(&mut byte))
            .await
            .expect("head in time")
            .expect("read");
        assert!(
            n > 0,
            "closed before the end of the head: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    String::from_utf8(head).expect("utf8 head")
}

/// Opens a CONNECT tunnel from `from` to `authority`, asserting `200`.
pub async fn open_tunnel(from: &str, proxy: SocketAddr, authority: &str) -> TcpStream {
    let answer = connect_request(from, proxy, authority).await;
    assert_eq!(answer.status, 200, "CONNECT {authority}: {}", answer.head);
    answer.stream
}

/// Writes `payload` and reads exactly as many bytes back (through an echo upstream), checking
/// they are the same; bounded by [`WAIT`].
pub async fn echo_roundtrip(stream: &mut TcpStream, payload: &[u8]) -> std::io::Result<()> {
    let exchange = async {
        let (mut read, mut write) = stream.split();
        let mut back = vec![0u8; payload.len()];
        let (written, got) = tokio::join!(write.write_all(payload), read.read_exact(&mut back));
        written?;
        got?;
        if back != payload {
            return Err(std::io::Error::other("echo differs from what was sent"));
        }
        Ok(())
    };
    tokio::time::timeout(WAIT, exchange)
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("echo timed out")))
}

/// Reads until EOF (or a reset), bounded by `within`; returns the bytes read and whether the
/// stream ended (false: still open at the deadline).
pub async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let reading = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    let ended = tokio::time::timeout(within, reading).await.is_ok();
    (got, ended)
}

/// The ClientHello a rustls client (ring provider, default versions) sends for `sni`: the exact
/// bytes of its first flight, TLS record header included.
pub fn rustls_client_hello(sni: &str) -> Vec<u8> {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("default versions")
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(sni.to_owned()).expect("server name");
    let mut client = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
    let mut hello = Vec::new();
    while client.wants_write() {
        client.write_tls(&mut hello).expect("write hello");
    }
    hello
}

/// The fatal `access_denied` alert record the SNI listener answers a deny with.
pub const ALERT_ACCESS_DENIED: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x31];

/// Deterministic, non-repeating test data.
pub fn pattern(len: usize) -> Vec<u8> {
    let mut state: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}
