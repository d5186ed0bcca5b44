//! Local servers tests point the gateway at: a TCP echo, a recorder, a minimal HTTP origin, a
//! watcher that reports how connections end, a resetter, an NXDOMAIN DNS server, a closed port and
//! a black hole that never answers SYNs.

use std::future::Future;
use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// Binds 127.0.0.1:0 and serves every accepted connection with `handle` on its own task, until
/// the test's runtime ends; returns the bound address.
pub async fn serve_each<F, Fut>(handle: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(handle(stream));
        }
    });
    addr
}

/// A TCP echo server on 127.0.0.1; runs until the test's runtime ends.
pub async fn echo_server() -> SocketAddr {
    serve_each(|mut stream| async move {
        let (mut r, mut w) = stream.split();
        let _ = tokio::io::copy(&mut r, &mut w).await;
        let _ = w.shutdown().await;
    })
    .await
}

/// A TCP server on 127.0.0.1 that reads each connection to EOF and reports what it received
/// (one message per connection, in accept order).
pub async fn recording_server() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let addr = serve_each(move |mut stream| {
        let tx = tx.clone();
        async move {
            let mut received = Vec::new();
            let _ = stream.read_to_end(&mut received).await;
            let _ = tx.send(received);
        }
    })
    .await;
    (addr, rx)
}

/// A minimal HTTP/1.1 origin on 127.0.0.1: answers every request with `200` and `body`, then
/// closes.
pub async fn http_origin(body: &'static str) -> SocketAddr {
    serve_each(move |mut stream| async move {
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await
}

/// What a [`watching_server`] saw on a connection, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    /// The first bytes it read.
    Data(Vec<u8>),
    /// How the connection ended for its reader after that.
    End(Ending),
}

/// How a reader saw a connection end.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// A clean EOF (the peer sent FIN).
    Eof,
    /// `ECONNRESET` (the peer sent RST).
    Reset,
    /// Any other read error.
    Other(std::io::ErrorKind),
}

/// A TCP server on 127.0.0.1 that reports, per connection, its first bytes and then how the
/// connection ended (reading and discarding anything in between).
pub async fn watching_server() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<Seen>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let addr = serve_each(move |mut stream| {
        let tx = tx.clone();
        async move {
            let mut buf = [0u8; 4096];
            let mut first = true;
            let ending = loop {
                match stream.read(&mut buf).await {
                    Ok(0) => break Ending::Eof,
                    Ok(n) if first => {
                        first = false;
                        let _ = tx.send(Seen::Data(buf[..n].to_vec()));
                    }
                    Ok(_) => {}
                    Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => {
                        break Ending::Reset
                    }
                    Err(err) => break Ending::Other(err.kind()),
                }
            };
            let _ = tx.send(Seen::End(ending));
        }
    })
    .await;
    (addr, rx)
}

/// A TCP server on 127.0.0.1 that aborts every connection (RST) as soon as it has read a byte.
pub async fn resetting_server() -> SocketAddr {
    serve_each(|mut stream| async move {
        let mut buf = [0u8; 4096];
        if matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {
            let _ = stream.set_zero_linger();
        }
    })
    .await
}

/// A 127.0.0.1 address nothing listens on (bound, then released).
pub fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

/// A UDP DNS server on 127.0.0.1 that answers every query with NXDOMAIN (the query echoed back
/// with QR set and RCODE 3); runs until the test's runtime ends.
pub async fn nxdomain_dns_server() -> SocketAddr {
    dns_server(|query| {
        let mut answer = query.get(..12).map(|_| query.to_vec())?;
        answer[2] |= 0x80; // QR: this is a response
        answer[3] = (answer[3] & 0xf0) | 0x03; // RCODE 3: NXDOMAIN
        Some(answer)
    })
    .await
}

/// A UDP DNS server on 127.0.0.1 that answers every A query with 127.0.0.1 and every other query
/// with no answer, so any name resolves to the local servers; runs until the test's runtime ends.
pub async fn loopback_dns_server() -> SocketAddr {
    dns_server(|query| {
        let mut end = 12;
        while *query.get(end)? != 0 {
            end += 1 + usize::from(query[end]);
        }
        let is_a = query.get(end + 1..end + 3)? == [0, 1];
        let mut answer = query.get(..end + 5)?.to_vec();
        answer[2] |= 0x80; // QR: this is a response
        answer[3] = 0x80; // RA, NOERROR
        answer[6..12].copy_from_slice(&[0, u8::from(is_a), 0, 0, 0, 0]);
        if is_a {
            // The question's name (pointer to offset 12), A, IN, TTL 60, 127.0.0.1.
            answer.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1]);
        }
        Some(answer)
    })
    .await
}

/// A UDP DNS server on 127.0.0.1 answering each query with `answer(query)` (none when `None`).
async fn dns_server(answer: fn(&[u8]) -> Option<Vec<u8>>) -> SocketAddr {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind dns");
    let addr = socket.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
            if let Some(reply) = answer(&buf[..n]) {
                let _ = socket.send_to(&reply, peer).await;
            }
        }
    });
    addr
}

/// A 127.0.0.1 listener that never accepts and whose backlog is full, so further SYNs go
/// unanswered and a connect to it times out. Keep the returned value alive for the test.
pub struct BlackHole {
    /// The address that does not answer.
    pub addr: SocketAddr,
    _listener: tokio::net::TcpListener,
    _held: Vec<StdTcpStream>,
}

/// Creates a [`BlackHole`]: `listen(0)`, then connects until a connect attempt times out (the
/// kernel stops answering SYNs once the accept queue is full).
pub fn black_hole() -> BlackHole {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let listener = socket.listen(0).expect("listen(0)");
    let addr = listener.local_addr().expect("addr");
    let mut held = Vec::new();
    for _ in 0..64 {
        match StdTcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(stream) => held.push(stream),
            Err(err) if err.kind() == std::io::ErrorKind::TimedOut => {
                return BlackHole {
                    addr,
                    _listener: listener,
                    _held: held,
                };
            }
            Err(err) => panic!("filling the backlog of {addr}: {err}"),
        }
    }
    panic!("the backlog of {addr} never filled: this kernel answers SYNs beyond listen(0)");
}
