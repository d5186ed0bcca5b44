//! HTTP Upgrade through the gateway: a real WebSocket client (Python `websockets`) exchanges
//! messages with a real WebSocket server through the transparent `http` listener, and a raw
//! client does the same with absolute-form on the `connect` listener; the upgraded exchange is
//! logged and counted like a tunnel. `Upgrade: h2c` is refused, `Expect: 100-continue` works.
//!
//! Tenants are played from 127.0.0.2 (app1); the origins listen on 127.0.0.1. The Python
//! processes end by themselves after a bounded time and are killed when the test ends.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::timeout;

/// A WebSocket echo server that prints its port, then serves for at most 60 s.
const ECHO_SERVER: &str = r#"
import asyncio, sys, websockets
async def echo(ws):
    async for message in ws:
        await ws.send(message)
async def main():
    async with websockets.serve(echo, "127.0.0.1", 0) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.sleep(60)
asyncio.run(main())
"#;

/// A WebSocket client that connects to the gateway at argv[1]:argv[2] from 127.0.0.2 for
/// `ws://ws.test/` and prints the echo of three messages.
const CLIENT: &str = r#"
import asyncio, sys, websockets
async def main():
    async with websockets.connect("ws://ws.test/", host=sys.argv[1], port=int(sys.argv[2]),
                                  local_addr=("127.0.0.2", 0), open_timeout=5) as ws:
        for i in range(3):
            await ws.send(f"message {i}")
            print(await asyncio.wait_for(ws.recv(), 5), flush=True)
asyncio.run(main())
"#;

/// The Python echo server, killed when dropped.
struct EchoServer {
    child: Child,
    addr: SocketAddr,
}

impl EchoServer {
    fn start() -> Self {
        let mut child = Command::new("python3")
            .args(["-c", ECHO_SERVER])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("port line");
        let port: u16 = line.trim().parse().unwrap_or_else(|_| {
            panic!("the WebSocket server did not start (is Python's `websockets` installed? .ci/run installs it): {line:?}")
        });
        Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn gateway_with_ws(origin: SocketAddr) -> (Gateway, ConfigDir) {
    let config = ConfigDir::new(&transparent_gateway_yaml(&[], ""));
    config.entry(
        "app1/ws.yaml",
        &static_entry("ws", "ws.test", 80, "HTTP", origin),
    );
    (Gateway::start(&config), config)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_websocket_client_talks_through_the_http_listener() {
    let server = EchoServer::start();
    let (gw, _config) = gateway_with_ws(server.addr);
    let http = gw.addr("http");
    let output = tokio::task::spawn_blocking(move || {
        Command::new("timeout")
            .args(["20", "python3", "-c", CLIENT, &http.ip().to_string()])
            .arg(http.port().to_string())
            .output()
            .expect("python3")
    })
    .await
    .expect("client task");
    assert!(
        output.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "message 0\nmessage 1\nmessage 2\n"
    );
    let line = gw.wait_access_log(|l| l["listener"] == "http" && l["host"] == "ws.test");
    assert_eq!(line["decision"], "allow", "{line}");
    assert_eq!(line["service_entry"], "app1/ws", "{line}");
    // The handshake and three framed messages each way.
    assert!(
        line["bytes_egress"].as_u64().expect("egress") > 3 * 9,
        "{line}"
    );
    assert!(
        line["bytes_ingress"].as_u64().expect("ingress") > 3 * 9,
        "{line}"
    );
    let labels = [("namespace", "app1"), ("listener", "http")];
    gw.wait_metric("egress_active_connections", &labels, |v| v == 0.0);
}

/// One masked WebSocket text frame (RFC 6455 §5.2) of a short `payload`.
fn masked_text_frame(payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut frame = vec![0x81, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

#[tokio::test(flavor = "multi_thread")]
async fn absolute_form_upgrades_become_a_tunnel() {
    let server = EchoServer::start();
    let (gw, _config) = gateway_with_ws(server.addr);
    let mut stream = connect_from(APP1, gw.addr("connect")).await;
    stream
        .write_all(
            b"GET http://ws.test/ HTTP/1.1\r\nHost: ws.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .await
        .expect("write");
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: websocket"),
        "{head}"
    );
    assert!(
        head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "the server's accept key arrives: {head}"
    );
    stream
        .write_all(&masked_text_frame(b"through the gateway"))
        .await
        .expect("frame");
    let mut echo = [0u8; 2 + 19];
    timeout(WAIT, stream.read_exact(&mut echo))
        .await
        .expect("echo in time")
        .expect("echo");
    assert_eq!(&echo[..2], &[0x81, 19]);
    assert_eq!(&echo[2..], b"through the gateway");
    drop(stream);
    let line = gw.wait_access_log(|l| l["listener"] == "connect" && l["host"] == "ws.test");
    assert_eq!(line["decision"], "allow", "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn h2c_upgrades_are_refused() {
    let server = EchoServer::start();
    let (gw, _config) = gateway_with_ws(server.addr);
    let mut stream = connect_from(APP1, gw.addr("http")).await;
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: ws.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n")
        .await
        .expect("write");
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("x-egress-deny-reason: malformed_request"),
        "{head}"
    );
    let line = gw.wait_access_log(|l| l["reason"] == "malformed_request");
    assert_eq!(line["host"], "ws.test", "{line}");
}

/// An origin that answers one request: `200` with the request's body echoed.
async fn body_echo_origin() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let head = read_head(&mut stream).await;
        let length: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap_or(0))
            })
            .unwrap_or(0);
        let mut body = vec![0u8; length];
        if stream.read_exact(&mut body).await.is_ok() {
            let answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\n");
            let _ = stream.write_all(answer.as_bytes()).await;
            let _ = stream.write_all(&body).await;
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread")]
async fn expect_100_continue_gets_its_interim_answer() {
    let origin = body_echo_origin().await;
    let (gw, _config) = gateway_with_ws(origin);
    let mut stream = connect_from(APP1, gw.addr("http")).await;
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: ws.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        .await
        .expect("write");
    let interim = read_head(&mut stream).await;
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");
    stream.write_all(b"hello").await.expect("body");
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut body = [0u8; 5];
    timeout(WAIT, stream.read_exact(&mut body))
        .await
        .expect("body in time")
        .expect("body");
    assert_eq!(&body, b"hello");
}
