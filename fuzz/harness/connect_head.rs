//! What the `connect_head` fuzz target runs on each input, shared with the corpus replay in
//! `tests/fuzz_corpus.rs` so both exercise exactly the same code.

use egress_gateway::sniff::connect_head::{parse, ProxyRequest};

/// The gateway's default `limits.max_request_head_bytes`.
pub const MAX_HEAD: usize = 16384;

/// Parses `data` as a proxy request head and checks the answer is consistent with the input.
pub fn run(data: &[u8]) {
    let answer = parse(data, MAX_HEAD);
    if let Ok(Some(request)) = &answer {
        let head_len = match request {
            ProxyRequest::Connect { head_len, .. } | ProxyRequest::Other { head_len, .. } => {
                *head_len
            }
        };
        // The head lies inside the input and within the limit; bytes after it do not matter.
        assert!(head_len <= data.len() && head_len <= MAX_HEAD);
        assert_eq!(parse(&data[..head_len], MAX_HEAD), answer);
    }
}
