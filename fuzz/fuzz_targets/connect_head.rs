//! Fuzz target for the CONNECT request head parser: arbitrary bytes must never panic or hang,
//! and a parsed head must lie inside the input (see `harness/connect_head.rs`, which the corpus
//! replay in `tests/fuzz_corpus.rs` shares). Seeds: `fuzz/corpus/connect_head/`; run with
//! `cargo +nightly fuzz run connect_head`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../harness/connect_head.rs"]
mod harness;

fuzz_target!(|data: &[u8]| harness::run(data));
