//! A ClientHello naming several hosts in its SNI list is refused on the SNI listener and inside
//! CONNECT tunnels: RFC 6066 allows one host_name, and an origin could serve the one the gateway
//! did not check.

mod common;

use std::time::Duration;

use common::{ConfigDir, Gateway, ALERT_ACCESS_DENIED, APP1};
use tokio::io::AsyncWriteExt;

/// A minimal TLS 1.3-shaped ClientHello whose server_name extension lists `names`.
fn hello_with_names(names: &[&str]) -> Vec<u8> {
    let mut list = Vec::new();
    for name in names {
        list.push(0u8);
        list.extend((name.len() as u16).to_be_bytes());
        list.extend(name.as_bytes());
    }
    let mut extension = vec![0u8, 0];
    extension.extend(((list.len() + 2) as u16).to_be_bytes());
    extension.extend((list.len() as u16).to_be_bytes());
    extension.extend(list);
    let mut body = vec![3u8, 3];
    body.extend([7u8; 32]);
    body.push(0);
    body.extend([0, 2, 0x13, 0x01, 1, 0]);
    body.extend((extension.len() as u16).to_be_bytes());
    body.extend(extension);
    let mut handshake = vec![1u8];
    handshake.extend(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend(body);
    let mut record = vec![22u8, 3, 1];
    record.extend((handshake.len() as u16).to_be_bytes());
    record.extend(handshake);
    record
}

#[tokio::test(flavor = "multi_thread")]
async fn several_sni_names_are_refused() {
    let (upstream, mut received) = common::recording_server().await;
    let config = ConfigDir::new(&common::transparent_gateway_yaml(&[], ""));
    config.entry(
        "app1/allowed.yaml",
        &common::static_entry("allowed", "allowed.test", 443, "TLS", upstream),
    );
    let gateway = Gateway::start(&config);

    // One name: allowed, the hello arrives upstream byte for byte.
    let single = hello_with_names(&["allowed.test"]);
    let mut client = common::connect_from(APP1, gateway.addr("sni")).await;
    client.write_all(&single).await.expect("write");
    client.shutdown().await.expect("half-close");
    let got = tokio::time::timeout(common::WAIT, received.recv())
        .await
        .expect("upstream data in time")
        .expect("recorded");
    assert_eq!(got, single);

    // Two names, the first one allowed: refused with access_denied, nothing dialled.
    let double = hello_with_names(&["allowed.test", "evil.test"]);
    let mut client = common::connect_from(APP1, gateway.addr("sni")).await;
    client.write_all(&double).await.expect("write");
    let (answer, closed) = common::read_until_closed(&mut client, Duration::from_secs(5)).await;
    assert_eq!(answer, ALERT_ACCESS_DENIED);
    assert!(closed);
    let line = gateway.wait_access_log(|l| l["reason"] == "malformed_request");
    assert_eq!(line["listener"], "sni");
    assert_eq!(line["namespace"], "app1");
    assert!(line["upstream"].is_null());

    // Inside a CONNECT tunnel to a TLS port the same hello gets the same rule and reason: the
    // SNI rule exists once, in the planner.
    let mut tunnel = common::open_tunnel(APP1, gateway.addr("connect"), "allowed.test:443").await;
    tunnel.write_all(&double).await.expect("write");
    let (answer, _) = common::read_until_closed(&mut tunnel, Duration::from_secs(5)).await;
    assert_eq!(answer, ALERT_ACCESS_DENIED);
    let line = gateway
        .wait_access_log(|l| l["reason"] == "malformed_request" && l["listener"] == "connect");
    assert_eq!(line["namespace"], "app1");
}
