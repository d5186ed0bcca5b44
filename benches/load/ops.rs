//! Client operations, one connection or stream each: direct echo, CONNECT, SNI, mTLS CONNECT and
//! HTTP/2 CONNECT streams; plus the CONNECT head and echo steps the scenarios reuse.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::spawn_local;
use tokio_rustls::TlsConnector;

use crate::Res;

/// What each tunnel echoes once.
const PAYLOAD: [u8; 64] = [b'x'; 64];

pub(crate) async fn tcp(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Sends `CONNECT authority`, reads the answer head; returns how many tunnel bytes came with it.
pub(crate) async fn connect_head<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    request: &[u8],
) -> Res<usize> {
    stream.write_all(request).await?;
    let mut buf = [0u8; 1024];
    let mut len = 0;
    loop {
        let n = stream.read(&mut buf[len..]).await?;
        if n == 0 {
            return Err("closed before the CONNECT answer".into());
        }
        len += n;
        if let Some(end) = buf[..len].windows(4).position(|w| w == b"\r\n\r\n") {
            if !buf.starts_with(b"HTTP/1.1 200") {
                let line = String::from_utf8_lossy(&buf[..end]);
                return Err(format!("CONNECT answered {:?}", line.lines().next()).into());
            }
            return Ok(len - end - 4);
        }
        if len == buf.len() {
            return Err("CONNECT answer head too long".into());
        }
    }
}

/// Writes the first `n` payload bytes and reads their echo.
pub(crate) async fn echo<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, n: usize) -> Res<()> {
    stream.write_all(&PAYLOAD[..n]).await?;
    let mut buf = [0u8; 64];
    stream.read_exact(&mut buf[..n]).await?;
    Ok(())
}

pub(crate) fn connect_request(authority: &str) -> &'static [u8] {
    Box::leak(
        format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n")
            .into_bytes()
            .into_boxed_slice(),
    )
}

/// Direct: connect to the echo origin, 64 B echo, close.
pub(crate) async fn op_direct_echo(origin: SocketAddr) -> Res<()> {
    let mut stream = tcp(origin).await?;
    echo(&mut stream, 64).await
}

/// Through the CONNECT listener: connect, CONNECT, 200, 64 B echo, close.
pub(crate) async fn op_connect(proxy: SocketAddr, request: &'static [u8]) -> Res<()> {
    let mut stream = tcp(proxy).await?;
    connect_head(&mut stream, request).await?;
    echo(&mut stream, 64).await
}

/// SNI (or the fake TLS origin directly): connect, ClientHello, first reply byte, close.
pub(crate) async fn op_sni(addr: SocketAddr, hello: &'static [u8]) -> Res<()> {
    let mut stream = tcp(addr).await?;
    stream.write_all(hello).await?;
    let mut byte = [0u8; 1];
    if stream.read(&mut byte).await? == 0 {
        return Err("closed without a reply".into());
    }
    Ok(())
}

/// mTLS: connect, full handshake (ALPN http/1.1), CONNECT, 200, 64 B echo, close.
pub(crate) async fn op_tls_connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    request: &'static [u8],
) -> Res<()> {
    let stream = tcp(addr).await?;
    let mut tls = TlsConnector::from(config)
        .connect(ServerName::try_from("gateway.test")?, stream)
        .await?;
    connect_head(&mut tls, request).await?;
    echo(&mut tls, 64).await
}

/// One HTTP/2 CONNECT stream on a warm connection: CONNECT, 200, 64 B echo, END_STREAM, and the
/// gateway's end of the stream.
pub(crate) async fn op_h2_stream(send: h2::client::SendRequest<Bytes>) -> Res<()> {
    let mut send = send.ready().await?;
    let request = http::Request::builder()
        .method(http::Method::CONNECT)
        .uri("allowed.test:9000")
        .body(())?;
    let (response, mut stream) = send.send_request(request, false)?;
    let response = response.await?;
    if response.status() != 200 {
        return Err(format!("h2 CONNECT answered {}", response.status()).into());
    }
    let mut body = response.into_body();
    stream.send_data(Bytes::from_static(&PAYLOAD), false)?;
    let mut got = 0;
    while got < PAYLOAD.len() {
        let chunk = body.data().await.ok_or("stream ended before the echo")??;
        got += chunk.len();
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    stream.send_data(Bytes::new(), true)?;
    while let Some(chunk) = body.data().await {
        match chunk {
            Ok(chunk) => {
                let _ = body.flow_control().release_capacity(chunk.len());
            }
            Err(err) if err.reason() == Some(h2::Reason::NO_ERROR) => break,
            Err(err) => return Err(err.into()),
        }
    }
    Ok(())
}

/// A warm HTTP/2 connection over mTLS, driven in the background.
pub(crate) async fn h2_session(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> Res<h2::client::SendRequest<Bytes>> {
    let stream = tcp(addr).await?;
    let tls = TlsConnector::from(config)
        .connect(ServerName::try_from("gateway.test")?, stream)
        .await?;
    if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
        return Err("the gateway did not choose h2".into());
    }
    let (send, connection) = h2::client::handshake(tls).await?;
    spawn_local(async move {
        let _ = connection.await;
    });
    Ok(send.ready().await?)
}
