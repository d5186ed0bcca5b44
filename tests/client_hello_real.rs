//! ClientHellos from real TLS clients, read through the public sniffing API.
//!
//! Owns the fixtures that keep the parser honest: each test starts a real client (tokio-rustls,
//! `openssl s_client`, `curl`) against a listener on 127.0.0.1:0, captures its first flight with
//! `read_client_hello`, then closes. It must not take hand-built bytes as ground truth, use any
//! address outside 127.0.0.0/8, sleep for timing (the accept synchronises), or skip when a client
//! binary is missing (that fails loudly). `CLIENT_HELLO_DUMP=<dir>` writes every capture to
//! `<dir>/<name>.bin`; that is how `fuzz/corpus/client_hello` was seeded.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use egress_gateway::sniff::client_hello::{parse, Sniffed};
use egress_gateway::sniff::hello_reader::{read_client_hello, HelloSummary};
use rustls::crypto::{ring, ActiveKeyExchange, CryptoProvider, SharedSecret, SupportedKxGroup};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, NamedGroup, ProtocolVersion, RootCertStore};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

const MAX_HELLO: usize = 16384;
/// Bound on every client: connecting, sending its hello, and exiting after we hang up.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// One captured first flight: what the reader summarised and the exact bytes of the hello.
struct Capture {
    summary: HelloSummary,
    bytes: Vec<u8>,
}

async fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0")
}

/// Accepts one connection, reads its ClientHello, checks the pure parser agrees on the bytes
/// (also for every prefix), then hangs up so the client gives up.
async fn capture(listener: &TcpListener, name: &str) -> Capture {
    let (mut stream, _) = timeout(CLIENT_TIMEOUT, listener.accept())
        .await
        .unwrap_or_else(|_| panic!("{name}: client did not connect within {CLIENT_TIMEOUT:?}"))
        .expect("accept");
    let mut buf = BytesMut::new();
    let summary = timeout(
        CLIENT_TIMEOUT,
        read_client_hello(&mut stream, &mut buf, MAX_HELLO),
    )
    .await
    .unwrap_or_else(|_| panic!("{name}: no complete ClientHello within {CLIENT_TIMEOUT:?}"))
    .unwrap_or_else(|e| panic!("{name}: ClientHello refused: {e}"));
    drop(stream);
    let bytes = buf[..summary.record_bytes].to_vec();
    match parse(&bytes, MAX_HELLO) {
        Sniffed::Hello(hello) => assert_eq!(HelloSummary::from(&hello), summary, "{name}"),
        other => panic!("{name}: parse disagrees with reader: {other:?}"),
    }
    for n in 0..bytes.len() {
        assert_eq!(
            parse(&bytes[..n], MAX_HELLO),
            Sniffed::NeedMore,
            "{name}: prefix {n}"
        );
    }
    if let Some(dir) = std::env::var_os("CLIENT_HELLO_DUMP") {
        let path = std::path::Path::new(&dir).join(format!("{name}.bin"));
        std::fs::write(&path, &bytes).unwrap_or_else(|e| panic!("writing {path:?}: {e}"));
    }
    Capture { summary, bytes }
}

/// Runs a tokio-rustls handshake against a fresh listener and captures its hello.
async fn rustls_capture(config: ClientConfig, sni: &str, name: &str) -> Capture {
    let listener = listener().await;
    let addr = listener.local_addr().unwrap();
    let server_name = ServerName::try_from(sni.to_owned()).expect("valid SNI");
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let client = tokio::spawn(async move {
        let tcp = TcpStream::connect(addr)
            .await
            .expect("connect to 127.0.0.1");
        // The handshake fails when the capture hangs up; only the hello matters.
        let _ = timeout(CLIENT_TIMEOUT, connector.connect(server_name, tcp)).await;
    });
    let captured = capture(&listener, name).await;
    timeout(CLIENT_TIMEOUT, client)
        .await
        .expect("rustls client exits")
        .unwrap();
    captured
}

fn rustls_config(provider: CryptoProvider, alpn: &[&[u8]]) -> ClientConfig {
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .expect("provider supports default versions")
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// Runs an external client against a fresh listener, captures its hello, then kills it.
async fn process_capture(program: &str, args: &[String], name: &str) -> Capture {
    let listener = listener().await;
    let port = listener.local_addr().unwrap().port();
    let args: Vec<String> = args
        .iter()
        .map(|a| a.replace("{port}", &port.to_string()))
        .collect();
    let child = Command::new(program)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("`{program}` must be installed for this test: {e}"));
    let _reaper = KillOnDrop(child);
    capture(&listener, name).await
}

/// Kills and reaps the client even when the capture panics, so no client outlives its test.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn alpn(summary: &HelloSummary) -> Vec<&str> {
    summary
        .alpn
        .iter()
        .map(|p| std::str::from_utf8(p).unwrap())
        .collect()
}

#[tokio::test]
async fn rustls_client_sni_and_alpn() {
    let config = rustls_config(ring::default_provider(), &[b"h2", b"http/1.1"]);
    let c = rustls_capture(config, "API.Example.test", "rustls_sni_alpn_h2_http11").await;
    // rustls sends the name as given; normalising is the caller's job.
    assert_eq!(c.summary.server_name.as_deref(), Some("API.Example.test"));
    assert_eq!(c.summary.server_name_count, 1);
    assert_eq!(alpn(&c.summary), ["h2", "http/1.1"]);
    assert!(!c.summary.ech);
}

#[tokio::test]
async fn openssl_s_client_sni_and_alpn() {
    let args = strings(&[
        "s_client",
        "-connect",
        "127.0.0.1:{port}",
        "-servername",
        "www.example.test",
        "-alpn",
        "h2",
    ]);
    let c = process_capture("openssl", &args, "openssl_s_client_sni_alpn_h2").await;
    assert_eq!(c.summary.server_name.as_deref(), Some("www.example.test"));
    assert_eq!(alpn(&c.summary), ["h2"]);
}

#[tokio::test]
async fn openssl_s_client_without_sni() {
    let args = strings(&["s_client", "-connect", "127.0.0.1:{port}", "-noservername"]);
    let c = process_capture("openssl", &args, "openssl_s_client_noservername").await;
    assert_eq!(c.summary.server_name, None);
    assert_eq!(c.summary.server_name_count, 0);
}

#[tokio::test]
async fn curl_sni_and_alpn() {
    let args = strings(&[
        "-sk",
        "--max-time",
        "5",
        "https://curl.example.test:{port}/",
        "--resolve",
        "curl.example.test:{port}:127.0.0.1",
    ]);
    let c = process_capture("curl", &args, "curl_sni_alpn").await;
    assert_eq!(c.summary.server_name.as_deref(), Some("curl.example.test"));
    let offered = alpn(&c.summary);
    assert!(
        offered.contains(&"h2") || offered.contains(&"http/1.1"),
        "curl offered {offered:?}"
    );
}

/// Stands in for X25519MLKEM768 when the ring provider lacks it: rustls itself builds and frames
/// the hello, carrying a key share of the real hybrid size (1184 + 32 bytes). Never completes.
#[derive(Debug)]
struct PostQuantumSizedShare;

impl SupportedKxGroup for PostQuantumSizedShare {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, rustls::Error> {
        Ok(Box::new(PendingShare(vec![0x5a; 1184 + 32])))
    }
    fn name(&self) -> NamedGroup {
        NamedGroup::X25519MLKEM768
    }
    fn usable_for_version(&self, version: ProtocolVersion) -> bool {
        version == ProtocolVersion::TLSv1_3
    }
}

struct PendingShare(Vec<u8>);

impl ActiveKeyExchange for PendingShare {
    fn complete(self: Box<Self>, _peer: &[u8]) -> Result<SharedSecret, rustls::Error> {
        Err(rustls::Error::General("capture-only key share".into()))
    }
    fn pub_key(&self) -> &[u8] {
        &self.0
    }
    fn group(&self) -> NamedGroup {
        NamedGroup::X25519MLKEM768
    }
    /// Like the real hybrid, rustls then also offers a separate X25519 share (as Chrome does).
    fn hybrid_component(&self) -> Option<(NamedGroup, &[u8])> {
        Some((NamedGroup::X25519, &self.0[1184..]))
    }
}

/// A rustls provider whose first key share is post-quantum sized: the real group if ring has it,
/// else the capture-only stand-in.
fn post_quantum_provider() -> CryptoProvider {
    let mut provider = ring::default_provider();
    let native = provider
        .kx_groups
        .iter()
        .any(|g| g.name() == NamedGroup::X25519MLKEM768);
    if !native {
        provider.kx_groups.insert(0, &PostQuantumSizedShare);
    }
    provider
}

/// Real protocol names plus filler: brings a PQ-sized hello to Chrome's ~1.9 KB.
fn many_alpn() -> Vec<Vec<u8>> {
    let real = [
        "h2",
        "http/1.1",
        "h3",
        "spdy/3.1",
        "http/1.0",
        "grpc-exp",
        "acme-tls/1",
    ];
    let filler = (0..32).map(|i| format!("x-filler-{i:02}"));
    real.iter()
        .map(|p| p.to_string())
        .chain(filler)
        .map(String::into_bytes)
        .collect()
}

#[tokio::test]
async fn rustls_post_quantum_sized_hello() {
    let mut config = rustls_config(post_quantum_provider(), &[]);
    config.alpn_protocols = many_alpn();
    let c = rustls_capture(config, "pq.example.test", "rustls_pq_keyshare_1900b").await;
    assert!(c.bytes.len() > 1800, "hello is {} bytes", c.bytes.len());
    assert_eq!(c.summary.server_name.as_deref(), Some("pq.example.test"));
    assert_eq!(c.summary.alpn.len(), many_alpn().len());
}

#[tokio::test]
async fn rustls_hello_fragmented_into_several_records() {
    let mut config = rustls_config(post_quantum_provider(), &[]);
    config.alpn_protocols = many_alpn();
    config.max_fragment_size = Some(512);
    let c = rustls_capture(
        config,
        "frag.example.test",
        "rustls_pq_keyshare_fragmented_512",
    )
    .await;
    let records = count_records(&c.bytes);
    assert!(
        records >= 4,
        "expected a fragmented hello, got {records} record(s)"
    );
    assert_eq!(c.summary.server_name.as_deref(), Some("frag.example.test"));
    assert_eq!(c.summary.alpn.len(), many_alpn().len());
}

fn count_records(mut bytes: &[u8]) -> usize {
    let mut n = 0;
    while bytes.len() >= 5 {
        let len = usize::from(u16::from_be_bytes([bytes[3], bytes[4]]));
        bytes = &bytes[(5 + len).min(bytes.len())..];
        n += 1;
    }
    n
}

/// The fuzz target's invariants, checked on stable Rust: mutations of every corpus seed (the
/// captures above plus garbage) never panic, a hello is found only inside the input, and every
/// answer is final — more bytes never turn a refusal or a hello into something else.
#[test]
fn mutated_corpus_hellos_keep_the_parser_invariants() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/client_hello");
    let seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {dir:?}: {e}"))
        .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
        .collect();
    assert!(seeds.len() >= 6, "corpus has {} seeds", seeds.len());
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move |bound: usize| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % bound.max(1) as u64) as usize
    };
    let mut found = 0;
    for round in 0..20_000 {
        let mut buf = seeds[round % seeds.len()].clone();
        for _ in 0..=next(3) {
            let at = next(buf.len());
            match next(4) {
                0 if !buf.is_empty() => buf[at] = next(256) as u8,
                1 => buf.truncate(at),
                2 => buf.insert(at, next(256) as u8),
                _ if at + 2 <= buf.len() => buf[at..at + 2].copy_from_slice(&[0, next(256) as u8]),
                _ => {}
            }
        }
        let answer = parse(&buf, MAX_HELLO);
        let mut longer = buf.clone();
        longer.extend([22, 3, 3, 0, 1, 0]);
        match &answer {
            Sniffed::Hello(hello) => {
                found += 1;
                assert!(hello.record_bytes <= buf.len());
                assert_eq!(parse(&buf[..hello.record_bytes], MAX_HELLO), answer);
                assert_eq!(parse(&longer, MAX_HELLO), answer);
                assert_eq!(hello.alpn.iter().count(), hello.alpn.len());
            }
            Sniffed::Refused(_) => assert_eq!(parse(&longer, MAX_HELLO), answer, "{buf:02x?}"),
            Sniffed::NeedMore => {
                assert_eq!(parse(&buf[..buf.len() / 2], MAX_HELLO), Sniffed::NeedMore)
            }
        }
    }
    assert!(
        found > 1000,
        "only {found} mutants still parsed; mutations too destructive"
    );
}
