//! Unit tests for the ClientHello parser: real captures from curl, OpenSSL and rustls, every
//! prefix of them, fragmented records and hand-built malformed hellos.
//!
//! Only tests live here; they must not be needed by anything outside `cfg(test)`.

use super::*;

const MAX: usize = 16384;
const CURL: &[u8] = include_bytes!("../../../fuzz/corpus/client_hello/curl_sni_alpn.bin");
const OPENSSL: &[u8] =
    include_bytes!("../../../fuzz/corpus/client_hello/openssl_s_client_sni_alpn_h2.bin");
const RUSTLS: &[u8] =
    include_bytes!("../../../fuzz/corpus/client_hello/rustls_sni_alpn_h2_http11.bin");
const RUSTLS_FRAGMENTED: &[u8] =
    include_bytes!("../../../fuzz/corpus/client_hello/rustls_pq_keyshare_fragmented_512.bin");

fn hello(buf: &[u8]) -> ClientHello<'_> {
    match parse(buf, MAX) {
        Sniffed::Hello(h) => h,
        other => panic!("expected a hello, got {other:?}"),
    }
}

fn refused(buf: &[u8], max: usize) -> HelloError {
    match parse(buf, max) {
        Sniffed::Refused(e) => e,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn u16_len(n: usize) -> [u8; 2] {
    u16::try_from(n).unwrap().to_be_bytes()
}

/// A ClientHello handshake message (header and body) carrying `extensions`.
fn handshake(extensions: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut exts = Vec::new();
    for (kind, data) in extensions {
        exts.extend(kind.to_be_bytes());
        exts.extend(u16_len(data.len()));
        exts.extend(data);
    }
    let mut body = vec![3, 3];
    body.extend([0x11; 32]);
    body.push(32);
    body.extend([0x22; 32]);
    body.extend([0, 6, 0x0a, 0x0a, 0x13, 0x01, 0x13, 0x02]); // GREASE suite first
    body.extend([1, 0]);
    body.extend(u16_len(exts.len()));
    body.extend(exts);
    let mut hs = vec![1];
    hs.extend(&u32::try_from(body.len()).unwrap().to_be_bytes()[1..]);
    hs.extend(body);
    hs
}

/// Wraps handshake bytes in handshake records, starting a new record at each of `cuts`.
fn records(hs: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut start = 0;
    for &end in cuts.iter().chain([hs.len()].iter()) {
        out.extend([22, 3, 1]);
        out.extend(u16_len(end - start));
        out.extend(&hs[start..end]);
        start = end;
    }
    out
}

fn one_record(extensions: &[(u16, Vec<u8>)]) -> Vec<u8> {
    records(&handshake(extensions), &[])
}

fn sni(names: &[(u8, &[u8])]) -> (u16, Vec<u8>) {
    let mut list = Vec::new();
    for (kind, name) in names {
        list.push(*kind);
        list.extend(u16_len(name.len()));
        list.extend(*name);
    }
    let mut data = u16_len(list.len()).to_vec();
    data.extend(list);
    (EXT_SERVER_NAME, data)
}

fn alpn(protocols: &[&[u8]]) -> (u16, Vec<u8>) {
    let mut list = Vec::new();
    for p in protocols {
        list.push(u8::try_from(p.len()).unwrap());
        list.extend(*p);
    }
    let mut data = u16_len(list.len()).to_vec();
    data.extend(list);
    (EXT_ALPN, data)
}

/// key_share (51) with one entry per `(group, key length)`.
fn key_share(shares: &[(u16, usize)]) -> (u16, Vec<u8>) {
    let mut list = Vec::new();
    for &(group, len) in shares {
        list.extend(group.to_be_bytes());
        list.extend(u16_len(len));
        list.extend(std::iter::repeat_n(0x5a, len));
    }
    let mut data = u16_len(list.len()).to_vec();
    data.extend(list);
    (51, data)
}

fn typical() -> Vec<(u16, Vec<u8>)> {
    vec![
        (0x0a0a, vec![]),
        sni(&[(0, b"api.example.test")]),
        alpn(&[b"h2", b"http/1.1"]),
        key_share(&[(0x1d, 32)]),
        (0x1a1a, vec![0]),
    ]
}

fn names(list: &AlpnList<'_>) -> Vec<Vec<u8>> {
    list.iter().map(<[u8]>::to_vec).collect()
}

#[test]
fn real_hellos_need_more_on_every_prefix_then_parse() {
    // (capture, SNI, ALPN count): all offer h2 first, then http/1.1 unless only h2.
    let cases: [(&[u8], &str, usize); 4] = [
        (CURL, "curl.example.test", 2),
        (OPENSSL, "www.example.test", 1),
        (RUSTLS, "API.Example.test", 2),
        (RUSTLS_FRAGMENTED, "frag.example.test", 39),
    ];
    for (bytes, server_name, alpn_count) in cases {
        for n in 0..bytes.len() {
            let prefix = parse(&bytes[..n], MAX);
            assert_eq!(prefix, Sniffed::NeedMore, "{server_name} prefix {n}");
        }
        let h = hello(bytes);
        assert_eq!(h.server_name.as_deref(), Some(server_name));
        assert_eq!(h.server_name_count, 1);
        assert_eq!(
            (h.alpn.iter().next(), h.alpn.len()),
            (Some(&b"h2"[..]), alpn_count)
        );
        assert_eq!(h.record_bytes, bytes.len());
        // Bytes after the hello (early data, a pipelined record) are left for replay.
        let mut more = bytes.to_vec();
        more.extend([23, 3, 3, 0, 1, 0]);
        assert_eq!(hello(&more).record_bytes, bytes.len());
    }
}

#[test]
fn single_record_hello_is_borrowed_not_copied() {
    let h = hello(CURL);
    assert!(matches!(h.server_name, Some(Cow::Borrowed(_))));
    assert!(matches!(h.alpn.raw, Cow::Borrowed(_)));
}

#[test]
fn hello_split_into_three_records_even_inside_the_sni() {
    let hs = handshake(&typical());
    let name_at = hs.windows(11).position(|w| w == b"api.example").unwrap();
    let three = records(&hs, &[2, name_at + 5]);
    for n in 0..three.len() {
        assert_eq!(parse(&three[..n], MAX), Sniffed::NeedMore, "prefix {n}");
    }
    let one = records(&hs, &[]);
    let (h1, h3) = (hello(&one), hello(&three));
    assert_eq!(h3.server_name.as_deref(), Some("api.example.test"));
    assert!(matches!(h3.server_name, Some(Cow::Owned(_))));
    assert_eq!((h3.record_bytes, &h3.alpn), (three.len(), &h1.alpn));
    assert_eq!(
        ClientHello {
            record_bytes: one.len(),
            ..h3
        },
        h1
    );
}

#[test]
fn post_quantum_sized_hello_across_two_records() {
    let mut exts = typical();
    exts[3] = key_share(&[(0x11ec, 1216), (0x1d, 32)]);
    exts.push((21, vec![0; 500])); // padding, as browsers send
    let hs = handshake(&exts);
    let two = records(&hs, &[1400]);
    assert!((1850..2000).contains(&two.len()), "{} bytes", two.len());
    let h = hello(&two);
    assert_eq!(
        (h.server_name.as_deref(), h.record_bytes),
        (Some("api.example.test"), two.len())
    );
    assert!(matches!(parse(&two, two.len()), Sniffed::Hello(_)));
    assert_eq!(refused(&two, two.len() - 1), HelloError::TooLarge);
    // Known from the first record header alone, before the body arrives.
    assert_eq!(refused(&two[..5], 1024), HelloError::TooLarge);
    // Known from the handshake header: 4 + body cannot fit even in one more record.
    assert_eq!(refused(&records(&hs, &[])[..9], 1500), HelloError::TooLarge);
}

#[test]
fn grease_extensions_and_alpn_values_are_passed_over() {
    let exts = vec![
        (0xdada, vec![]),
        alpn(&[&[0x0a, 0x0a], b"h2"]),
        (0x2a2a, vec![1, 2, 3]),
        sni(&[(0, b"grease.test")]),
    ];
    let buf = one_record(&exts);
    let h = hello(&buf);
    assert_eq!(h.server_name.as_deref(), Some("grease.test"));
    assert_eq!(names(&h.alpn), [vec![0x0a, 0x0a], b"h2".to_vec()]);
    assert!(h.alpn.contains(b"h2") && !h.alpn.contains(b"http/1.1"));
    assert_eq!(h.alpn.len(), 2);
}

#[test]
fn ech_extension_sets_the_flag() {
    let mut exts = typical();
    assert!(!hello(&one_record(&exts)).ech);
    exts.push((EXT_ECH, vec![0; 40]));
    assert!(hello(&one_record(&exts)).ech);
}

#[test]
fn several_sni_names_are_counted_and_the_first_host_name_kept() {
    let two = one_record(&[sni(&[(0, b"a.test"), (0, b"b.test")])]);
    let h = hello(&two);
    assert_eq!(
        (h.server_name.as_deref(), h.server_name_count),
        (Some("a.test"), 2)
    );
    let other_type_first = one_record(&[sni(&[(7, b"x"), (0, b"c.test")])]);
    let h = hello(&other_type_first);
    assert_eq!(
        (h.server_name.as_deref(), h.server_name_count),
        (Some("c.test"), 2)
    );
}

#[test]
fn sni_is_returned_raw_and_absent_sni_is_none() {
    let raw = one_record(&[sni(&[(0, b"API.Example.TEST.")])]);
    assert_eq!(
        hello(&raw).server_name.as_deref(),
        Some("API.Example.TEST.")
    );
    let empty = one_record(&[]);
    let h = hello(&empty);
    assert_eq!(
        (h.server_name, h.server_name_count, h.alpn.is_empty()),
        (None, 0, true)
    );
}

#[test]
fn each_refusal_has_its_own_error() {
    use HelloError::*;
    let hs = handshake(&typical());
    let edit = |at: usize, value: u8| {
        let mut buf = records(&hs, &[]);
        buf[at] = value;
        buf
    };
    let ext_len_at = 5 + hs.windows(4).position(|w| w == [0x1a, 0x1a, 0, 1]).unwrap() + 3;
    let sni_list_at = 5 + hs.windows(2).position(|w| w == [0, 0x13]).unwrap() + 1;
    let name_at = 5 + hs.windows(3).position(|w| w == b"api").unwrap();
    let alpn_h2_at = 5 + hs.windows(3).position(|w| w == b"h2").unwrap();
    let mut interrupted = records(&hs, &[100]);
    interrupted[5 + 100] = 23;
    let mut trailing = hs.clone();
    trailing.push(0);
    trailing[3] += 1;
    let duplicate_sni = handshake(&[sni(&[(0, b"a.test")]), sni(&[(0, b"b.test")])]);
    let one = records(&hs, &[]);
    let check = |name: &str, buf: &[u8], max: usize, want: HelloError| {
        assert_eq!(refused(buf, max), want, "{name}");
    };
    let m = Malformed;
    check("http", b"GET / HTTP/1.1\r\n", MAX, NotTls);
    check("connect", b"CONNECT a:443 HTTP/1.1\r\n", MAX, NotTls);
    check("one byte decides", b"G", MAX, NotTls);
    check("ssh", b"SSH-2.0-OpenSSH\r\n", MAX, NotTls);
    check("22 then not 3.x", &[22, 2], MAX, NotTls);
    check("sslv2 hello", &[0x80, 0x2e, 0x01, 0x03, 0x01], MAX, SslV2);
    check("alert", &[21, 3, 3, 0, 2, 2, 40], MAX, NotHandshake);
    check("application data", &[23, 3, 3, 0, 1, 0], MAX, NotHandshake);
    check("server hello", &edit(5, 2), MAX, NotClientHello);
    check(
        "record over 2^14",
        &[22, 3, 1, 0x40, 0x01],
        MAX * 2,
        BadLength,
    );
    check(
        "body under minimum",
        &records(&[1, 0, 0, 10], &[]),
        MAX,
        BadLength,
    );
    check(
        "extension overruns",
        &edit(ext_len_at, 0x40),
        MAX,
        BadLength,
    );
    check(
        "sni list mismatch",
        &edit(sni_list_at, 0x12),
        MAX,
        BadLength,
    );
    check("after extensions", &records(&trailing, &[]), MAX, BadLength);
    check("record type changes", &interrupted, MAX, Truncated);
    check("over the limit", &one, one.len() - 1, TooLarge);
    check("header over limit", &[22, 3, 1, 0x40, 0], 1000, TooLarge);
    check(
        "empty record",
        &[22, 3, 1, 0, 0],
        MAX,
        m("empty handshake record"),
    );
    check(
        "ssl 3.0",
        &[22, 3, 0],
        MAX,
        m("record version is not TLS 1.0-1.2"),
    );
    check(
        "sni not utf-8",
        &edit(name_at, 0xff),
        MAX,
        m("host_name is not UTF-8"),
    );
    check(
        "empty alpn",
        &edit(alpn_h2_at, 0),
        MAX,
        m("empty ALPN protocol name"),
    );
    let duplicate = records(&duplicate_sni, &[]);
    check(
        "dup sni",
        &duplicate,
        MAX,
        m("duplicate server_name extension"),
    );
    let long_session_id = edit(5 + 4 + 34, 33);
    check(
        "sid 33",
        &long_session_id,
        MAX,
        m("session id longer than 32 bytes"),
    );
    let all = [
        NotTls,
        SslV2,
        NotHandshake,
        NotClientHello,
        BadLength,
        Truncated,
        TooLarge,
        Malformed("x"),
    ];
    let names: std::collections::HashSet<_> = all.iter().map(HelloError::as_str).collect();
    assert_eq!(names.len(), all.len());
    assert_eq!(
        Malformed("no compression methods").to_string(),
        "malformed ClientHello: no compression methods"
    );
}
