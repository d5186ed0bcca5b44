//! Tenant slots on every refusal path: with app1 limited to one connection, each way a tunnel
//! can end badly (SNI mismatch, no SNI, not TLS, silence past the sniff deadline, a request to
//! another host in an HTTP tunnel, an unreachable upstream, a client reset, an absolute-form
//! request) must give the slot back, so the next tunnel opens instead of getting `429`.

use tokio::io::AsyncWriteExt;

use crate::attack::read_to_close;
use crate::baseline::Baseline;
use crate::common::{
    connect_from, echo_server, gateway_yaml, http_origin, read_head, static_entry, ConfigDir,
    Gateway, APP1,
};
use crate::hello::Hello;

/// How the client ends its side.
#[derive(Clone, Copy)]
enum End {
    /// Half-close, then read until the gateway closes.
    HalfClose,
    /// Say nothing more and wait for the gateway to close.
    Silent,
    /// Reset the connection.
    Reset,
}

/// Opens `authority` from app1, sends `then`, and ends the connection as `end` says.
async fn tunnel_then(gw: &Gateway, authority: &str, then: &[u8], end: End) -> String {
    let mut stream = connect_from(APP1, gw.addr("connect")).await;
    let request = format!("CONNECT {authority} HTTP/1.1\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let head = read_head(&mut stream).await;
    if !then.is_empty() {
        let _ = stream.write_all(then).await;
    }
    match end {
        End::Reset => {
            stream.set_zero_linger().expect("linger");
            drop(stream);
        }
        End::HalfClose => {
            let _ = stream.shutdown().await;
            let _ = read_to_close(&mut stream).await;
        }
        End::Silent => {
            let _ = read_to_close(&mut stream).await;
        }
    }
    head
}

#[tokio::test(flavor = "multi_thread")]
async fn every_refusal_gives_the_tenant_slot_back() {
    let echo = echo_server().await;
    let web = http_origin("ok").await;
    // Bound but never listening: connects are refused, and no other test can take the port
    // while this socket holds it.
    let refusing = tokio::net::TcpSocket::new_v4().expect("socket");
    refusing
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let refusing_addr = refusing.local_addr().expect("addr");
    let config = ConfigDir::new(&gateway_yaml(
        "limits: {namespaces: {app1: 1}}\ntimeouts: {sniff: 1s}\n",
    ));
    for (name, host, port, protocol, upstream) in [
        ("echo", "echo.test", 7000, "TCP", echo),
        ("tls", "tls.test", 443, "TLS", echo),
        ("web", "web.test", 80, "HTTP", web),
        ("gone", "gone.test", 7001, "TCP", refusing_addr),
    ] {
        config.entry(
            &format!("app1/{name}.yaml"),
            &static_entry(name, host, port, protocol, upstream),
        );
    }
    let gw = Gateway::start(&config);
    let baseline = Baseline::take(&gw);
    let evil_hello = Hello::named("evil.test").record();
    let no_sni = Hello::default().record();
    let cases: [(&str, &str, &[u8], End, &str); 9] = [
        (
            "sni_mismatch",
            "tls.test:443",
            &evil_hello,
            End::HalfClose,
            "200",
        ),
        (
            "missing_sni",
            "tls.test:443",
            &no_sni,
            End::HalfClose,
            "200",
        ),
        (
            "not TLS in a TLS tunnel",
            "tls.test:443",
            b"SSH-2.0-x\r\n\r\n",
            End::HalfClose,
            "200",
        ),
        ("sniff_timeout", "tls.test:443", b"", End::Silent, "200"),
        (
            "host_mismatch",
            "web.test:80",
            b"GET / HTTP/1.1\r\nHost: evil.test\r\n\r\n",
            End::HalfClose,
            "200",
        ),
        (
            "upstream_unreachable",
            "gone.test:7001",
            b"",
            End::HalfClose,
            "502",
        ),
        (
            "client reset mid-tunnel",
            "echo.test:7000",
            b"data",
            End::Reset,
            "200",
        ),
        (
            "client reset during the hello",
            "tls.test:443",
            &evil_hello[..20],
            End::Reset,
            "200",
        ),
        (
            "not_allowlisted",
            "evil.test:7000",
            b"",
            End::HalfClose,
            "403",
        ),
    ];
    for (what, authority, then, end, status) in cases {
        let head = tunnel_then(&gw, authority, then, end).await;
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status}")),
            "{what}: {head}"
        );
        baseline.settle(&gw, what);
        let next = tunnel_then(&gw, "echo.test:7000", b"", End::HalfClose).await;
        assert!(
            next.starts_with("HTTP/1.1 200"),
            "after {what} the slot is free again: {next}"
        );
    }
    // An absolute-form request holds the slot only while it is served.
    let mut stream = connect_from(APP1, gw.addr("connect")).await;
    stream
        .write_all(b"GET http://web.test/ HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let answer = read_to_close(&mut stream).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    baseline.settle(&gw, "absolute-form");
    let next = tunnel_then(&gw, "echo.test:7000", b"", End::HalfClose).await;
    assert!(
        next.starts_with("HTTP/1.1 200"),
        "after absolute-form: {next}"
    );
    assert_eq!(
        gw.connections_on("connect", "app1", "deny", "tenant_connection_limit")
            .unwrap_or(0.0),
        0.0,
        "no refusal ever kept the slot"
    );
}
