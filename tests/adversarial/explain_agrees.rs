//! `explain` agrees with `run`: every attack of this suite that `explain` can express (listener,
//! presented identity, host, port, ClientHello SNI names, ECH) is played against the running
//! gateway and dry-run by `egress-gateway explain` on the same config directory; the verdict and
//! deny reason must be the same.

use std::process::Command;

use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::attack::read_to_close;
use crate::common::mtls::{tls_connect, APP1_ID, APP2_ID};
use crate::common::{
    connect_from, echo_server, http_origin, read_head, static_entry, Gateway, APP1, APP2, STRANGER,
    WAIT,
};
use crate::hello::{Hello, HOST_NAME};
use crate::pki::{mtls_world, Authority, Leaf};

/// One ask, as both the gateway and `explain` take it.
struct Ask {
    listener: &'static str,
    presented: &'static str,
    host: &'static str,
    port: u16,
    sni: &'static [&'static str],
    ech: bool,
}

const fn ask(
    listener: &'static str,
    presented: &'static str,
    host: &'static str,
    port: u16,
) -> Ask {
    Ask {
        listener,
        presented,
        host,
        port,
        sni: &[],
        ech: false,
    }
}

const fn with_sni(mut ask: Ask, sni: &'static [&'static str], ech: bool) -> Ask {
    ask.sni = sni;
    ask.ech = ech;
    ask
}

/// The hello a case sends: its SNI names (none leaves the extension out) and ECH.
fn hello_of(ask: &Ask) -> Vec<u8> {
    Hello {
        names: ask.sni.iter().map(|n| (HOST_NAME, n.as_bytes())).collect(),
        ech: ask.ech,
        ..Hello::default()
    }
    .record()
}

/// (decision, reason) from `explain`'s first line.
fn explain(dir: &std::path::Path, ask: &Ask) -> (String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_egress-gateway"));
    command
        .args(["explain", "--config"])
        .arg(dir)
        .args(["--listener", ask.listener, "--presented", ask.presented])
        .args(["--host", ask.host, "--port", &ask.port.to_string()]);
    for name in ask.sni {
        command.args(["--sni", name]);
    }
    if ask.ech {
        command.arg("--ech");
    }
    let output = command.output().expect("run explain");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let first = stdout.lines().next().unwrap_or_default();
    let verdict = first
        .split(' ')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let reason = match verdict.as_str() {
        "deny" => first
            .rsplit_once(": ")
            .map(|(_, r)| r.split(' ').next().unwrap_or_default().to_owned())
            .unwrap_or_default(),
        "audit" => first
            .split("would deny ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .unwrap_or_default()
            .to_owned(),
        _ => "none".to_owned(),
    };
    assert_eq!(
        output.status.code(),
        Some(i32::from(verdict == "deny")),
        "explain exit code: {stdout}"
    );
    (verdict, reason)
}

/// Plays `ask` against the running gateway; returns its access-log line.
async fn run(gw: &Gateway, ca: &Authority, ask: &Ask) -> Value {
    let lines = gw.access_log().len();
    match ask.listener {
        "connect" => {
            let mut stream = connect_from(ask.presented, gw.addr("connect")).await;
            let authority = format!("{}:{}", ask.host, ask.port);
            let request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n");
            stream.write_all(request.as_bytes()).await.expect("write");
            let head = read_head(&mut stream).await;
            if head.starts_with("HTTP/1.1 200") && !ask.sni.is_empty() {
                stream.write_all(&hello_of(ask)).await.expect("hello");
            }
            let _ = stream.shutdown().await;
            let _ = read_to_close(&mut stream).await;
        }
        "sni" => {
            let mut stream = connect_from(ask.presented, gw.addr("sni")).await;
            stream.write_all(&hello_of(ask)).await.expect("hello");
            let _ = stream.shutdown().await;
            let _ = read_to_close(&mut stream).await;
        }
        "http" => {
            let mut stream = connect_from(ask.presented, gw.addr("http")).await;
            let host = if ask.port == 80 {
                ask.host.to_owned()
            } else {
                format!("{}:{}", ask.host, ask.port)
            };
            let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
            stream.write_all(request.as_bytes()).await.expect("write");
            let _ = read_to_close(&mut stream).await;
        }
        "connect_tls" => {
            let cert = ca.client(&Leaf {
                uris: vec![ask.presented],
                ..Leaf::default()
            });
            let mut tls = tls_connect(gw, &ca.pem, Some(&cert), &[b"http/1.1"])
                .await
                .expect("handshake");
            let request = format!("CONNECT {}:{} HTTP/1.1\r\n\r\n", ask.host, ask.port);
            tls.write_all(request.as_bytes()).await.expect("write");
            let _ = tls.shutdown().await;
            let mut rest = Vec::new();
            let _ = tokio::time::timeout(
                WAIT,
                tokio::io::AsyncReadExt::read_to_end(&mut tls, &mut rest),
            )
            .await;
        }
        other => panic!("no such listener {other}"),
    }
    gw.wait_access_logs(lines + 1, |_| true)[lines].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_and_run_agree_on_every_expressible_attack() {
    let echo = echo_server().await;
    let web = http_origin("ok").await;
    let ca = Authority::new("tenant-ca");
    let world = mtls_world(&ca, "");
    std::fs::write(
        world.config.path().join("gateway.yaml"),
        format!(
            "listeners:\n  connect: {{address: \"127.0.0.1:0\"}}\n  connect_tls: {{address: \"127.0.0.1:0\"}}\n  sni: {{address: \"127.0.0.1:0\", port: 443}}\n  http: {{address: \"127.0.0.1:0\", port: 80}}\nadmin: {{address: \"127.0.0.1:0\"}}\ntls: {{cert: certs/gw.pem, key: certs/gw-key.pem, client_ca: certs/ca.pem}}\nidentity:\n  trust_domain: cluster.local\n  sources:\n    - {{cidr: \"{APP1}/32\", namespace: app1}}\n    - {{cidr: \"{APP2}/32\", namespace: app2}}\n"
        ),
    )
    .expect("gateway.yaml");
    let entries = [
        ("allowed", "allowed.test", 443, "TCP", echo),
        ("tls", "tls.test", 443, "TLS", echo),
        ("web", "web.test", 80, "HTTP", web),
    ];
    for (name, host, port, protocol, upstream) in entries {
        world.config.entry(
            &format!("app1/{name}.yaml"),
            &static_entry(name, host, port, protocol, upstream),
        );
    }
    let gw = Gateway::start(&world.config);
    let baseline = crate::baseline::Baseline::take(&gw);
    let cases = [
        ask("connect", APP1, "allowed.test", 443),
        ask("connect", APP1, "ALLOWED.TEST.", 443),
        ask("connect", APP1, "allowed.test", 444),
        ask("connect", APP1, "evil.test", 443),
        ask("connect", APP1, "allowed.test.evil.test", 443),
        ask("connect", APP1, "2130706433", 443),
        ask("connect", APP1, "0x7f.1", 443),
        ask("connect", APP1, "127.0.0.1", 443),
        ask("connect", APP1, "[::1]", 443),
        ask("connect", APP1, "[allowed.test]", 443),
        ask("connect", APP1, "user@allowed.test", 443),
        ask("connect", APP1, "allowed.test", 0),
        ask("connect", STRANGER, "allowed.test", 0),
        ask("connect", APP2, "allowed.test", 443),
        ask("connect", STRANGER, "allowed.test", 443),
        with_sni(ask("connect", APP1, "tls.test", 443), &["tls.test"], false),
        with_sni(ask("connect", APP1, "tls.test", 443), &["TLS.test."], false),
        with_sni(ask("connect", APP1, "tls.test", 443), &["evil.test"], false),
        with_sni(
            ask("connect", APP1, "tls.test", 443),
            &["tls.test", "evil.test"],
            false,
        ),
        with_sni(ask("connect", APP1, "tls.test", 443), &["127.0.0.1"], false),
        with_sni(ask("connect", APP1, "tls.test", 443), &["tls.test"], true),
        with_sni(ask("sni", APP1, "tls.test", 443), &["tls.test"], false),
        with_sni(ask("sni", APP1, "evil.test", 443), &["evil.test"], false),
        with_sni(
            ask("sni", APP1, "tls.test", 443),
            &["tls.test", "evil.test"],
            false,
        ),
        with_sni(ask("sni", APP1, "127.0.0.1", 443), &["127.0.0.1"], false),
        with_sni(ask("sni", APP1, "tls.test", 443), &["tls.test"], true),
        with_sni(ask("sni", APP2, "tls.test", 443), &["tls.test"], false),
        with_sni(ask("sni", STRANGER, "tls.test", 443), &["tls.test"], false),
        ask("http", APP1, "web.test", 80),
        ask("http", APP1, "evil.test", 80),
        ask("http", APP1, "web.test", 8080),
        ask("http", APP1, "user@web.test", 80),
        ask("http", APP1, "2130706433", 80),
        ask("http", STRANGER, "2130706433", 80),
        ask("http", APP2, "web.test", 80),
        ask("http", STRANGER, "web.test", 80),
        ask("connect_tls", APP1_ID, "allowed.test", 443),
        ask("connect_tls", APP1_ID, "evil.test", 443),
        ask("connect_tls", APP2_ID, "allowed.test", 443),
        ask(
            "connect_tls",
            "spiffe://evil.local/ns/app1/sa/default",
            "allowed.test",
            443,
        ),
        ask(
            "connect_tls",
            "spiffe://cluster.local/ns/app1/sa/..",
            "allowed.test",
            443,
        ),
        ask(
            "connect_tls",
            "spiffe://cluster.local/ns/app%31/sa/default",
            "allowed.test",
            443,
        ),
    ];
    let mut disagreements = Vec::new();
    let mut reasons = std::collections::BTreeSet::new();
    for ask in &cases {
        let line = run(&gw, &ca, ask).await;
        let ran = (
            line["decision"].as_str().unwrap_or_default().to_owned(),
            line["reason"].as_str().unwrap_or("none").to_owned(),
        );
        let explained = explain(world.config.path(), ask);
        let what = format!(
            "{} {} -> {}:{} sni={:?} ech={}",
            ask.listener, ask.presented, ask.host, ask.port, ask.sni, ask.ech
        );
        reasons.insert(ran.1.clone());
        if ran != explained {
            disagreements.push(format!("{what}: run {ran:?}, explain {explained:?}"));
        }
    }
    assert!(disagreements.is_empty(), "{disagreements:#?}");
    baseline.settle(&gw, "the explained attacks");
    assert!(
        reasons.len() >= 7,
        "the cases cover allow and most deny reasons: {reasons:?}"
    );
}
