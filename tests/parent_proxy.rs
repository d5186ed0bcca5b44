//! Chaining to a parent proxy (`upstream.proxy`) with a real Squid from Debian's packages as the
//! parent: the gateway still decides on its own allowlist, then asks the parent for
//! `CONNECT host:port` with Basic credentials read from a file; a parent's refusal is
//! `parent_refused` (not `upstream_unreachable`), a parent that is down is
//! `upstream_unreachable`, a namespace routed `direct` dials itself, and the parent resolves
//! names (the gateway cannot resolve `*.parent.test`: only Squid's hosts file knows them).
//!
//! Needs `squid` (`apt-get install squid`; `.ci/run` installs it).

mod common;

use std::net::SocketAddr;

use common::pki::Ca;
use common::squid::{Squid, PASSWORD};
use common::*;

const APP3: &str = "127.0.0.4";
const APP4: &str = "127.0.0.5";

/// app1 goes through Squid with the right password, app2 through a parent that is down, app3
/// through Squid with a wrong password, app4 directly.
fn gateway_config(squid: SocketAddr, down: SocketAddr) -> ConfigDir {
    let yaml = format!(
        "listeners:\n  connect: {{address: \"127.0.0.1:0\"}}\nadmin: {{address: \"127.0.0.1:0\"}}\n\
         identity:\n  sources:\n    - {{cidr: \"{APP1}/32\", namespace: app1}}\n\
         \x20   - {{cidr: \"{APP2}/32\", namespace: app2}}\n    - {{cidr: \"{APP3}/32\", namespace: app3}}\n\
         \x20   - {{cidr: \"{APP4}/32\", namespace: app4}}\n\
         upstream:\n  proxy: {{address: \"{squid}\", credentials_file: alice.txt}}\n  namespaces:\n\
         \x20   app2: {{proxy: {{address: \"{down}\"}}}}\n\
         \x20   app3: {{proxy: {{address: \"{squid}\", credentials_file: wrong.txt}}}}\n\
         \x20   app4: {{direct: true}}\n"
    );
    let config = ConfigDir::new(&yaml);
    std::fs::write(
        config.path().join("alice.txt"),
        format!("alice:{PASSWORD}\n"),
    )
    .expect("creds");
    std::fs::write(config.path().join("wrong.txt"), "alice:wrong\n").expect("creds");
    config
}

/// One entry per host: a TCP port carries no name to tell several hosts apart.
fn parent_entries(port: u16) -> String {
    ["origin", "blocked"]
        .map(|name| {
            entry_yaml(
                name,
                &format!(
                    "  hosts: [{name}.parent.test]\n  ports:\n    - {{number: {port}, name: tcp, protocol: TCP}}\n  resolution: DNS\n"
                ),
            )
        })
        .join("---\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn tunnels_go_through_the_parent_and_its_refusals_are_told_apart() {
    let echo = echo_server().await;
    let squid = Squid::start();
    let down = closed_port();
    let config = gateway_config(squid.addr, down);
    let port = echo.port();
    for ns in ["app1", "app2", "app3"] {
        config.entry(&format!("{ns}/parent.yaml"), &parent_entries(port));
    }
    config.entry(
        "app4/direct.yaml",
        &static_entry("direct", "direct.parent.test", 9000, "TCP", echo),
    );
    let gw = Gateway::start(&config);
    let proxy = gw.addr("connect");
    let parent = squid.addr.to_string();

    // Allowed by the gateway and by the parent: the tunnel carries bytes; the gateway never
    // resolved the name (it cannot), Squid did, and Squid saw alice's credentials.
    let authority = format!("origin.parent.test:{port}");
    let mut tunnel = open_tunnel(APP1, proxy, &authority).await;
    echo_roundtrip(&mut tunnel, b"through the parent")
        .await
        .expect("echo through the parent");
    drop(tunnel);
    let line = gw.wait_access_log(|l| l["namespace"] == "app1" && l["decision"] == "allow");
    assert_eq!(line["parent"], parent.as_str(), "{line}");
    assert_eq!(line["upstream"], parent.as_str(), "{line}");
    let log = squid.wait_logged("TCP_TUNNEL/200 ");
    assert!(
        log.contains(&format!("CONNECT {authority} alice")),
        "squid saw: {log}"
    );

    // Allowed by the gateway, refused by the parent's policy: parent_refused, a 403.
    let answer = connect_request(APP1, proxy, &format!("blocked.parent.test:{port}")).await;
    assert_eq!(answer.status, 403, "{}", answer.head);
    assert_eq!(answer.deny_reason().as_deref(), Some("parent_refused"));
    assert!(squid
        .wait_logged("TCP_DENIED/403")
        .contains("blocked.parent.test"));

    // Refused by the gateway itself: the parent never hears of it.
    let answer = connect_request(APP1, proxy, &format!("elsewhere.parent.test:{port}")).await;
    assert_eq!(answer.deny_reason().as_deref(), Some("not_allowlisted"));

    // A wrong password (407 from the parent) is also the parent refusing.
    let answer = connect_request(APP3, proxy, &authority).await;
    assert_eq!(answer.status, 403, "{}", answer.head);
    assert_eq!(answer.deny_reason().as_deref(), Some("parent_refused"));

    // The parent is down: the upstream is unreachable, and the log names the parent.
    let answer = connect_request(APP2, proxy, &authority).await;
    assert_eq!(answer.status, 502, "{}", answer.head);
    assert_eq!(
        answer.deny_reason().as_deref(),
        Some("upstream_unreachable")
    );
    let line = gw.wait_access_log(|l| l["namespace"] == "app2");
    assert_eq!(line["parent"], down.to_string().as_str(), "{line}");

    // A namespace routed `direct` dials the destination itself.
    let mut tunnel = open_tunnel(APP4, proxy, "direct.parent.test:9000").await;
    echo_roundtrip(&mut tunnel, b"direct").await.expect("echo");
    drop(tunnel);
    let line = gw.wait_access_log(|l| l["namespace"] == "app4" && l["decision"] == "allow");
    assert_eq!(line["parent"], serde_json::Value::Null, "{line}");
    assert_eq!(line["upstream"], echo.to_string().as_str(), "{line}");

    assert!(
        !squid.access_log().contains("elsewhere"),
        "{}",
        squid.access_log()
    );
    let outcomes = [
        (parent.as_str(), "connected", 1.0),
        (parent.as_str(), "parent_refused", 2.0),
        (&down.to_string(), "upstream_unreachable", 1.0),
    ];
    for (parent, outcome, want) in outcomes {
        let labels = [("parent", parent), ("outcome", outcome)];
        let got = gw.metric("egress_parent_connects_total", &labels);
        assert_eq!(got, Some(want), "parent {parent} outcome {outcome}");
    }
    // The password never reaches a log, in the clear or encoded.
    let encoded = "YWxpY2U6czNjcmV0LXBhcmVudC1wYXNz";
    for line in gw.logs().iter().chain(
        squid
            .access_log()
            .lines()
            .map(str::to_owned)
            .collect::<Vec<_>>()
            .iter(),
    ) {
        assert!(
            !line.contains(PASSWORD) && !line.contains(encoded),
            "{line}"
        );
    }
}

#[test]
fn check_names_a_bad_parent_and_explain_shows_the_parent() {
    let config = ConfigDir::new(
        "listeners:\n  connect: {address: \"127.0.0.1:0\"}\nupstream:\n  proxy: {address: \"proxy.corp.example\"}\n  namespaces:\n    app2: {proxy: {address: \"proxy.corp.example:3128\", credentials_file: missing.txt}}\n",
    );
    let (code, _, stderr) = cli(&["check"], config.path());
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("gateway.yaml:")
            && stderr
                .contains("upstream.proxy: parent proxy `proxy.corp.example` is not host:port"),
        "{stderr}"
    );
    assert!(
        stderr.contains("upstream.namespaces.app2.proxy: credentials_file"),
        "{stderr}"
    );

    // app2 reaches its own parent over TLS.
    let config = ConfigDir::new(
        "listeners:\n  connect: {address: \"127.0.0.1:0\"}\nupstream:\n  proxy: {address: \"proxy.corp.example:3128\"}\n  namespaces:\n    app2: {proxy: {address: \"proxy.corp.example:3129\", tls: {ca_file: corp-ca.pem}}}\n",
    );
    std::fs::write(config.path().join("corp-ca.pem"), Ca::new("corp-ca").pem).expect("ca");
    let api = entry_yaml("api", "  hosts: [api.example.com]\n  ports:\n    - {number: 443, name: https, protocol: HTTPS}\n  resolution: DNS\n");
    for (namespace, via) in [
        (
            "app1",
            "via parent proxy proxy.corp.example:3128: CONNECT api.example.com:443",
        ),
        (
            "app2",
            "via parent proxy proxy.corp.example:3129 over TLS: CONNECT api.example.com:443",
        ),
    ] {
        config.entry(&format!("{namespace}/api.yaml"), &api);
        let args = [
            "explain",
            "--namespace",
            namespace,
            "--host",
            "api.example.com",
        ];
        let (code, stdout, _) = cli(&args, config.path());
        assert_eq!(code, Some(0), "{stdout}");
        assert!(stdout.contains(via), "{namespace}: {stdout}");
    }
}
