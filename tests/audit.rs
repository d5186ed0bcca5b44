//! Audit mode against the real binary (docs/configuration.md `enforcement`, issue 5 point 5): a namespace in
//! `audit` is let through where the allowlist would deny, counted as `decision="audit"` with the
//! reason that would have applied and logged; the address deny list still holds; an enforcing
//! namespace is denied the same request; `explain` shows the mode.
//!
//! The destination is an IP literal on 127.0.0.1 that no entry lists (`not_allowlisted`). An
//! audited connection is dialled as requested and deny-list checked, so the operator's
//! `upstream.allow_cidrs: [127.0.0.1/32]` hole is what lets it reach the local echo server; any
//! other loopback address stays `forbidden_address`, audit or not.

mod common;

use std::net::SocketAddr;
use std::process::Command;

use common::*;
use tokio::io::AsyncWriteExt;

fn config(echo: SocketAddr) -> ConfigDir {
    let config = ConfigDir::new(&gateway_yaml(
        "enforcement: {namespaces: {app2: audit}}\nupstream: {allow_cidrs: [\"127.0.0.1/32\"]}\n",
    ));
    for ns in ["app1", "app2"] {
        config.entry(
            &format!("{ns}/web.yaml"),
            &static_entry("web", "web.test", 8000, "TCP", echo),
        );
    }
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_namespace_is_let_through_counted_and_logged() {
    let echo = echo_server().await;
    let config = config(echo);
    let gateway = Gateway::start(&config);
    let proxy = gateway.addr("connect");
    let unlisted = echo.to_string();

    // app2 (audit): 200, the tunnel works.
    let mut answer = connect_request(APP2, proxy, &unlisted).await;
    assert_eq!(answer.status, 200, "{}", answer.head);
    let src = answer.stream.local_addr().expect("addr").to_string();
    echo_roundtrip(&mut answer.stream, b"audited but through")
        .await
        .expect("echo");
    answer.stream.shutdown().await.expect("shutdown");
    let (_, closed) = read_until_closed(&mut answer.stream, WAIT).await;
    assert!(closed);
    let line = gateway.wait_access_log(|l| l["src"] == src.as_str());
    assert_eq!(line["namespace"], "app2");
    assert_eq!(line["decision"], "audit");
    assert_eq!(line["reason"], "not_allowlisted");
    assert_eq!(line["upstream"], unlisted.as_str());
    assert_eq!(line["bytes_egress"], 19);
    gateway.wait_connections_on("connect", "app2", "audit", "not_allowlisted", 1);
    assert_eq!(gateway.connections("app2", "deny", "not_allowlisted"), None);

    // app2's allowlisted host is a plain allow.
    let allowed = connect_request(APP2, proxy, "web.test:8000").await;
    assert_eq!(allowed.status, 200);

    // app1 (enforce): the same request is denied.
    let denied = connect_request(APP1, proxy, &unlisted).await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.deny_reason().as_deref(), Some("not_allowlisted"));
    gateway.wait_connections_on("connect", "app1", "deny", "not_allowlisted", 1);

    // Audit relaxes only the allowlist: a loopback address outside the operator's hole is still
    // forbidden_address for app2.
    let forbidden = connect_request(APP2, proxy, &format!("127.0.0.5:{}", echo.port())).await;
    assert_eq!(forbidden.status, 403, "{}", forbidden.head);
    assert_eq!(
        forbidden.deny_reason().as_deref(),
        Some("forbidden_address")
    );
    gateway.wait_connections_on("connect", "app2", "deny", "forbidden_address", 1);
}

fn explain(config: &ConfigDir, namespace: &str, host: &str, port: u16) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_egress-gateway"))
        .args(["explain", "--config"])
        .arg(config.path())
        .args(["--namespace", namespace, "--host", host, "--port"])
        .arg(port.to_string())
        .output()
        .expect("run explain");
    (
        output.status.code().expect("exit code"),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn explain_shows_audit_and_the_mode() {
    let echo: SocketAddr = "127.0.0.1:9999".parse().expect("addr");
    let config = config(echo);

    let (code, out) = explain(&config, "app2", "127.0.0.1", 9999);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("AUDIT "), "{out}");
    assert!(out.contains("not_allowlisted"), "{out}");
    assert!(out.contains("audit mode"), "{out}");

    let (code, out) = explain(&config, "app2", "web.test", 8000);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("ALLOW "), "{out}");
    assert!(out.contains("[mode audit]"), "{out}");

    let (code, out) = explain(&config, "app1", "127.0.0.1", 9999);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("DENY "), "{out}");
    assert!(out.contains("not_allowlisted"), "{out}");
    assert!(out.contains("[mode enforce]"), "{out}");
}
