//! Audit mode as a way out: a namespace in audit mode has its allowlist relaxed (would-be
//! denies are logged and let through), but nothing else: the address deny list still stops
//! loopback, metadata and private addresses asked for as IP literals or Host headers, identity
//! and malformed requests are still refused, and the tenant limit still holds.

use tokio::io::AsyncWriteExt;

use crate::attack::{deny_header, raw_exchange, status_of, Outcome, Probe};
use crate::common::{
    connect_from, echo_server, read_head, recording_server, static_entry, transparent_gateway_yaml,
    ConfigDir, Gateway, APP1, STRANGER,
};

#[tokio::test(flavor = "multi_thread")]
async fn audit_mode_relaxes_the_allowlist_and_nothing_else() {
    let echo = echo_server().await;
    // A canary on loopback: audit mode must never dial it.
    let (canary, mut canary_seen) = recording_server().await;
    let config = ConfigDir::new(&transparent_gateway_yaml(
        &[],
        "enforcement: {default: audit}\nlimits: {namespaces: {app1: 1}}\n",
    ));
    config.entry(
        "app1/allowed.yaml",
        &static_entry("allowed", "allowed.test", 443, "TCP", echo),
    );
    let gw = Gateway::start(&config);
    let port = canary.port();
    let connect = |authority: String| format!("CONNECT {authority} HTTP/1.1\r\n\r\n");
    let cases: Vec<(&str, &str, &str, String, u16, &str)> = vec![
        ("an unknown tenant", "connect", STRANGER, connect("allowed.test:443".into()), 403, "unknown_tenant"),
        ("loopback literal", "connect", APP1, connect(format!("127.0.0.1:{port}")), 403, "forbidden_address"),
        ("IPv6 loopback literal", "connect", APP1, connect(format!("[::1]:{port}")), 403, "forbidden_address"),
        ("IPv4-mapped loopback literal", "connect", APP1, connect(format!("[::ffff:127.0.0.1]:{port}")), 403, "forbidden_address"),
        ("NAT64 loopback literal", "connect", APP1, connect(format!("[64:ff9b::7f00:1]:{port}")), 403, "forbidden_address"),
        ("cloud metadata literal", "connect", APP1, connect("169.254.169.254:80".into()), 403, "forbidden_address"),
        ("RFC 1918 literal", "connect", APP1, connect("10.0.0.1:443".into()), 403, "forbidden_address"),
        ("unspecified address", "connect", APP1, connect(format!("0.0.0.0:{port}")), 403, "forbidden_address"),
        ("a numeric host", "connect", APP1, connect("2130706433:443".into()), 400, "malformed_request"),
        (
            "a loopback Host on the http listener",
            "http",
            APP1,
            format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"),
            403,
            "forbidden_address",
        ),
        (
            "absolute-form to metadata",
            "connect",
            APP1,
            "GET http://169.254.169.254/latest/meta-data/ HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: close\r\n\r\n".into(),
            403,
            "forbidden_address",
        ),
    ];
    for (what, listener, from, request, status, reason) in cases {
        let namespace = if from == STRANGER { "unknown" } else { "app1" };
        let probe = Probe::before(&gw, Outcome::deny(listener, namespace, reason));
        let answer = raw_exchange(from, gw.addr(listener), request.as_bytes()).await;
        let text = String::from_utf8_lossy(&answer);
        assert_eq!(status_of(&answer), status, "{what}: {text}");
        assert_eq!(
            deny_header(&answer).as_deref(),
            Some(reason),
            "{what}: {text}"
        );
        probe.confirm(&gw, what);
        assert!(
            canary_seen.try_recv().is_err(),
            "{what}: the canary was dialled"
        );
    }

    // The tenant limit holds in audit mode too.
    let mut held = connect_from(APP1, gw.addr("connect")).await;
    held.write_all(b"CONNECT allowed.test:443 HTTP/1.1\r\n\r\n")
        .await
        .expect("write");
    assert!(read_head(&mut held).await.starts_with("HTTP/1.1 200"));
    let answer = raw_exchange(
        APP1,
        gw.addr("connect"),
        b"CONNECT allowed.test:443 HTTP/1.1\r\n\r\n",
    )
    .await;
    assert_eq!(
        status_of(&answer),
        429,
        "{}",
        String::from_utf8_lossy(&answer)
    );
    // The held tunnel's own line arrives when it closes, after the probe's.
    let line = gw.wait_access_log(|v| v["reason"] == "tenant_connection_limit");
    assert_eq!(line["decision"], "deny", "{line}");
    gw.wait_connections_on("connect", "app1", "deny", "tenant_connection_limit", 1);
    drop(held);
}
