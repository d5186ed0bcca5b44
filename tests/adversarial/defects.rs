//! Defects of issue 14 that deserve a test of their own here (the others are named in the
//! suite's module tests and in tests/*.rs): ECH under each enforcement setting (#10) and a
//! bare-LF request followed by CL+TE on the same connection (#12).

use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::attack::{read_to_close, Outcome, Probe};
use crate::common::{
    connect_from, read_head, recording_server, static_entry, transparent_gateway_yaml, ConfigDir,
    Gateway, APP1, WAIT,
};
use crate::hello::Hello;
use crate::origin::{web_gateway, Origin};

async fn tls_gateway(extra: &str) -> (Gateway, UnboundedReceiver<Vec<u8>>, ConfigDir) {
    let (addr, upstream) = recording_server().await;
    let config = ConfigDir::new(&transparent_gateway_yaml(&[], extra));
    config.entry(
        "app1/tls.yaml",
        &static_entry("tls", "tls.test", 443, "TLS", addr),
    );
    (Gateway::start(&config), upstream, config)
}

/// Sends an ECH hello with an allowed outer name on the `sni` listener and in a CONNECT tunnel;
/// each must end as `want` (and, when let through, reach the upstream intact).
async fn ech_both_ways(extra: &str, decision: &str, reason: &str) {
    let (gw, mut upstream, _config) = tls_gateway(extra).await;
    let hello = Hello {
        ech: true,
        ..Hello::named("tls.test")
    }
    .record();
    for listener in ["sni", "connect"] {
        let want = Outcome {
            listener,
            namespace: "app1",
            decision,
            reason,
        };
        let what = format!("ECH on {listener} ({extra:?})");
        let probe = Probe::before(&gw, want);
        let mut stream = connect_from(APP1, gw.addr(listener)).await;
        if listener == "connect" {
            stream
                .write_all(b"CONNECT tls.test:443 HTTP/1.1\r\n\r\n")
                .await
                .expect("write");
            let head = read_head(&mut stream).await;
            assert!(head.starts_with("HTTP/1.1 200"), "{what}: {head}");
        }
        stream.write_all(&hello).await.expect("hello");
        stream.shutdown().await.expect("half-close");
        let back = read_to_close(&mut stream).await;
        // The sni listener refuses before dialling; a CONNECT tunnel was dialled first.
        let dialled = !(decision == "deny" && listener == "sni");
        let got = if dialled {
            tokio::time::timeout(WAIT, upstream.recv())
                .await
                .expect("the upstream saw the tunnel")
        } else {
            None
        };
        if decision == "deny" {
            assert_eq!(back, [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 49], "{what}");
            assert!(got.is_none_or(|b| b.is_empty()), "{what}: no byte upstream");
        } else {
            assert!(back.is_empty(), "{what}: {back:?}");
            assert_eq!(
                got.as_deref(),
                Some(hello.as_slice()),
                "{what}: let through"
            );
        }
        drop(stream);
        let line = probe.confirm(&gw, &what);
        // Without the SNI rule a CONNECT tunnel is not sniffed at all.
        if listener == "sni" || decision != "allow" {
            assert_eq!(line["sni"], "tls.test", "{what}: {line}");
        }
    }
}

/// #10: ECH hides the real destination: refused by default, logged and let through in audit
/// mode, let through when `require_sni_match` is off (a documented setting).
#[tokio::test(flavor = "multi_thread")]
async fn defect_10_ech_is_refused_audited_or_allowed_as_configured() {
    ech_both_ways("", "deny", "encrypted_client_hello").await;
    ech_both_ways(
        "enforcement: {namespaces: {app1: audit}}\n",
        "audit",
        "encrypted_client_hello",
    )
    .await;
    ech_both_ways("enforcement: {require_sni_match: false}\n", "allow", "none").await;
}

/// #12: a bare-LF request head followed by a CL+TE request on the same connection: one parser
/// frames both, so the bytes a second parser would have read as a third request never reach the
/// origin as one (on the http listener and on absolute-form).
#[tokio::test(flavor = "multi_thread")]
async fn defect_12_bare_lf_then_cl_te_smuggles_nothing() {
    let origin = Origin::start().await;
    let (gw, _config) = web_gateway(&origin).await;
    let baseline = crate::baseline::Baseline::take(&gw);
    for (listener, target) in [("http", "/"), ("connect", "http://web.test/")] {
        let mut stream = connect_from(APP1, gw.addr(listener)).await;
        let request = format!(
            "GET {target}lf HTTP/1.1\nHost: web.test\n\nPOST {target}clte HTTP/1.1\r\nHost: web.test\r\nContent-Length: 48\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: evil.test\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.expect("write");
        let answers = read_to_close(&mut stream).await;
        let text = String::from_utf8_lossy(&answers);
        assert_eq!(
            text.matches("HTTP/1.1 200").count(),
            2,
            "{listener}: {text}"
        );
        assert!(
            !text.contains("403"),
            "{listener}: a third request was read: {text}"
        );
    }
    let seen = origin.requests();
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert!(seen.iter().all(|r| !r.contains("smuggled")), "{seen:?}");
    for post in seen.iter().filter(|r| r.starts_with("POST")) {
        let post = post.to_ascii_lowercase();
        assert!(!post.contains("content-length"), "{post}");
        assert!(post.contains("transfer-encoding: chunked"), "{post}");
    }
    baseline.settle(&gw, "bare LF then CL+TE");
}
