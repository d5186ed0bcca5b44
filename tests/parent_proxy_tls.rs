//! TLS to the parent proxy (`upstream.proxy.tls`), with a real Squid from Debian's packages
//! serving `https_port` on a certificate the test issues: tunnels and forwarded HTTP reach the
//! destination through it; a parent whose certificate does not verify (another CA, another name,
//! not TLS at all) is refused before a credential or destination is sent, counted as
//! `parent_tls_failed`; `check` names a missing or empty CA bundle (`explain` saying TLS is in
//! `tests/parent_proxy.rs`).
//!
//! Needs `squid` (`apt-get install squid`; `.ci/run` installs it).

mod common;

use std::net::SocketAddr;

use common::pki::Ca;
use common::squid::{Squid, PASSWORD};
use common::*;
use tokio::io::AsyncWriteExt;

const APP3: &str = "127.0.0.4";
const APP4: &str = "127.0.0.5";

/// app1 reaches Squid over verified TLS; app2 trusts another CA; app3 expects another name;
/// app4 speaks TLS to something that does not.
fn gateway_config(squid: SocketAddr, not_tls: SocketAddr) -> ConfigDir {
    let yaml = format!(
        "listeners:\n  connect: {{address: \"127.0.0.1:0\"}}\nadmin: {{address: \"127.0.0.1:0\"}}\n\
         identity:\n  sources:\n    - {{cidr: \"{APP1}/32\", namespace: app1}}\n\
         \x20   - {{cidr: \"{APP2}/32\", namespace: app2}}\n    - {{cidr: \"{APP3}/32\", namespace: app3}}\n\
         \x20   - {{cidr: \"{APP4}/32\", namespace: app4}}\n\
         upstream:\n  proxy: {{address: \"{squid}\", credentials_file: alice.txt, tls: {{ca_file: corp-ca.pem}}}}\n\
         \x20 namespaces:\n\
         \x20   app2: {{proxy: {{address: \"{squid}\", credentials_file: alice.txt, tls: {{ca_file: other-ca.pem}}}}}}\n\
         \x20   app3: {{proxy: {{address: \"{squid}\", credentials_file: alice.txt, tls: {{ca_file: corp-ca.pem, server_name: other.parent.test}}}}}}\n\
         \x20   app4: {{proxy: {{address: \"{not_tls}\", tls: {{ca_file: corp-ca.pem}}}}}}\n"
    );
    let config = ConfigDir::new(&yaml);
    let file = |name: &str, content: &str| {
        std::fs::write(config.path().join(name), content).expect("write config file");
    };
    file("alice.txt", &format!("alice:{PASSWORD}\n"));
    config
}

/// `origin.parent.test` on the echo port (TCP) and on the HTTP origin's port (HTTP).
fn parent_entry(echo_port: u16, http_port: u16) -> String {
    entry_yaml(
        "origin",
        &format!(
            "  hosts: [origin.parent.test]\n  ports:\n    - {{number: {echo_port}, name: tcp, protocol: TCP}}\n    - {{number: {http_port}, name: http, protocol: HTTP}}\n  resolution: DNS\n"
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn tunnels_reach_the_destination_through_a_verified_tls_parent_and_nothing_else_does() {
    let corp_ca = Ca::new("corp-ca");
    let squid = Squid::start_tls(&corp_ca.server(&["parent.test", "127.0.0.1"]));
    let echo = echo_server().await;
    let origin = http_origin("hello over a TLS parent").await;
    let config = gateway_config(squid.addr, echo);
    std::fs::write(config.path().join("corp-ca.pem"), &corp_ca.pem).expect("ca");
    std::fs::write(config.path().join("other-ca.pem"), Ca::new("other-ca").pem).expect("ca");
    for ns in ["app1", "app2", "app3", "app4"] {
        config.entry(
            &format!("{ns}/origin.yaml"),
            &parent_entry(echo.port(), origin.port()),
        );
    }
    let gw = Gateway::start(&config);
    let proxy = gw.addr("connect");
    let parent = squid.addr.to_string();
    let authority = format!("origin.parent.test:{}", echo.port());

    // A CONNECT tunnel: the gateway speaks TLS to Squid, asks for the tunnel with alice's
    // credentials, and the tenant's bytes travel inside it.
    let mut tunnel = open_tunnel(APP1, proxy, &authority).await;
    echo_roundtrip(&mut tunnel, b"inside TLS to the parent")
        .await
        .expect("echo through the TLS parent");
    drop(tunnel);
    let line = gw.wait_access_log(|l| l["namespace"] == "app1" && l["decision"] == "allow");
    assert_eq!(line["parent"], parent.as_str(), "{line}");
    assert_eq!(line["bytes_egress"], 24, "{line}");
    let log = squid.wait_logged("TCP_TUNNEL/200 ");
    assert!(
        log.contains(&format!("CONNECT {authority} alice")),
        "squid saw: {log}"
    );

    // A forwarded absolute-form request goes through the same TLS parent.
    let mut client = connect_from(APP1, proxy).await;
    let target = format!("origin.parent.test:{}", origin.port());
    let request =
        format!("GET http://{target}/ HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n");
    client.write_all(request.as_bytes()).await.expect("write");
    let (response, ended) = read_until_closed(&mut client, WAIT).await;
    let response = String::from_utf8_lossy(&response);
    assert!(ended, "{response}");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("hello over a TLS parent"), "{response}");
    assert!(squid
        .wait_logged(&format!("CONNECT {target} alice"))
        .contains(&target));

    // Another CA, another name, or no TLS at all: refused at the handshake, before Squid hears
    // a request, and counted apart from a parent that is down.
    let attempts_before = squid.access_log().lines().count();
    for tenant in [APP2, APP3, APP4] {
        let answer = connect_request(tenant, proxy, &authority).await;
        assert_eq!(answer.status, 502, "{tenant}: {}", answer.head);
        assert_eq!(
            answer.deny_reason().as_deref(),
            Some("upstream_unreachable"),
            "{tenant}"
        );
    }
    for namespace in ["app2", "app3", "app4"] {
        let line = gw.wait_access_log(|l| l["namespace"] == namespace);
        assert_eq!(line["reason"], "upstream_unreachable", "{line}");
    }
    // Squid notes the aborted handshakes, but no request reached it.
    let later = squid
        .access_log()
        .lines()
        .skip(attempts_before)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        !later.contains("CONNECT") && !later.contains("alice"),
        "squid saw: {later}"
    );
    let outcomes = [
        (parent.as_str(), "connected", 2.0),
        (parent.as_str(), "parent_tls_failed", 2.0),
        (&echo.to_string(), "parent_tls_failed", 1.0),
    ];
    for (parent, outcome, want) in outcomes {
        let labels = [("parent", parent), ("outcome", outcome)];
        let got = gw.metric("egress_parent_connects_total", &labels);
        assert_eq!(got, Some(want), "parent {parent} outcome {outcome}");
    }
    for line in gw.logs() {
        assert!(!line.contains(PASSWORD), "{line}");
    }
}

#[test]
fn check_names_a_missing_or_empty_ca_bundle() {
    let config = ConfigDir::new(
        "listeners:\n  connect: {address: \"127.0.0.1:0\"}\nupstream:\n  proxy: {address: \"proxy.corp.example:3128\", tls: {ca_file: missing.pem}}\n  namespaces:\n    app2: {proxy: {address: \"proxy.corp.example:3129\", tls: {ca_file: empty.pem}}}\n",
    );
    std::fs::write(config.path().join("empty.pem"), "not a certificate\n").expect("write");
    let (code, _, stderr) = cli(&["check"], config.path());
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("gateway.yaml:") && stderr.contains("upstream.proxy: tls: tls.ca_file"),
        "{stderr}"
    );
    assert!(
        stderr.contains("upstream.namespaces.app2.proxy: tls: ca_file: no PEM certificate found"),
        "{stderr}"
    );
}
