//! Every deny reason the plaintext CONNECT listener reaches once it has a well-formed request,
//! against the real binary on loopback: each gets its status, `X-Egress-Deny-Reason`, one-line
//! body, counter and access-log line (unknown tenant, not allowlisted, port not allowed, IP
//! literals, forbidden addresses, DNS failure, unreachable and timed-out upstreams, the tenant
//! connection limit). Malformed requests and the sniff timeout are in `connect_malformed.rs`.
//!
//! Tenants are played from 127.0.0.2 (app1) and 127.0.0.3 (app2); every origin, DNS server and
//! black hole is a local socket on 127.0.0.1. Waits are on events (accepts, access-log lines,
//! metric values polled with a deadline), each bounded by `common::WAIT`.

mod common;

use common::tunnel::{expect_echo, open_tunnel, read_all, round_trip};
use common::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

/// What a denied CONNECT must produce; checked by [`expect_deny`].
struct Deny<'a> {
    from: &'a str,
    authority: &'a str,
    status: u16,
    reason: &'a str,
    namespace: &'a str,
    host: &'a str,
    port: u16,
    /// The counter value expected after this deny (denies of the same reason accumulate).
    count: f64,
}

/// Sends the CONNECT and checks status, header, one-line body, access-log line and counter.
async fn expect_deny(gw: &Gateway, d: Deny<'_>) -> Value {
    let mut answer = connect_request(d.from, gw.addr("connect"), d.authority).await;
    assert_eq!(answer.status, d.status, "{}: {}", d.authority, answer.head);
    assert_eq!(
        answer.deny_reason().as_deref(),
        Some(d.reason),
        "{}",
        answer.head
    );
    let body = read_all(&mut answer.stream).await;
    let body = String::from_utf8_lossy(&body);
    assert_eq!(body.lines().count(), 1, "one-line body: {body:?}");
    assert!(body.contains(d.reason), "{body:?}");

    let line = gw
        .wait_access_log(|v| v["host"] == d.host && v["port"] == d.port && v["reason"] == d.reason);
    assert_eq!(line["namespace"], d.namespace, "{line}");
    assert_eq!(line["decision"], "deny", "{line}");
    assert_eq!(line["listener"], "connect", "{line}");
    assert_eq!(line["bytes_egress"], 0, "{line}");
    assert_eq!(
        gw.connections(d.namespace, "deny", d.reason),
        Some(d.count),
        "egress_connections_total{{namespace={},reason={}}}",
        d.namespace,
        d.reason
    );
    line
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_tenant_not_allowlisted_and_port_not_allowed() {
    let echo = echo_server().await;
    let config = ConfigDir::new(&gateway_yaml(""));
    config.entry(
        "app1/echo.yaml",
        &static_entry("echo", "allowed.test", 9000, "TCP", echo),
    );
    let gw = Gateway::start(&config);

    expect_deny(
        &gw,
        Deny {
            from: STRANGER,
            authority: "allowed.test:9000",
            status: 403,
            reason: "unknown_tenant",
            namespace: "unknown",
            host: "allowed.test",
            port: 9000,
            count: 1.0,
        },
    )
    .await;
    expect_deny(
        &gw,
        Deny {
            from: APP1,
            authority: "other.test:9000",
            status: 403,
            reason: "not_allowlisted",
            namespace: "app1",
            host: "other.test",
            port: 9000,
            count: 1.0,
        },
    )
    .await;
    expect_deny(
        &gw,
        Deny {
            from: APP1,
            authority: "allowed.test:9001",
            status: 403,
            reason: "port_not_allowed",
            namespace: "app1",
            host: "allowed.test",
            port: 9001,
            count: 1.0,
        },
    )
    .await;
    // app1's entry is not exported to app2 (default_export_to ["."]).
    expect_deny(
        &gw,
        Deny {
            from: APP2,
            authority: "allowed.test:9000",
            status: 403,
            reason: "not_allowlisted",
            namespace: "app2",
            host: "allowed.test",
            port: 9000,
            count: 1.0,
        },
    )
    .await;
    // Host names are case-insensitive and one trailing dot is ignored.
    expect_echo(&gw, APP1, "ALLOWED.Test.:9000").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ip_literals_need_addresses() {
    let echo = echo_server().await;
    let config = ConfigDir::new(&gateway_yaml(""));
    let port = echo.port();
    config.entry(
        "app2/by-ip.yaml",
        &entry_yaml(
            "by-ip",
            &format!("  hosts: [\"echo-by-ip.test\"]\n  addresses: [\"127.0.0.1/32\"]\n  ports:\n    - {{number: {port}, name: tcp, protocol: TCP}}\n  resolution: NONE\n"),
        ),
    );
    let gw = Gateway::start(&config);

    // app1 has no entry with addresses: an IP literal is not allowlisted.
    let authority = format!("127.0.0.1:{port}");
    expect_deny(
        &gw,
        Deny {
            from: APP1,
            authority: &authority,
            status: 403,
            reason: "not_allowlisted",
            namespace: "app1",
            host: "127.0.0.1",
            port,
            count: 1.0,
        },
    )
    .await;
    // app2's entry covers 127.0.0.1/32 on the echo port: allowed, dialled as written.
    expect_echo(&gw, APP2, &authority).await;
    let line = gw.wait_access_log(|v| v["namespace"] == "app2" && v["decision"] == "allow");
    assert_eq!(line["service_entry"], "app2/by-ip", "{line}");
    assert_eq!(line["upstream"], echo.to_string(), "{line}");

    // The gateway's own admin port as an IP literal: refused.
    let admin = gw.addr("admin");
    let answer = connect_request(
        APP2,
        gw.addr("connect"),
        &format!("127.0.0.1:{}", admin.port()),
    )
    .await;
    assert_eq!(answer.status, 403, "{}", answer.head);
    assert_eq!(answer.deny_reason().as_deref(), Some("port_not_allowed"));
}

#[tokio::test(flavor = "multi_thread")]
async fn forbidden_addresses_dns_to_loopback_and_the_gateway_itself() {
    let config = ConfigDir::new(&gateway_yaml(""));
    // `localhost` resolves (through /etc/hosts) to loopback, which DNS answers may never reach.
    config.entry(
        "app1/localhost.yaml",
        &entry_yaml(
            "localhost",
            "  hosts: [\"localhost\"]\n  ports:\n    - {number: 8080, name: tcp, protocol: TCP}\n  resolution: DNS\n",
        ),
    );
    let gw = Gateway::start(&config);
    expect_deny(
        &gw,
        Deny {
            from: APP1,
            authority: "localhost:8080",
            status: 403,
            reason: "forbidden_address",
            namespace: "app1",
            host: "localhost",
            port: 8080,
            count: 1.0,
        },
    )
    .await;

    // Entries that point at the gateway's own admin port: a trusted STATIC endpoint, and an IP
    // literal through `addresses`. The gateway never dials itself.
    let admin = gw.addr("admin");
    let self_entries = format!(
        "{}---\n{}",
        static_entry("self", "admin.test", admin.port(), "TCP", admin),
        entry_yaml(
            "self-ip",
            &format!("  hosts: [\"self-ip.test\"]\n  addresses: [\"127.0.0.1/32\"]\n  ports:\n    - {{number: {}, name: tcp, protocol: TCP}}\n  resolution: NONE\n", admin.port()),
        )
    );
    // One atomic file: any reload (SIGHUP or the config watcher) sees both entries or neither.
    config.replace_entry("app1/self.yaml", &self_entries);
    gw.reload_to(2);
    expect_deny(
        &gw,
        Deny {
            from: APP1,
            authority: &format!("admin.test:{}", admin.port()),
            status: 403,
            reason: "forbidden_address",
            namespace: "app1",
            host: "admin.test",
            port: admin.port(),
            count: 2.0,
        },
    )
    .await;
    expect_deny(
        &gw,
        Deny {
            from: APP1,
            authority: &format!("127.0.0.1:{}", admin.port()),
            status: 403,
            reason: "forbidden_address",
            namespace: "app1",
            host: "127.0.0.1",
            port: admin.port(),
            count: 3.0,
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_failure_is_502() {
    let dns = nxdomain_dns_server().await;
    let config = ConfigDir::new(&gateway_yaml(&format!("dns: {{servers: [\"{dns}\"]}}\n")));
    config.entry(
        "app1/nx.yaml",
        &entry_yaml(
            "nx",
            "  hosts: [\"nx.test\"]\n  ports:\n    - {number: 443, name: tcp, protocol: TCP}\n  resolution: DNS\n",
        ),
    );
    let gw = Gateway::start(&config);
    expect_deny(
        &gw,
        Deny {
            from: APP1,
            authority: "nx.test:443",
            status: 502,
            reason: "dns_failure",
            namespace: "app1",
            host: "nx.test",
            port: 443,
            count: 1.0,
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_unreachable_is_502() {
    let closed = closed_port();
    let config = ConfigDir::new(&gateway_yaml(""));
    config.entry(
        "app1/closed.yaml",
        &static_entry("closed", "closed.test", 6000, "TCP", closed),
    );
    let gw = Gateway::start(&config);
    expect_deny(
        &gw,
        Deny {
            from: APP1,
            authority: "closed.test:6000",
            status: 502,
            reason: "upstream_unreachable",
            namespace: "app1",
            host: "closed.test",
            port: 6000,
            count: 1.0,
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_timeout_is_504() {
    let hole = black_hole();
    let config = ConfigDir::new(&gateway_yaml("timeouts: {connect: 1s}\n"));
    config.entry(
        "app1/hole.yaml",
        &static_entry("hole", "slow.test", 6001, "TCP", hole.addr),
    );
    let gw = Gateway::start(&config);
    let started = std::time::Instant::now();
    expect_deny(
        &gw,
        Deny {
            from: APP1,
            authority: "slow.test:6001",
            status: 504,
            reason: "upstream_timeout",
            namespace: "app1",
            host: "slow.test",
            port: 6001,
            count: 1.0,
        },
    )
    .await;
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(900),
        "answered before the 1s connect timeout: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tenant_connection_limit_pins_one_tenant_only() {
    let echo = echo_server().await;
    let config = ConfigDir::new(&gateway_yaml("limits: {namespaces: {app1: 2}}\n"));
    config.entry(
        "app1/echo.yaml",
        &static_entry("echo", "allowed.test", 9000, "TCP", echo),
    );
    config.entry(
        "app2/echo.yaml",
        &static_entry("echo", "allowed.test", 9000, "TCP", echo),
    );
    let gw = Gateway::start(&config);

    let mut held = Vec::new();
    for _ in 0..2 {
        let mut tunnel = open_tunnel(&gw, APP1, "allowed.test:9000").await;
        tunnel.write_all(b"ping").await.expect("write");
        let mut pong = [0u8; 4];
        timeout(WAIT, tunnel.read_exact(&mut pong))
            .await
            .expect("in time")
            .expect("echo");
        held.push(tunnel);
    }
    expect_deny(
        &gw,
        Deny {
            from: APP1,
            authority: "allowed.test:9000",
            status: 429,
            reason: "tenant_connection_limit",
            namespace: "app1",
            host: "allowed.test",
            port: 9000,
            count: 1.0,
        },
    )
    .await;
    // app2 is not affected while app1 is pinned.
    expect_echo(&gw, APP2, "allowed.test:9000").await;
    assert_eq!(
        gw.metric(
            "egress_active_connections",
            &[("namespace", "app1"), ("listener", "connect")]
        ),
        Some(2.0)
    );

    // Releasing one tunnel frees a slot.
    let mut first = held.remove(0);
    assert_eq!(round_trip(&mut first, b"bye").await, b"bye");
    gw.wait_access_logs(1, |v| v["namespace"] == "app1" && v["decision"] == "allow");
    expect_echo(&gw, APP1, "allowed.test:9000").await;
}
