//! Fuzz target for the ClientHello parser: arbitrary bytes must never panic, hang or allocate
//! without bound, and every answer must be consistent with the input it came from.
//!
//! Owns only the invariants below; it must not grow its own parsing logic. Seeds live in
//! `fuzz/corpus/client_hello/` (real client captures plus garbage); run with
//! `cargo +nightly fuzz run client_hello`.
#![no_main]

use egress_gateway::sniff::client_hello::{parse, Sniffed};
use libfuzzer_sys::fuzz_target;

/// The gateway's default `limits.max_client_hello_bytes`.
const MAX_HELLO: usize = 16384;

fuzz_target!(|data: &[u8]| {
    let answer = parse(data, MAX_HELLO);
    match &answer {
        Sniffed::Hello(hello) => {
            // The hello lies inside the input, and the bytes after it do not matter.
            assert!(hello.record_bytes <= data.len() && hello.record_bytes <= MAX_HELLO);
            assert_eq!(parse(&data[..hello.record_bytes], MAX_HELLO), answer);
            assert_eq!(hello.alpn.iter().count(), hello.alpn.len());
            assert!(hello.server_name.is_none() || hello.server_name_count >= 1);
        }
        Sniffed::NeedMore => {
            // Needing more is monotonic: no shorter prefix could have been decided.
            assert_eq!(parse(&data[..data.len() / 2], MAX_HELLO), Sniffed::NeedMore);
        }
        Sniffed::Refused(_) => {}
    }
});
