//! The HTTP/2 test world: a `connect_tls` gateway whose app1 may reach `echo.test:7000`, the CA
//! that signs tenant certificates, a check that a well-behaved client is still served, and small
//! helpers over raw frames.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::common::mtls::{tcp_entry, tls_connect, World, APP1_ID};
use crate::common::{echo_server, static_entry, Gateway, WAIT};
use crate::h2_raw::{block, frame, Frame, RawH2, END_HEADERS, GOAWAY, HEADERS, RST_STREAM};
use crate::pki::{mtls_world, Authority, Leaf};

/// RFC 9113 §7 error codes the attacks expect.
pub const PROTOCOL_ERROR: u32 = 1;
/// `FLOW_CONTROL_ERROR`.
pub const FLOW_CONTROL_ERROR: u32 = 3;
/// `REFUSED_STREAM`.
pub const REFUSED_STREAM: u32 = 7;

/// `CONNECT echo.test:7000` as header fields.
pub const CONNECT_ECHO: [(&str, &str); 2] =
    [(":method", "CONNECT"), (":authority", "echo.test:7000")];

/// A gateway with app1 allowed to `echo.test:7000`, short sniff and idle deadlines, and the
/// CA that signs tenant certificates.
pub struct H2World {
    /// The running gateway.
    pub gw: Gateway,
    /// The tenant CA.
    pub ca: Authority,
    /// app1's client certificate.
    pub app1: crate::common::pki::Issued,
    _world: World,
}

/// Starts the world with `extra` appended to gateway.yaml.
pub async fn h2_world(extra: &str) -> H2World {
    h2_world_with(extra, &[]).await
}

/// [`h2_world`] with more app1 entries: (name, host, port, protocol, upstream).
pub async fn h2_world_with(
    extra: &str,
    entries: &[(&str, &str, u16, &str, SocketAddr)],
) -> H2World {
    let echo = echo_server().await;
    let ca = Authority::new("tenant-ca");
    let world = mtls_world(&ca, extra);
    tcp_entry(&world, "echo", "echo.test", 7000, echo);
    for (name, host, port, protocol, upstream) in entries {
        world.config.entry(
            &format!("app1/{name}.yaml"),
            &static_entry(name, host, *port, protocol, *upstream),
        );
    }
    let app1 = ca.client(&Leaf {
        uris: vec![APP1_ID],
        ..Leaf::default()
    });
    H2World {
        gw: Gateway::start(&world.config),
        ca,
        app1,
        _world: world,
    }
}

impl H2World {
    /// A raw HTTP/2 client over app1's mTLS connection (ALPN `h2` checked); nothing sent yet.
    pub async fn raw(&self) -> RawH2 {
        let tls = tls_connect(&self.gw, &self.ca.pem, Some(&self.app1), &[b"h2"])
            .await
            .expect("handshake");
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        RawH2::new(tls)
    }

    /// A well-behaved h2 client opens a tunnel and echoes through it: the gateway still serves.
    pub async fn still_serves(&self, after: &str) {
        let tls = tls_connect(&self.gw, &self.ca.pem, Some(&self.app1), &[b"h2"])
            .await
            .unwrap_or_else(|e| panic!("after {after}: handshake: {e}"));
        let (send, connection) = h2::client::handshake(tls)
            .await
            .unwrap_or_else(|e| panic!("after {after}: h2 handshake: {e}"));
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut send = send.ready().await.expect("ready");
        let request = http::Request::builder()
            .method("CONNECT")
            .uri("echo.test:7000")
            .body(())
            .expect("request");
        let (answer, mut body_out) = send.send_request(request, false).expect("send");
        let answer = tokio::time::timeout(WAIT, answer)
            .await
            .unwrap_or_else(|_| panic!("after {after}: no answer"))
            .expect("answer");
        assert_eq!(answer.status(), 200, "after {after}");
        body_out
            .send_data(Bytes::from_static(b"alive"), true)
            .expect("send");
        let mut body = answer.into_body();
        let mut got = Vec::new();
        while got.len() < 5 {
            let chunk = tokio::time::timeout(WAIT, body.data())
                .await
                .expect("echo in time")
                .expect("data")
                .expect("data ok");
            let _ = body.flow_control().release_capacity(chunk.len());
            got.extend_from_slice(&chunk);
        }
        assert_eq!(got, b"alive", "after {after}");
        drop(send);
        driver.abort();
        let _ = driver.await;
    }
}

/// The error code of an RST_STREAM or GOAWAY frame.
pub fn code(frame: &Frame) -> u32 {
    let at = if frame.kind == GOAWAY { 4 } else { 0 };
    u32::from_be_bytes(frame.payload[at..at + 4].try_into().expect("error code"))
}

/// Opens stream `id` to `authority` and returns the body of its answer.
pub async fn open(raw: &mut RawH2, id: u32, authority: &str) -> Vec<Frame> {
    let fields = [(":method", "CONNECT"), (":authority", authority)];
    assert!(
        raw.send(&frame(HEADERS, END_HEADERS, id, &block(&fields)), WAIT)
            .await
    );
    let deadline = Instant::now() + WAIT;
    let mut got = Vec::new();
    while Instant::now() < deadline {
        let Some(frame) = raw.next(Duration::from_millis(200)).await else {
            if raw.closed {
                break;
            }
            continue;
        };
        if frame.stream == id {
            let done = frame.kind == HEADERS || frame.kind == RST_STREAM;
            got.push(frame);
            if done {
                break;
            }
        }
    }
    got
}
