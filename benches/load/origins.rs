//! The origins the scenarios reach (directly and through the gateway), all on 127.0.0.1:0 in this
//! process: a 64-byte echo, an endless zero source, a fake TLS server that answers any
//! ClientHello with an alert, and a keep-alive HTTP/1.1 server.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::spawn_local;

use crate::Res;

/// The bulk origin's write buffer.
static ZEROS: [u8; 256 * 1024] = [0; 256 * 1024];
/// TLS alert the fake TLS origin answers a ClientHello with (handshake_failure).
pub(crate) const ORIGIN_ALERT: [u8; 7] = [0x15, 3, 3, 0, 2, 2, 40];

/// Binds 127.0.0.1:0 and serves each connection with `handler` until the process ends.
pub(crate) async fn serve<F, Fut>(handler: F) -> Res<SocketAddr>
where
    F: Fn(TcpStream) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    spawn_local(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    spawn_local(handler(stream));
                }
                // Out of descriptors and the like: back off, the driver bounds everything.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    });
    Ok(addr)
}

pub(crate) async fn echo_conn(mut stream: TcpStream) {
    let mut buf = [0u8; 2048];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Answers keep-alive GETs (no request bodies) with a 2-byte body until the client closes.
pub(crate) async fn http_conn(mut stream: TcpStream) {
    const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let mut buf = [0u8; 8192];
    let mut len = 0;
    loop {
        while let Some(end) = buf[..len].windows(4).position(|w| w == b"\r\n\r\n") {
            if stream.write_all(ANSWER).await.is_err() {
                return;
            }
            buf.copy_within(end + 4..len, 0);
            len -= end + 4;
        }
        match stream.read(&mut buf[len..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => len += n,
        }
        if len == buf.len() {
            return;
        }
    }
}

/// Streams zeros until the reader goes away.
pub(crate) async fn source_conn(mut stream: TcpStream) {
    while stream.write_all(&ZEROS).await.is_ok() {}
}

/// Reads one TLS record, answers a 7-byte alert, then holds the connection until the client
/// closes it (so idle SNI connections stay up, and the client decides when they end).
pub(crate) async fn fake_tls_conn(mut stream: TcpStream) {
    let mut header = [0u8; 5];
    if stream.read_exact(&mut header).await.is_err() || header[0] != 0x16 {
        return;
    }
    let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
    let mut body = vec![0u8; len];
    if stream.read_exact(&mut body).await.is_err() {
        return;
    }
    drop(body);
    if stream.write_all(&ORIGIN_ALERT).await.is_err() {
        return;
    }
    let mut sink = [0u8; 64];
    let _ = tokio::time::timeout(Duration::from_secs(600), stream.read(&mut sink)).await;
}
