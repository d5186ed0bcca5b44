//! The mTLS listener: SPIFFE tenant identity, handshake failures by reason, HTTP/1.1 CONNECT
//! (curl with a workload certificate, a client reset passed upstream as a reset), and certificate
//! rotation without restart. HTTP/2 CONNECT
//! is in tests/mtls_h2.rs; the shared test world in tests/common/mtls.rs.

mod common;

use std::time::{Duration, Instant};

use common::mtls::{
    certs, h2_client, h2_connect, serve_each_tls, server_acceptor, tcp_entry, tls_connect, world,
    write, World, APP1_ID, APP2_ID,
};
use common::pki::{Ca, Issued};
use common::{Gateway, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Sends an HTTP/1.1 CONNECT over `stream` and returns the answer head.
async fn h1_connect<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    authority: &str,
) -> String {
    let request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(WAIT, stream.read(&mut byte))
            .await
            .expect("answer in time")
            .expect("read");
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    String::from_utf8(head).expect("utf8")
}

/// An mTLS HTTP/1.1 connection presenting `spiffe_id` that has asked for `CONNECT authority`;
/// returns it with the answer head.
async fn h1_tunnel_as(
    gateway: &Gateway,
    world: &World,
    spiffe_id: &str,
    authority: &str,
) -> (
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    String,
) {
    let cert = world.ca.client(Some(spiffe_id), &[], false);
    let mut tls = tls_connect(gateway, &world.ca.pem, Some(&cert), &[b"http/1.1"])
        .await
        .expect("handshake");
    let head = h1_connect(&mut tls, authority).await;
    (tls, head)
}

#[tokio::test(flavor = "multi_thread")]
async fn spiffe_identity_decides_http1_connect_inside_tls() {
    let echo = common::echo_server().await;
    let world = world("");
    tcp_entry(&world, "echo", "echo.test", 7000, echo);
    let gateway = Gateway::start(&world.config);

    let (mut tls, head) = h1_tunnel_as(&gateway, &world, APP1_ID, "echo.test:7000").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    tls.write_all(b"ping over mtls").await.expect("write");
    let mut back = [0u8; 14];
    tls.read_exact(&mut back).await.expect("echo");
    assert_eq!(&back, b"ping over mtls");
    drop(tls);

    // The same destination from another tenant's certificate: its own allowlist decides.
    let (_tls, head) = h1_tunnel_as(&gateway, &world, APP2_ID, "echo.test:7000").await;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    assert!(
        head.contains("X-Egress-Deny-Reason: not_allowlisted"),
        "{head}"
    );

    let line = gateway.wait_access_log(|l| l["host"] == "echo.test" && l["namespace"] == "app1");
    assert_eq!(line["listener"], "connect_tls");
    assert_eq!(line["namespace"], "app1");
    assert_eq!(line["identity"], APP1_ID);
    assert_eq!(line["decision"], "allow");
    assert_eq!(line["service_entry"], "app1/echo");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_mtls_tunnel_carries_4_mib_each_way_intact_with_half_close() {
    let echo = common::echo_server().await;
    let world = world("");
    tcp_entry(&world, "echo", "echo.test", 7000, echo);
    let gateway = Gateway::start(&world.config);
    let (tls, head) = h1_tunnel_as(&gateway, &world, APP1_ID, "echo.test:7000").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");

    let sent = common::pattern(4 * 1024 * 1024);
    let (mut read, mut write) = tokio::io::split(tls);
    let to_send = sent.clone();
    let writer = tokio::spawn(async move {
        write.write_all(&to_send).await.expect("write 4 MiB");
        write.shutdown().await.expect("close_notify");
    });
    let mut received = Vec::with_capacity(sent.len());
    tokio::time::timeout(WAIT, read.read_to_end(&mut received))
        .await
        .expect("4 MiB back in time")
        .expect("read");
    writer.await.expect("writer");
    assert_eq!(received.len(), sent.len());
    assert!(
        received == sent,
        "the echoed bytes differ from the sent bytes"
    );

    let line = gateway.wait_access_log(|l| l["host"] == "echo.test");
    assert_eq!(line["bytes_egress"], sent.len() as u64, "{line}");
    assert_eq!(line["bytes_ingress"], sent.len() as u64, "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_reset_under_tls_reaches_upstream_as_a_reset() {
    let (origin, mut seen) = common::watching_server().await;
    let world = world("");
    tcp_entry(&world, "origin", "reset.test", 7000, origin);
    let gateway = Gateway::start(&world.config);
    let (mut tls, head) = h1_tunnel_as(&gateway, &world, APP1_ID, "reset.test:7000").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");

    tls.write_all(b"ping").await.expect("write");
    tls.flush().await.expect("flush");
    let first = tokio::time::timeout(WAIT, seen.recv())
        .await
        .expect("in time");
    assert_eq!(first, Some(common::Seen::Data(b"ping".to_vec())));
    tls.get_ref().0.set_zero_linger().expect("SO_LINGER");
    drop(tls);
    let end = tokio::time::timeout(WAIT, seen.recv())
        .await
        .expect("in time");
    assert_eq!(end, Some(common::Seen::End(common::Ending::Reset)));
}

#[tokio::test(flavor = "multi_thread")]
async fn certificates_without_our_spiffe_id_are_unknown_tenants() {
    let echo = common::echo_server().await;
    let world = world("");
    tcp_entry(&world, "echo", "echo.test", 7000, echo);
    let gateway = Gateway::start(&world.config);
    let cases = [
        (
            "dns-san-only",
            world.ca.client(None, &["app1"], false),
            "no-spiffe-id",
        ),
        (
            "other-trust-domain",
            world
                .ca
                .client(Some("spiffe://other.domain/ns/app1/sa/default"), &[], false),
            "spiffe://other.domain/ns/app1/sa/default",
        ),
    ];
    for (case, cert, identity) in &cases {
        let mut tls = tls_connect(&gateway, &world.ca.pem, Some(cert), &[b"http/1.1"])
            .await
            .expect("handshake is accepted");
        let head = h1_connect(&mut tls, "echo.test:7000").await;
        assert!(head.starts_with("HTTP/1.1 403"), "{case}: {head}");
        assert!(
            head.contains("X-Egress-Deny-Reason: unknown_tenant"),
            "{case}: {head}"
        );
        let line = gateway.wait_access_log(|l| l["identity"] == *identity);
        assert_eq!(line["namespace"], "unknown", "{case}");
        assert_eq!(line["reason"], "unknown_tenant", "{case}");
    }
    let denied = gateway.metric(
        "egress_connections_total",
        &[
            ("namespace", "unknown"),
            ("listener", "connect_tls"),
            ("reason", "unknown_tenant"),
        ],
    );
    assert_eq!(denied, Some(2.0));
}

#[tokio::test(flavor = "multi_thread")]
async fn handshake_failures_are_counted_by_reason() {
    let world = world("");
    let gateway = Gateway::start(&world.config);
    let stranger_ca = Ca::new("unknown-ca");
    let stranger = stranger_ca.client(Some(APP1_ID), &[], false);
    let expired = world.ca.client(Some(APP1_ID), &[], true);

    let cases: [(&str, Option<&Issued>); 3] = [
        ("no_client_cert", None),
        ("unknown_ca", Some(&stranger)),
        ("expired", Some(&expired)),
    ];
    for (reason, cert) in cases {
        let result = async {
            let mut tls = tls_connect(&gateway, &world.ca.pem, cert, &[b"http/1.1"]).await?;
            let mut byte = [0u8; 1];
            tls.read(&mut byte).await
        }
        .await;
        assert!(
            result.is_err() || result.is_ok_and(|n| n == 0),
            "{reason} must fail"
        );
        let deadline = Instant::now() + WAIT;
        loop {
            let value = gateway.metric(
                "egress_tls_handshake_errors_total",
                &[("listener", "connect_tls"), ("reason", reason)],
            );
            if value == Some(1.0) {
                break;
            }
            assert!(Instant::now() < deadline, "{reason} counted: {value:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    let output = tokio::process::Command::new("timeout")
        .args(["10", "openssl", "s_client", "-connect"])
        .arg(gateway.addr("connect_tls").to_string())
        .args(["-ign_eof", "-servername", "gateway.test", "-CAfile"])
        .arg(world.config.path().join("certs/ca.pem"))
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("openssl s_client must be installed");
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(
        text.contains("alert certificate required"),
        "openssl without a client certificate is refused:\n{text}"
    );
    let counted = gateway.metric(
        "egress_tls_handshake_errors_total",
        &[("listener", "connect_tls"), ("reason", "no_client_cert")],
    );
    assert_eq!(counted, Some(2.0));
}

#[tokio::test(flavor = "multi_thread")]
async fn curl_reaches_a_tls_origin_through_the_mtls_proxy() {
    let origin_ca = Ca::new("origin-ca");
    let origin_cert = origin_ca.server(&["allowed.test"]);
    let origin = tls_http_origin(&origin_cert).await;
    let world = world("");
    world.config.entry(
        "app1/allowed.yaml",
        &common::static_entry("allowed", "allowed.test", 443, "HTTPS", origin),
    );
    let gateway = Gateway::start(&world.config);
    let tenant = world.ca.client(Some(APP1_ID), &[], false);
    let dir = world.config.path();
    write(dir, "tenant.pem", &tenant.cert);
    write(dir, "tenant-key.pem", &tenant.key);
    write(dir, "origin-ca.pem", &origin_ca.pem);

    let output = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "--proxy"])
        .arg(format!(
            "https://127.0.0.1:{}",
            gateway.addr("connect_tls").port()
        ))
        .arg("--proxy-cacert")
        .arg(dir.join("certs/ca.pem"))
        .arg("--proxy-cert")
        .arg(dir.join("tenant.pem"))
        .arg("--proxy-key")
        .arg(dir.join("tenant-key.pem"))
        .arg("--cacert")
        .arg(dir.join("origin-ca.pem"))
        .arg("https://allowed.test/")
        .output()
        .await
        .expect("curl must be installed");
    assert!(
        output.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "hello from allowed.test\n"
    );
    let line = gateway.wait_access_log(|l| l["host"] == "allowed.test");
    assert_eq!(line["sni"], "allowed.test");
    assert_eq!(line["identity"], APP1_ID);
    assert_eq!(line["decision"], "allow");
}

/// A TLS origin answering every request with a fixed HTTP/1.1 body.
async fn tls_http_origin(cert: &Issued) -> std::net::SocketAddr {
    let acceptor = server_acceptor(cert, &[b"http/1.1"]);
    serve_each_tls(acceptor, |mut tls| async move {
        let mut buf = vec![0u8; 4096];
        let mut seen = Vec::new();
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
        let body = "hello from allowed.test\n";
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = tls.write_all(response.as_bytes()).await;
        let _ = tls.shutdown().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn rotated_certificates_take_effect_without_restart() {
    let echo = common::echo_server().await;
    let world = world("");
    tcp_entry(&world, "echo", "echo.test", 7000, echo);
    let gateway = Gateway::start(&world.config);
    let tenant = world.ca.client(Some(APP1_ID), &[], false);
    let mut send = h2_client(&gateway, &world, APP1_ID).await;

    let served_cert = |ca: String| {
        let tenant = tenant.clone();
        let gateway = &gateway;
        async move {
            let tls = tls_connect(gateway, &ca, Some(&tenant), &[b"http/1.1"]).await?;
            Ok::<_, std::io::Error>(tls.get_ref().1.peer_certificates().expect("certs")[0].clone())
        }
    };
    let before = served_cert(world.ca.pem.clone()).await.expect("old cert");

    // Rotate: new serving certificate from the same CA, written the way an operator would.
    let rotated = world.ca.server(&["127.0.0.1", "gateway.test"]);
    let certs_dir = world.config.path().join("certs");
    write(&certs_dir, "gw-key.pem.new", &rotated.key);
    write(&certs_dir, "gw.pem.new", &rotated.cert);
    std::fs::rename(
        certs_dir.join("gw-key.pem.new"),
        certs_dir.join("gw-key.pem"),
    )
    .expect("mv");
    std::fs::rename(certs_dir.join("gw.pem.new"), certs_dir.join("gw.pem")).expect("mv");
    let rotated_at = Instant::now();
    loop {
        let now = served_cert(world.ca.pem.clone()).await.expect("handshake");
        if now != before {
            assert_eq!(now.as_ref(), certs(&rotated.cert)[0].as_ref());
            break;
        }
        assert!(
            rotated_at.elapsed() < Duration::from_secs(2),
            "rotation within 2 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The connection opened before the rotation still carries new tunnels.
    let (response, _) = h2_connect(&mut send, "echo.test:7000").await;
    assert_eq!(response.status(), 200);

    // A broken replacement is refused; the rotated certificate keeps serving.
    let failures = || {
        gateway
            .metric("egress_config_reloads_total", &[("result", "failure")])
            .unwrap_or(0.0)
    };
    let failed_before = failures();
    write(
        &certs_dir,
        "gw.pem",
        "-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n",
    );
    let deadline = Instant::now() + WAIT;
    while failures() <= failed_before {
        assert!(Instant::now() < deadline, "broken rotation counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gateway.wait_log("TLS reload failed");
    let still = served_cert(world.ca.pem.clone())
        .await
        .expect("handshake after broken rotation");
    assert_eq!(still.as_ref(), certs(&rotated.cert)[0].as_ref());
}

/// A plain HTTP origin on 127.0.0.1 that answers every request `200 ok`.
async fn ok_origin() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut byte).await {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    addr
}

/// Absolute-form requests on `connect_tls` are judged by the certificate, never by the source
/// address: with 127.0.0.1 mapped to app1 in `identity.sources`, app2's certificate from there
/// gets app2's allowlist, and app1's certificate gets app1's.
#[tokio::test(flavor = "multi_thread")]
async fn absolute_form_over_mtls_is_judged_by_the_certificate_not_the_source() {
    let origin = ok_origin().await;
    let ca = Ca::new("tenant-ca");
    let server = ca.server(&["127.0.0.1", "gateway.test"]);
    let config = common::ConfigDir::new(
        "listeners:\n  connect_tls: {address: \"127.0.0.1:0\"}\nadmin: {address: \"127.0.0.1:0\"}\ntls: {cert: certs/gw.pem, key: certs/gw-key.pem, client_ca: certs/ca.pem}\nidentity:\n  trust_domain: cluster.local\n  sources:\n    - {cidr: \"127.0.0.1/32\", namespace: app1}\n",
    );
    let certs_dir = config.path().join("certs");
    std::fs::create_dir_all(&certs_dir).expect("mkdir");
    write(&certs_dir, "gw.pem", &server.cert);
    write(&certs_dir, "gw-key.pem", &server.key);
    write(&certs_dir, "ca.pem", &ca.pem);
    config.entry(
        "app1/web.yaml",
        &common::static_entry("web", "web.test", 80, "HTTP", origin),
    );
    let gateway = Gateway::start(&config);

    for (id, expected) in [(APP2_ID, "HTTP/1.1 403"), (APP1_ID, "HTTP/1.1 200")] {
        let cert = ca.client(Some(id), &[], false);
        let mut tls = tls_connect(&gateway, &ca.pem, Some(&cert), &[b"http/1.1"])
            .await
            .expect("handshake");
        tls.write_all(b"GET http://web.test/ HTTP/1.1\r\nHost: web.test\r\n\r\n")
            .await
            .expect("write");
        let mut answer = vec![0u8; expected.len()];
        tokio::time::timeout(WAIT, tls.read_exact(&mut answer))
            .await
            .expect("answer in time")
            .expect("read");
        assert_eq!(String::from_utf8_lossy(&answer), expected, "{id}");
    }
    let denied = gateway.wait_access_log(|l| l["decision"] == "deny");
    assert_eq!(denied["namespace"], "app2", "{denied}");
    assert_eq!(denied["identity"], APP2_ID, "{denied}");
    assert_eq!(denied["reason"], "not_allowlisted", "{denied}");
    let allowed = gateway.wait_access_log(|l| l["decision"] == "allow");
    assert_eq!(allowed["namespace"], "app1", "{allowed}");
    assert_eq!(allowed["identity"], APP1_ID, "{allowed}");
}
