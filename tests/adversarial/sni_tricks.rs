//! SNI tricks, on the transparent `sni` listener (the SNI is the destination) and inside CONNECT
//! tunnels to TLS ports (the SNI must name the CONNECT host): several names, IP literals,
//! trailing dots, NUL, raw UTF-8, ECH, hellos split over many records or larger than allowed,
//! and a second ClientHello in a tunnel already let through. Refusals are TLS fatal alerts.

use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::attack::{read_to_close, Outcome, Probe};
use crate::common::{
    connect_from, gateway_yaml, read_head, recording_server, static_entry,
    transparent_gateway_yaml, ConfigDir, Gateway, APP1, WAIT,
};
use crate::hello::{Hello, HOST_NAME};

const ACCESS_DENIED: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 49];
const UNRECOGNIZED_NAME: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 112];

struct Setup {
    gw: Gateway,
    upstream: UnboundedReceiver<Vec<u8>>,
    _config: ConfigDir,
}

/// app1 may reach `tls.test:443` (TLS) on the `sni` listener and by CONNECT; hellos are capped
/// at 4 KiB.
async fn setup() -> Setup {
    let (addr, upstream) = recording_server().await;
    let config = ConfigDir::new(&transparent_gateway_yaml(
        &[],
        "limits: {max_client_hello_bytes: 4096}\n",
    ));
    config.entry(
        "app1/tls.yaml",
        &static_entry("tls", "tls.test", 443, "TLS", addr),
    );
    Setup {
        gw: Gateway::start(&config),
        upstream,
        _config: config,
    }
}

/// What the upstream received on its next connection (it reads to EOF).
async fn received(rx: &mut UnboundedReceiver<Vec<u8>>) -> Vec<u8> {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("the upstream saw a connection in time")
        .expect("upstream open")
}

/// One hello on the `sni` listener: the exact bytes back (an alert, or nothing when allowed and
/// the client half-closes), log line, counter, no leak.
async fn on_sni_listener(
    setup: &mut Setup,
    what: &str,
    bytes: &[u8],
    want: Outcome<'_>,
    answer: &[u8],
) {
    let probe = Probe::before(&setup.gw, want);
    let mut stream = connect_from(APP1, setup.gw.addr("sni")).await;
    stream.write_all(bytes).await.expect("write hello");
    if want.decision == "allow" {
        stream.shutdown().await.expect("half-close");
        let back = read_to_close(&mut stream).await;
        assert_eq!(back, answer, "{what}");
        assert_eq!(
            received(&mut setup.upstream).await,
            bytes,
            "{what}: replayed intact"
        );
    } else {
        let back = read_to_close(&mut stream).await;
        assert_eq!(back, answer, "{what}: the alert");
    }
    drop(stream);
    probe.confirm(&setup.gw, what);
}

#[tokio::test(flavor = "multi_thread")]
async fn sni_listener_tricks_get_the_exact_alert() {
    let mut setup = setup().await;
    let deny = |reason| Outcome::deny("sni", "app1", reason);
    let allow = Outcome::allow("sni", "app1");
    let several = Hello {
        names: vec![(HOST_NAME, b"tls.test"), (HOST_NAME, b"evil.test")],
        ..Hello::default()
    };
    let other_type_first = Hello {
        names: vec![(1, b"evil.test"), (HOST_NAME, b"tls.test")],
        ..Hello::default()
    };
    let only_other_type = Hello {
        names: vec![(1, b"tls.test")],
        ..Hello::default()
    };
    let twice = Hello {
        twice: true,
        ..Hello::named("tls.test")
    };
    let ech = Hello {
        ech: true,
        ..Hello::named("tls.test")
    };
    let too_big = Hello {
        padding: 5000,
        ..Hello::named("tls.test")
    };
    let mut oversized_record = vec![0x16, 3, 1, 0x40, 0x01];
    oversized_record.extend_from_slice(&Hello::named("tls.test").handshake());
    let long_name = format!("{}.test", vec!["a".repeat(60); 5].join("."));
    let long_label = format!("{}.test", "a".repeat(64));
    let mut sslv2_version = Hello::named("tls.test").record();
    sslv2_version[1] = 2;
    let cases: Vec<(&str, Vec<u8>, Outcome<'_>, &[u8])> = vec![
        (
            "plain allowed name",
            Hello::named("tls.test").record(),
            allow,
            b"",
        ),
        (
            "uppercase name",
            Hello::named("TLS.TEST").record(),
            allow,
            b"",
        ),
        (
            "trailing dot",
            Hello::named("tls.test.").record(),
            allow,
            b"",
        ),
        (
            "split over 7-byte records",
            Hello::named("tls.test").records(7),
            allow,
            b"",
        ),
        (
            "several names",
            several.record(),
            deny("malformed_request"),
            &ACCESS_DENIED,
        ),
        (
            "a non-host_name entry first",
            other_type_first.record(),
            deny("malformed_request"),
            &ACCESS_DENIED,
        ),
        (
            "only a non-host_name entry",
            only_other_type.record(),
            deny("missing_sni"),
            &UNRECOGNIZED_NAME,
        ),
        (
            "two server_name extensions",
            twice.record(),
            deny("malformed_request"),
            &ACCESS_DENIED,
        ),
        (
            "no SNI at all",
            Hello::default().record(),
            deny("missing_sni"),
            &UNRECOGNIZED_NAME,
        ),
        (
            "IPv4 literal SNI",
            Hello::named("127.0.0.1").record(),
            deny("malformed_request"),
            &ACCESS_DENIED,
        ),
        (
            "IPv6 literal SNI",
            Hello::named("::1").record(),
            deny("malformed_request"),
            &ACCESS_DENIED,
        ),
        (
            "numeric SNI",
            Hello::named("2130706433").record(),
            deny("malformed_request"),
            &ACCESS_DENIED,
        ),
        (
            "NUL inside SNI",
            Hello::named("tls.test\0.evil.test").record(),
            deny("malformed_request"),
            &ACCESS_DENIED,
        ),
        (
            "raw UTF-8 SNI",
            Hello::named("t\u{e4}ls.test").record(),
            deny("malformed_request"),
            &ACCESS_DENIED,
        ),
        (
            "empty host_name",
            Hello {
                names: vec![(HOST_NAME, b"")],
                ..Hello::default()
            }
            .record(),
            deny("malformed_request"),
            &ACCESS_DENIED,
        ),
        (
            "SNI longer than 253",
            Hello::named(&long_name).record(),
            deny("malformed_request"),
            &ACCESS_DENIED,
        ),
        (
            "SNI label longer than 63",
            Hello::named(&long_label).record(),
            deny("malformed_request"),
            &ACCESS_DENIED,
        ),
        (
            "two trailing dots",
            Hello::named("tls.test..").record(),
            deny("malformed_request"),
            &ACCESS_DENIED,
        ),
        (
            "wildcard SNI",
            Hello::named("*.test").record(),
            deny("malformed_request"),
            &ACCESS_DENIED,
        ),
        (
            "suffix game",
            Hello::named("tls.test.evil.test").record(),
            deny("not_allowlisted"),
            &ACCESS_DENIED,
        ),
        (
            "ECH with an allowed outer name",
            ech.record(),
            deny("encrypted_client_hello"),
            &ACCESS_DENIED,
        ),
        (
            "hello larger than max_client_hello_bytes",
            too_big.record(),
            deny("malformed_request"),
            &ACCESS_DENIED,
        ),
        (
            "record longer than 2^14",
            oversized_record,
            deny("malformed_request"),
            &ACCESS_DENIED,
        ),
        (
            "SSL 2 record version",
            sslv2_version,
            deny("malformed_request"),
            &ACCESS_DENIED,
        ),
    ];
    for (what, bytes, want, answer) in cases {
        on_sni_listener(&mut setup, what, &bytes, want, answer).await;
    }
}

/// A CONNECT to `tls.test:443` on the `connect` listener, then `bytes` in the tunnel: the alert
/// (or, when allowed, the bytes replayed upstream), log line, counter, no leak.
async fn in_tunnel(setup: &mut Setup, what: &str, bytes: &[u8], want: Outcome<'_>) {
    let probe = Probe::before(&setup.gw, want);
    let mut stream = connect_from(APP1, setup.gw.addr("connect")).await;
    stream
        .write_all(b"CONNECT tls.test:443 HTTP/1.1\r\nHost: tls.test:443\r\n\r\n")
        .await
        .expect("write");
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{what}: {head}");
    stream.write_all(bytes).await.expect("write hello");
    if want.decision == "allow" {
        stream.shutdown().await.expect("half-close");
        let _ = read_to_close(&mut stream).await;
        assert_eq!(
            received(&mut setup.upstream).await,
            bytes,
            "{what}: replayed intact"
        );
    } else {
        let back = read_to_close(&mut stream).await;
        let alert = if want.reason == "missing_sni" {
            UNRECOGNIZED_NAME
        } else {
            ACCESS_DENIED
        };
        assert_eq!(back, alert, "{what}: the alert");
        // The upstream was dialled for the tunnel but got none of the tenant's bytes.
        assert_eq!(
            received(&mut setup.upstream).await,
            b"",
            "{what}: nothing upstream"
        );
    }
    drop(stream);
    probe.confirm(&setup.gw, what);
}

#[tokio::test(flavor = "multi_thread")]
async fn tunnel_hellos_must_name_the_connect_host() {
    let mut setup = setup().await;
    let deny = |reason| Outcome::deny("connect", "app1", reason);
    let several = Hello {
        names: vec![(HOST_NAME, b"tls.test"), (HOST_NAME, b"evil.test")],
        ..Hello::default()
    };
    let ech = Hello {
        ech: true,
        ..Hello::named("tls.test")
    };
    let mut second = Hello::named("tls.test").record();
    second.extend_from_slice(&Hello::named("evil.test").record());
    let cases: Vec<(&str, Vec<u8>, Outcome<'_>)> = vec![
        (
            "SNI naming another host than CONNECT",
            Hello::named("evil.test").record(),
            deny("sni_mismatch"),
        ),
        (
            "several names in the tunnel",
            several.record(),
            deny("malformed_request"),
        ),
        (
            "ECH in the tunnel",
            ech.record(),
            deny("encrypted_client_hello"),
        ),
        (
            "IP literal SNI in the tunnel",
            Hello::named("127.0.0.1").record(),
            deny("malformed_request"),
        ),
        (
            "no SNI in the tunnel",
            Hello::default().record(),
            deny("missing_sni"),
        ),
        (
            "not TLS at all in a TLS tunnel",
            b"GET / HTTP/1.1\r\nHost: tls.test\r\n\r\n".to_vec(),
            deny("malformed_request"),
        ),
        (
            "hello split into 1-byte records naming another host",
            Hello::named("evil.test").records(1),
            deny("sni_mismatch"),
        ),
        // The first hello decides the tunnel; a second one travels as opaque bytes to the same
        // upstream the CONNECT named, so it cannot redirect the tunnel.
        (
            "a second ClientHello after an allowed one",
            second,
            Outcome::allow("connect", "app1"),
        ),
    ];
    for (what, bytes, want) in cases {
        in_tunnel(&mut setup, what, &bytes, want).await;
    }
    let line = setup
        .gw
        .wait_access_log(|v| v["decision"] == "allow" && v["listener"] == "connect");
    assert_eq!(line["sni"], "tls.test", "{line}");
}

/// A CONNECT to a TLS port must also see its hello within the sniff timeout, and the check
/// applies to the plaintext-listener config too (`gateway_yaml`).
#[tokio::test(flavor = "multi_thread")]
async fn a_silent_tls_tunnel_is_cut_at_the_sniff_timeout() {
    let (addr, _upstream) = recording_server().await;
    let config = ConfigDir::new(&gateway_yaml("timeouts: {sniff: 1s}\n"));
    config.entry(
        "app1/tls.yaml",
        &static_entry("tls", "tls.test", 443, "TLS", addr),
    );
    let gw = Gateway::start(&config);
    let probe = Probe::before(&gw, Outcome::deny("connect", "app1", "sniff_timeout"));
    let mut stream = connect_from(APP1, gw.addr("connect")).await;
    stream
        .write_all(b"CONNECT tls.test:443 HTTP/1.1\r\n\r\n")
        .await
        .expect("write");
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let started = std::time::Instant::now();
    let back = read_to_close(&mut stream).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(back, ACCESS_DENIED);
    drop(stream);
    probe.confirm(&gw, "a silent TLS tunnel");
}
