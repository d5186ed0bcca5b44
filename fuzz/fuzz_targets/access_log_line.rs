//! Fuzz target for the access-log line parser that `plan --access-log` and `suggest` read logs
//! with: arbitrary bytes (a log is tenant-influenced text) must never panic or hang, and a
//! parsed line must keep a timestamp that prints and parses back. The invariants live in
//! `observed::line::fuzz_one`, which a unit test and `tests/fuzz_corpus.rs` call too. Seeds:
//! `fuzz/corpus/access_log_line/`; run with `cargo +nightly fuzz run access_log_line`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| egress_gateway::observed::line::fuzz_one(data));
