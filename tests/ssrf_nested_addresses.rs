//! Nested `addresses` prefixes (#14.5): an IP literal is allowed by any entry whose prefix
//! contains it and whose port matches, not only by the entry with the longest prefix. Two entries
//! of app1 cover loopback, a wide prefix on one port and a narrow one on another; real CONNECTs
//! to echo servers on 127.0.0.1 show which entry let each one through, and which are refused.

mod common;

use common::tunnel::{expect_echo, read_all};
use common::*;

/// A resolution-NONE entry reachable through `addresses` on one TCP port.
fn address_entry(name: &str, cidr: &str, port: u16) -> String {
    entry_yaml(
        name,
        &format!(
            "  hosts: [\"{name}.internal\"]\n  addresses: [\"{cidr}\"]\n  ports:\n    - {{number: {port}, name: tcp-{port}, protocol: TCP}}\n  resolution: NONE\n"
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn every_covering_prefix_is_tried() {
    let wide_origin = echo_server().await;
    let narrow_origin = echo_server().await;
    let (wide_port, narrow_port) = (wide_origin.port(), narrow_origin.port());
    let config = ConfigDir::new(&gateway_yaml(""));
    config.entry(
        "app1/wide.yaml",
        &address_entry("wide", "127.0.0.0/8", wide_port),
    );
    config.entry(
        "app1/narrow.yaml",
        &address_entry("narrow", "127.0.0.0/24", narrow_port),
    );
    let gw = Gateway::start(&config);

    // The narrow prefix is the longest match for 127.0.0.1, but only the wide one has this port.
    let wide = format!("127.0.0.1:{wide_port}");
    expect_echo(&gw, APP1, &wide).await;
    let line = gw.wait_access_log(|v| v["port"] == wide_port && v["decision"] == "allow");
    assert_eq!(line["service_entry"], "app1/wide", "{line}");

    let narrow = format!("127.0.0.1:{narrow_port}");
    expect_echo(&gw, APP1, &narrow).await;
    let line = gw.wait_access_log(|v| v["port"] == narrow_port && v["decision"] == "allow");
    assert_eq!(line["service_entry"], "app1/narrow", "{line}");

    // Outside the narrow prefix, its port is not allowed; a port neither entry lists is not either.
    for authority in [
        format!("127.1.0.1:{narrow_port}"),
        format!("127.0.0.1:{}", closed_port().port()),
    ] {
        let mut answer = connect_request(APP1, gw.addr("connect"), &authority).await;
        assert_eq!(answer.status, 403, "{authority}: {}", answer.head);
        assert_eq!(answer.deny_reason().as_deref(), Some("port_not_allowed"));
        read_all(&mut answer.stream).await;
    }
    gw.wait_metric(
        "egress_connections_total",
        &[
            ("namespace", "app1"),
            ("listener", "connect"),
            ("decision", "deny"),
            ("reason", "port_not_allowed"),
        ],
        |v| v == 2.0,
    );
    gw.wait_metric(
        "egress_connections_total",
        &[
            ("namespace", "app1"),
            ("listener", "connect"),
            ("decision", "allow"),
            ("reason", "none"),
        ],
        |v| v == 2.0,
    );
}
