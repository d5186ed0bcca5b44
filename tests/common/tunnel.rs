//! CONNECT tunnels for `tests/connect*.rs`: open one through a [`Gateway`]'s `connect` listener,
//! write through it with a half-close, and read the answer to EOF.
//!
//! Client-side helpers over an already running gateway only; they must not start gateways or
//! servers. [`open_tunnel`] here takes the gateway and also checks the exact `200` head, unlike
//! [`super::open_tunnel`] (a proxy address, status only); import it by name to pick this one.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::{connect_request, Gateway, WAIT};

/// Reads to EOF within [`WAIT`].
pub async fn read_all(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    timeout(WAIT, stream.read_to_end(&mut out))
        .await
        .expect("EOF in time")
        .expect("read to EOF");
    out
}

/// Writes `data` through an open tunnel, closes the write half and reads the answer to EOF.
pub async fn round_trip(stream: &mut TcpStream, data: &[u8]) -> Vec<u8> {
    stream.write_all(data).await.expect("write through tunnel");
    stream.shutdown().await.expect("shutdown write");
    read_all(stream).await
}

/// Opens a tunnel that must be allowed.
pub async fn open_tunnel(gw: &Gateway, from: &str, authority: &str) -> TcpStream {
    let answer = connect_request(from, gw.addr("connect"), authority).await;
    assert_eq!(answer.status, 200, "{authority}: {}", answer.head);
    assert_eq!(answer.head, "HTTP/1.1 200 Connection Established\r\n\r\n");
    answer.stream
}

/// Checks that an allowed tunnel to an echo server works.
pub async fn expect_echo(gw: &Gateway, from: &str, authority: &str) {
    let mut tunnel = open_tunnel(gw, from, authority).await;
    assert_eq!(
        round_trip(&mut tunnel, b"still alive").await,
        b"still alive"
    );
}
