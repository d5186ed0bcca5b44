//! Cost of sniffing a ClientHello, the per-connection work on the SNI listener and in CONNECT
//! tunnels to TLS ports.
//!
//! Owns the benchmark inputs: real captures from `fuzz/corpus/client_hello` (a 517-byte curl /
//! OpenSSL hello, which pads itself to 517 bytes like browsers do, and a ~1.9 KB rustls hello with
//! a post-quantum-sized key share) and a 3-record re-framing of the 517-byte one. It must not
//! benchmark I/O; only the pure parser.

use criterion::{black_box, criterion_main, Criterion};
use egress_gateway::sniff::client_hello::{parse, Sniffed};

const MAX_HELLO: usize = 16384;
const TYPICAL: &[u8] = include_bytes!("../fuzz/corpus/client_hello/curl_sni_alpn.bin");
const POST_QUANTUM: &[u8] =
    include_bytes!("../fuzz/corpus/client_hello/rustls_pq_keyshare_1900b.bin");

/// Re-frames a single-record hello as `parts` handshake records of near-equal size.
fn split_records(hello: &[u8], parts: usize) -> Vec<u8> {
    let handshake = &hello[5..];
    let step = handshake.len().div_ceil(parts);
    let mut out = Vec::with_capacity(hello.len() + 5 * parts);
    for fragment in handshake.chunks(step) {
        out.extend_from_slice(&hello[..3]);
        out.extend_from_slice(&u16::try_from(fragment.len()).unwrap().to_be_bytes());
        out.extend_from_slice(fragment);
    }
    out
}

fn assert_hello(buf: &[u8]) {
    assert!(
        matches!(parse(buf, MAX_HELLO), Sniffed::Hello(_)),
        "bench input must parse"
    );
}

fn bench(c: &mut Criterion) {
    assert_eq!(TYPICAL.len(), 517);
    let three_records = split_records(TYPICAL, 3);
    for input in [TYPICAL, POST_QUANTUM, &three_records] {
        assert_hello(input);
    }
    let mut group = c.benchmark_group("client_hello");
    group.bench_function("typical_517b", |b| {
        b.iter(|| parse(black_box(TYPICAL), MAX_HELLO))
    });
    group.bench_function("post_quantum_1900b", |b| {
        b.iter(|| parse(black_box(POST_QUANTUM), MAX_HELLO))
    });
    group.bench_function("three_records_517b", |b| {
        b.iter(|| parse(black_box(&three_records), MAX_HELLO))
    });
    group.bench_function("need_more_half", |b| {
        b.iter(|| parse(black_box(&TYPICAL[..TYPICAL.len() / 2]), MAX_HELLO))
    });
    group.finish();
}

// The macro generates an undocumented `pub fn benches`.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::bench);
}
criterion_main!(group::benches);
