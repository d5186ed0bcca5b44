//! mTLS identity tricks on `connect_tls`: a certificate the tenant CA signed but that names no
//! tenant (several URI SANs, non-canonical SPIFFE paths, foreign or look-alike trust domains,
//! namespaces that are not DNS labels, no URI SAN, SPIFFE ID only in the CN) gets its handshake
//! and then `403 unknown_tenant` for namespace `unknown`; an expired, foreign-CA, self-signed or
//! absent certificate fails the handshake and is counted by reason.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::attack::{Outcome, Probe};
use crate::baseline::Baseline;
use crate::common::mtls::{tcp_entry, tls_connect, APP1_ID, APP2_ID};
use crate::common::pki::Issued;
use crate::common::{echo_server, Gateway, WAIT};
use crate::pki::{mtls_world, self_signed, Authority, Leaf};

/// Reads one answer head off a TLS stream.
async fn head_of<S: AsyncRead + Unpin>(stream: &mut S) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(WAIT, stream.read(&mut byte))
            .await
            .expect("answer in time")
            .expect("read");
        assert!(
            n > 0,
            "closed mid-head: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

async fn connect_over<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, request: &str) -> String {
    stream.write_all(request.as_bytes()).await.expect("write");
    head_of(stream).await
}

fn leaf(uris: &[&'static str]) -> Leaf<'static> {
    Leaf {
        uris: uris.to_vec(),
        ..Leaf::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn certificates_naming_no_tenant_are_unknown_tenants() {
    let echo = echo_server().await;
    let ca = Authority::new("tenant-ca");
    let world = mtls_world(&ca, "");
    tcp_entry(&world, "echo", "echo.test", 7000, echo);
    let gw = Gateway::start(&world.config);
    let long_ns = format!("spiffe://cluster.local/ns/{}/sa/default", "a".repeat(64));
    let long_ns: &'static str = Box::leak(long_ns.into_boxed_str());
    let cases: Vec<(&str, Leaf<'static>)> = vec![
        ("two URI SANs, two tenants", leaf(&[APP1_ID, APP2_ID])),
        ("the same URI SAN twice", leaf(&[APP1_ID, APP1_ID])),
        (
            "a SPIFFE ID and an https URI",
            leaf(&[APP1_ID, "https://app1.example/"]),
        ),
        (
            "dot-dot in the path",
            leaf(&["spiffe://cluster.local/ns/app2/../app1/sa/default"]),
        ),
        (
            "dot-dot as the account",
            leaf(&["spiffe://cluster.local/ns/app1/sa/.."]),
        ),
        (
            "double slash",
            leaf(&["spiffe://cluster.local/ns//app1/sa/default"]),
        ),
        (
            "percent-encoded namespace",
            leaf(&["spiffe://cluster.local/ns/app%31/sa/default"]),
        ),
        (
            "trailing slash",
            leaf(&["spiffe://cluster.local/ns/app1/sa/default/"]),
        ),
        (
            "foreign trust domain",
            leaf(&["spiffe://evil.local/ns/app1/sa/default"]),
        ),
        (
            "look-alike trust domain suffix",
            leaf(&["spiffe://cluster.local.evil/ns/app1/sa/default"]),
        ),
        (
            "uppercase trust domain",
            leaf(&["spiffe://CLUSTER.LOCAL/ns/app1/sa/default"]),
        ),
        (
            "trust domain with a port",
            leaf(&["spiffe://cluster.local:443/ns/app1/sa/default"]),
        ),
        (
            "userinfo before the trust domain",
            leaf(&["spiffe://app1@cluster.local/ns/app1/sa/default"]),
        ),
        (
            "uppercase scheme",
            leaf(&["SPIFFE://cluster.local/ns/app1/sa/default"]),
        ),
        (
            "query after the account",
            leaf(&["spiffe://cluster.local/ns/app1/sa/default?ns=app2"]),
        ),
        (
            "uppercase namespace",
            leaf(&["spiffe://cluster.local/ns/App1/sa/default"]),
        ),
        (
            "dotted namespace",
            leaf(&["spiffe://cluster.local/ns/app1.evil/sa/default"]),
        ),
        (
            "namespace with a leading hyphen",
            leaf(&["spiffe://cluster.local/ns/-app1/sa/default"]),
        ),
        ("namespace longer than 63", leaf(&[long_ns])),
        (
            "no service account part",
            leaf(&["spiffe://cluster.local/ns/app1"]),
        ),
        (
            "a newline and a forged log line in the URI SAN",
            leaf(&["spiffe://cluster.local/ns/app1/sa/x\n{\"decision\":\"allow\",\"namespace\":\"app1\"}"]),
        ),
        (
            "DNS SAN only",
            Leaf {
                dns: vec!["app1"],
                ..Leaf::default()
            },
        ),
        (
            "SPIFFE ID only in the common name",
            Leaf {
                cn: Some(APP1_ID),
                ..Leaf::default()
            },
        ),
    ];
    for (what, leaf) in &cases {
        let cert = ca.client(leaf);
        let probe = Probe::before(
            &gw,
            Outcome::deny("connect_tls", "unknown", "unknown_tenant"),
        );
        let mut tls = tls_connect(&gw, &ca.pem, Some(&cert), &[b"http/1.1"])
            .await
            .unwrap_or_else(|e| panic!("{what}: the handshake is accepted: {e}"));
        let head = connect_over(&mut tls, "CONNECT echo.test:7000 HTTP/1.1\r\n\r\n").await;
        assert!(head.starts_with("HTTP/1.1 403"), "{what}: {head}");
        assert!(
            head.contains("X-Egress-Deny-Reason: unknown_tenant"),
            "{what}: {head}"
        );
        drop(tls);
        let line = probe.confirm(&gw, what);
        assert!(line["host"] == "echo.test", "{what}: {line}");
    }

    // The same refusal for absolute-form requests and HTTP/2 streams on such a certificate.
    let two = ca.client(&leaf(&[APP1_ID, APP2_ID]));
    let probe = Probe::before(
        &gw,
        Outcome::deny("connect_tls", "unknown", "unknown_tenant"),
    );
    let mut tls = tls_connect(&gw, &ca.pem, Some(&two), &[b"http/1.1"])
        .await
        .expect("handshake");
    let head = connect_over(
        &mut tls,
        "GET http://echo.test:7000/ HTTP/1.1\r\nHost: echo.test:7000\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 403"), "absolute-form: {head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("x-egress-deny-reason: unknown_tenant"),
        "{head}"
    );
    drop(tls);
    probe.confirm(&gw, "absolute-form with two URI SANs");

    let probe = Probe::before(
        &gw,
        Outcome::deny("connect_tls", "unknown", "unknown_tenant"),
    );
    let tls = tls_connect(&gw, &ca.pem, Some(&two), &[b"h2"])
        .await
        .expect("handshake");
    let (mut send, connection) = h2::client::handshake(tls).await.expect("h2 handshake");
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let request = http::Request::builder()
        .method("CONNECT")
        .uri("echo.test:7000")
        .body(())
        .expect("request");
    send = send.ready().await.expect("ready");
    let (answer, _) = send.send_request(request, false).expect("send");
    let answer = tokio::time::timeout(WAIT, answer)
        .await
        .expect("answer in time")
        .expect("answer");
    assert_eq!(answer.status(), 403, "h2 with two URI SANs");
    assert_eq!(answer.headers()["x-egress-deny-reason"], "unknown_tenant");
    drop(send);
    driver.abort();
    let _ = driver.await;
    probe.confirm(&gw, "HTTP/2 CONNECT with two URI SANs");

    // A good certificate still works afterwards, with DNS SANs beside its one URI SAN.
    let good = ca.client(&Leaf {
        uris: vec![APP1_ID],
        dns: vec!["app2"],
        ..Leaf::default()
    });
    let probe = Probe::before(&gw, Outcome::allow("connect_tls", "app1"));
    let mut tls = tls_connect(&gw, &ca.pem, Some(&good), &[b"http/1.1"])
        .await
        .expect("handshake");
    let head = connect_over(&mut tls, "CONNECT echo.test:7000 HTTP/1.1\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    tls.write_all(b"ping").await.expect("write");
    let mut back = [0u8; 4];
    tls.read_exact(&mut back).await.expect("echo");
    assert_eq!(&back, b"ping");
    drop(tls);
    probe.confirm(&gw, "one URI SAN and a DNS SAN");
}

#[tokio::test(flavor = "multi_thread")]
async fn certificates_the_ca_did_not_vouch_for_fail_the_handshake() {
    let ca = Authority::new("tenant-ca");
    let world = mtls_world(&ca, "");
    let gw = Gateway::start(&world.config);
    let baseline = Baseline::take(&gw);
    let stranger = Authority::new("stranger-ca");
    let cases: Vec<(&str, Option<Issued>, &str)> = vec![
        (
            "expired",
            Some(ca.client(&Leaf {
                uris: vec![APP1_ID],
                expired: true,
                ..Leaf::default()
            })),
            "expired",
        ),
        (
            "signed by another CA",
            Some(stranger.client(&leaf(&[APP1_ID]))),
            "unknown_ca",
        ),
        (
            "self-signed",
            Some(self_signed(&leaf(&[APP1_ID]))),
            "unknown_ca",
        ),
        ("no certificate", None, "no_client_cert"),
    ];
    let app1 = ca.client(&leaf(&[APP1_ID]));
    for (what, cert, reason) in cases {
        let labels = [("listener", "connect_tls"), ("reason", reason)];
        let before = gw
            .metric("egress_tls_handshake_errors_total", &labels)
            .unwrap_or(0.0);
        let result = tls_connect(&gw, &ca.pem, cert.as_ref(), &[b"http/1.1"]).await;
        match result {
            Err(_) => {}
            Ok(mut tls) => {
                // TLS 1.3: the refusal arrives with the first read after the client's flight.
                let _ = tls
                    .write_all(b"CONNECT echo.test:7000 HTTP/1.1\r\n\r\n")
                    .await;
                let mut buf = [0u8; 64];
                let read = tokio::time::timeout(WAIT, tls.read(&mut buf)).await;
                assert!(
                    matches!(read, Ok(Err(_)) | Ok(Ok(0))),
                    "{what}: the gateway must not answer: {read:?}"
                );
            }
        }
        gw.wait_metric("egress_tls_handshake_errors_total", &labels, |v| {
            v == before + 1.0
        });
        baseline.settle(&gw, what);
    }
    // A good certificate offering only a protocol the gateway does not speak.
    let labels = [("listener", "connect_tls"), ("reason", "no_alpn")];
    let before = gw
        .metric("egress_tls_handshake_errors_total", &labels)
        .unwrap_or(0.0);
    let result = tls_connect(&gw, &ca.pem, Some(&app1), &[b"spdy/3"]).await;
    assert!(result.is_err(), "an unknown ALPN protocol is refused");
    gw.wait_metric("egress_tls_handshake_errors_total", &labels, |v| {
        v == before + 1.0
    });
    baseline.settle(&gw, "unknown ALPN");
    assert!(
        gw.access_log().is_empty(),
        "failed handshakes carry no request: {:?}",
        gw.access_log()
    );
}
