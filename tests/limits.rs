//! Per-tenant connection limits against the real binary (docs/configuration.md `limits`, issue 5 point 4):
//! a tenant at its cap is refused with `tenant_connection_limit` — `429` on the CONNECT
//! listener, a TLS `access_denied` alert on the SNI listener — while another tenant keeps
//! connecting, and a released slot can be taken again.

mod common;

use std::net::SocketAddr;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LIMITS: &str = "limits: {max_connections_per_namespace: 100, namespaces: {app1: 3}}\n";

/// A config with app1 capped at 3, app2 at the default 100; both may reach `web.test:8000`
/// (TCP) and `tls.test:443` (TLS), dialling `echo`.
fn config(echo: SocketAddr) -> ConfigDir {
    let config = ConfigDir::new(&transparent_gateway_yaml(&[], LIMITS));
    for ns in ["app1", "app2"] {
        config.entry(
            &format!("{ns}/web.yaml"),
            &static_entry("web", "web.test", 8000, "TCP", echo),
        );
        config.entry(
            &format!("{ns}/tls.yaml"),
            &static_entry("tls", "tls.test", 443, "TLS", echo),
        );
    }
    config
}

/// `src` of the access-log line of a connection made from `stream`'s local address.
fn src_of(stream: &TcpStream) -> String {
    stream.local_addr().expect("local addr").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_tenant_pinned_at_its_cap_while_another_connects() {
    let echo = echo_server().await;
    let config = config(echo);
    let gateway = Gateway::start(&config);
    let proxy = gateway.addr("connect");

    let mut held = Vec::new();
    for n in 0..3 {
        let mut tunnel = open_tunnel(APP1, proxy, "web.test:8000").await;
        echo_roundtrip(&mut tunnel, format!("app1 #{n}").as_bytes())
            .await
            .expect("echo");
        held.push(tunnel);
    }
    // The 4th: 429 with the reason, counted and logged.
    let refused = connect_request(APP1, proxy, "web.test:8000").await;
    assert_eq!(refused.status, 429, "{}", refused.head);
    assert_eq!(
        refused.deny_reason().as_deref(),
        Some("tenant_connection_limit")
    );
    let refused_src = src_of(&refused.stream);
    let line = gateway.wait_access_log(|l| l["src"] == refused_src.as_str());
    assert_eq!(line["namespace"], "app1");
    assert_eq!(line["decision"], "deny");
    assert_eq!(line["reason"], "tenant_connection_limit");
    gateway.wait_connections_on("connect", "app1", "deny", "tenant_connection_limit", 1);

    // app2, concurrently with app1 pinned at 3, opens 5 tunnels, all at once.
    let opening: Vec<_> = (0..5)
        .map(|_| tokio::spawn(async move { open_tunnel(APP2, proxy, "web.test:8000").await }))
        .collect();
    let mut app2 = Vec::new();
    for task in opening {
        let mut tunnel = task.await.expect("app2 tunnel");
        echo_roundtrip(&mut tunnel, b"app2").await.expect("echo");
        app2.push(tunnel);
    }
    // app1 is still pinned while app2 holds 5.
    let still = connect_request(APP1, proxy, "web.test:8000").await;
    assert_eq!(still.status, 429);
    for tunnel in &mut held {
        echo_roundtrip(tunnel, b"app1 still up")
            .await
            .expect("echo");
    }
    assert_eq!(
        gateway.connections("app2", "deny", "tenant_connection_limit"),
        None,
        "app2 was never limited"
    );

    // app1 closes one tunnel; once the gateway has accounted it, app1 can open again.
    let mut closing = held.pop().expect("tunnel");
    let closing_src = src_of(&closing);
    closing.shutdown().await.expect("shutdown");
    let (_, closed) = read_until_closed(&mut closing, WAIT).await;
    assert!(closed);
    gateway.wait_access_log(|l| l["src"] == closing_src.as_str() && l["decision"] == "allow");
    let mut again = open_tunnel(APP1, proxy, "web.test:8000").await;
    echo_roundtrip(&mut again, b"a slot again")
        .await
        .expect("echo");
    let over = connect_request(APP1, proxy, "web.test:8000").await;
    assert_eq!(over.status, 429, "the cap still holds at 3");
    gateway.wait_connections_on("connect", "app1", "deny", "tenant_connection_limit", 3);
}

/// Opens an SNI-listener connection from `from` and sends a rustls ClientHello for `sni`.
async fn sni_hello(from: &str, listener: SocketAddr, sni: &str) -> (TcpStream, Vec<u8>) {
    let hello = rustls_client_hello(sni);
    let mut stream = connect_from(from, listener).await;
    stream.write_all(&hello).await.expect("send hello");
    (stream, hello)
}

/// Opens an admitted SNI connection: the echo upstream sends the replayed hello back.
async fn sni_admitted(from: &str, listener: SocketAddr) -> TcpStream {
    let (mut stream, hello) = sni_hello(from, listener, "tls.test").await;
    let mut back = vec![0u8; hello.len()];
    tokio::time::timeout(WAIT, stream.read_exact(&mut back))
        .await
        .expect("echo in time")
        .expect("the hello came back through the tunnel");
    assert_eq!(back, hello);
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_tenant_at_its_cap_gets_an_access_denied_alert() {
    let echo = echo_server().await;
    let config = config(echo);
    let gateway = Gateway::start(&config);
    let sni = gateway.addr("sni");

    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(sni_admitted(APP1, sni).await);
    }
    let (mut refused, _) = sni_hello(APP1, sni, "tls.test").await;
    let refused_src = src_of(&refused);
    let (answer, closed) = read_until_closed(&mut refused, WAIT).await;
    assert!(closed, "the gateway closes after the alert");
    assert_eq!(answer, ALERT_ACCESS_DENIED, "a fatal access_denied alert");
    let line = gateway.wait_access_log(|l| l["src"] == refused_src.as_str());
    assert_eq!(line["listener"], "sni");
    assert_eq!(line["namespace"], "app1");
    assert_eq!(line["reason"], "tenant_connection_limit");
    assert_eq!(line["sni"], "tls.test");
    gateway.wait_connections_on("sni", "app1", "deny", "tenant_connection_limit", 1);

    // app2 is not affected.
    let mut app2 = Vec::new();
    for _ in 0..5 {
        app2.push(sni_admitted(APP2, sni).await);
    }
    // The cap counts every listener of the tenant: a CONNECT tunnel is refused too.
    let connect = connect_request(APP1, gateway.addr("connect"), "web.test:8000").await;
    assert_eq!(connect.status, 429);

    // Release one SNI connection; app1 gets in again.
    let mut closing = held.pop().expect("held");
    let closing_src = src_of(&closing);
    closing.shutdown().await.expect("shutdown");
    let (_, closed) = read_until_closed(&mut closing, WAIT).await;
    assert!(closed);
    gateway.wait_access_log(|l| l["src"] == closing_src.as_str() && l["decision"] == "allow");
    held.push(sni_admitted(APP1, sni).await);
    let (mut over, _) = sni_hello(APP1, sni, "tls.test").await;
    let (answer, _) = read_until_closed(&mut over, WAIT).await;
    assert_eq!(answer, ALERT_ACCESS_DENIED);
}
