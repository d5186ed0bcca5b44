//! A hostile or broken parent proxy reached over TLS (`upstream.proxy.tls`): an endless response
//! head, a redirect towards the metadata address, an answer that never comes, a close right
//! after the handshake, a `407`, bytes of the destination behind the `200` in the same record,
//! and a "parent" that answers in plaintext. Each ends in the exact refusal (or the exact
//! tunnel), one log line, the right counter, and nothing leaked.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::attack::{Outcome, Probe};
use crate::common::mtls::{serve_each_tls, server_acceptor};
use crate::common::pki::Ca;
use crate::common::{connect_request, entry_yaml, ConfigDir, Gateway, APP1, APP2, WAIT};

/// What the fake parent answers to `CONNECT <host>:22`, chosen by the host asked for.
fn answer_for(authority: &str) -> Option<Vec<u8>> {
    let host = authority.split(':').next().unwrap_or_default();
    match host {
        "endless.test" => {
            let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
            head.extend(
                std::iter::repeat_n(b"X-Padding: aaaaaaaaaaaaaaaa\r\n".iter(), 512).flatten(),
            );
            Some(head)
        }
        "redirect.test" => {
            Some(b"HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/\r\n\r\n".to_vec())
        }
        "auth.test" => Some(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n".to_vec()),
        "banner.test" => {
            Some(b"HTTP/1.1 200 Connection established\r\n\r\nSSH-2.0-parent-tricks\r\n".to_vec())
        }
        "silent.test" => Some(Vec::new()),
        "resets.test" => Some(b"HTTP/1.1 200 Connection established\r\n\r\npartial".to_vec()),
        _ => None,
    }
}

/// A TLS parent on 127.0.0.1 behaving as [`answer_for`] says; `None` closes after the request.
async fn hostile_parent(ca: &Ca) -> std::net::SocketAddr {
    let acceptor = server_acceptor(&ca.server(&["127.0.0.1"]), &[]);
    serve_each_tls(acceptor, |mut tls| async move {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
            if tls.read(&mut byte).await.unwrap_or(0) == 0 {
                return;
            }
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        let authority = head.split(' ').nth(1).unwrap_or_default();
        match answer_for(authority) {
            Some(answer) if answer.is_empty() => {
                // Holds the connection open without a word until the gateway gives up.
                let _ = tls.read(&mut byte).await;
            }
            Some(answer) if authority.starts_with("resets.test") => {
                // Part of a response; once the tenant answers, a reset: the tunnel dies
                // mid-transfer.
                let _ = tls.write_all(&answer).await;
                let _ = tls.flush().await;
                let _ = tls.read(&mut byte).await;
                let _ = tls.get_ref().0.set_zero_linger();
            }
            Some(answer) => {
                let _ = tls.write_all(&answer).await;
                let _ = tls.flush().await;
                let _ = tls.read(&mut byte).await;
            }
            None => {
                let _ = tls.shutdown().await;
            }
        }
    })
    .await
}

/// A "parent" that answers every connection in plaintext, as a proxy without TLS would.
async fn plaintext_parent() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = tcp
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await;
                let mut sink = [0u8; 1024];
                while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {}
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hostile_tls_parent_gets_nothing_it_should_not_and_the_tenant_a_precise_answer() {
    let ca = Ca::new("parent-tricks-ca");
    let parent = hostile_parent(&ca).await;
    let plaintext = plaintext_parent().await;
    let yaml = format!(
        "listeners:\n  connect: {{address: \"127.0.0.1:0\"}}\nadmin: {{address: \"127.0.0.1:0\"}}\n\
         identity:\n  sources:\n    - {{cidr: \"{APP1}/32\", namespace: app1}}\n    - {{cidr: \"{APP2}/32\", namespace: app2}}\n\
         timeouts: {{connect: 1s}}\n\
         upstream:\n  proxy: {{address: \"{parent}\", tls: {{ca_file: ca.pem}}}}\n\
         \x20 namespaces:\n    app2: {{proxy: {{address: \"{plaintext}\", tls: {{ca_file: ca.pem}}}}}}\n"
    );
    let config = ConfigDir::new(&yaml);
    std::fs::write(config.path().join("ca.pem"), &ca.pem).expect("ca");
    // One entry per host: a TCP port carries no name to tell several hosts apart.
    let hosts = [
        "endless", "redirect", "auth", "banner", "silent", "closes", "resets",
    ];
    let entry = hosts
        .map(|name| {
            let spec = format!(
                "  hosts: [{name}.test]\n  ports:\n    - {{number: 22, name: ssh, protocol: TCP}}\n  resolution: DNS\n"
            );
            entry_yaml(name, &spec)
        })
        .join("---\n");
    for ns in ["app1", "app2"] {
        config.entry(&format!("{ns}/tricks.yaml"), &entry);
    }
    let gw = Gateway::start(&config);
    let proxy = gw.addr("connect");

    let refusals = [
        (APP1, "app1", "endless.test", 502, "upstream_unreachable"),
        (APP1, "app1", "redirect.test", 502, "upstream_unreachable"),
        (APP1, "app1", "auth.test", 403, "parent_refused"),
        (APP1, "app1", "silent.test", 504, "upstream_timeout"),
        (APP1, "app1", "closes.test", 502, "upstream_unreachable"),
        (APP2, "app2", "banner.test", 502, "upstream_unreachable"),
    ];
    for (tenant, namespace, host, status, reason) in refusals {
        let what = format!("{namespace} CONNECT {host}:22 through the parent");
        let probe = Probe::before(&gw, Outcome::deny("connect", namespace, reason));
        let answer = connect_request(tenant, proxy, &format!("{host}:22")).await;
        assert_eq!(answer.status, status, "{what}: {}", answer.head);
        assert_eq!(answer.deny_reason().as_deref(), Some(reason), "{what}");
        assert!(!answer.head.contains("169.254"), "{what}: {}", answer.head);
        let line = probe.confirm(&gw, &what);
        assert_eq!(
            line["parent"],
            parent_name(namespace, parent, plaintext),
            "{what}"
        );
    }
    let tls_failed = [
        ("parent", plaintext.to_string()),
        ("outcome", "parent_tls_failed".into()),
    ];
    let labels: Vec<(&str, &str)> = tls_failed.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        gw.metric("egress_parent_connects_total", &labels),
        Some(1.0)
    );

    // The destination's first bytes behind the parent's `200`, in the same TLS record, reach the
    // tenant right after the gateway's own `200`.
    let probe = Probe::before(&gw, Outcome::allow("connect", "app1"));
    let answer = connect_request(APP1, proxy, "banner.test:22").await;
    assert_eq!(answer.status, 200, "{}", answer.head);
    let mut tunnel: TcpStream = answer.stream;
    let banner = read_head_line(&mut tunnel).await;
    assert_eq!(banner, "SSH-2.0-parent-tricks\r\n");
    drop(tunnel);
    probe.confirm(&gw, "banner behind the parent's 200");

    // The parent resets the tunnel mid-transfer: the tenant gets the bytes that came, then a
    // reset too, not a clean end that could pass for a complete response.
    let probe = Probe::before(&gw, Outcome::allow("connect", "app1"));
    let answer = connect_request(APP1, proxy, "resets.test:22").await;
    assert_eq!(answer.status, 200, "{}", answer.head);
    let mut tunnel: TcpStream = answer.stream;
    let mut got = vec![0u8; b"partial".len()];
    tokio::time::timeout(WAIT, tunnel.read_exact(&mut got))
        .await
        .expect("partial in time")
        .expect("partial");
    assert_eq!(got, b"partial");
    tunnel.write_all(b"go").await.expect("write");
    let mut buf = [0u8; 64];
    let end = loop {
        match tokio::time::timeout(WAIT, tunnel.read(&mut buf)).await {
            Ok(Ok(0)) => break None,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Ok(Err(err)) => break Some(err.kind()),
            Err(_) => panic!("the cut tunnel was left open"),
        }
    };
    assert_eq!(got, b"partial");
    assert_eq!(
        end,
        Some(std::io::ErrorKind::ConnectionReset),
        "a clean FIN hides the cut"
    );
    probe.confirm(&gw, "a parent that resets mid-transfer");
}

fn parent_name(
    namespace: &str,
    parent: std::net::SocketAddr,
    plaintext: std::net::SocketAddr,
) -> String {
    match namespace {
        "app2" => plaintext.to_string(),
        _ => parent.to_string(),
    }
}

/// Reads one CRLF-terminated line, bounded by [`WAIT`].
async fn read_head_line(stream: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        let n = tokio::time::timeout(WAIT, stream.read(&mut byte))
            .await
            .expect("banner in time")
            .expect("read banner");
        assert!(n > 0, "closed before the banner: {line:?}");
        line.push(byte[0]);
    }
    String::from_utf8(line).expect("utf8 banner")
}
