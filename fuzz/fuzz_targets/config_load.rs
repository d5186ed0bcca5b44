//! Fuzz target for ServiceEntry config loading: arbitrary text goes through the loader's own
//! per-file path (shape check → YAML documents → typed deserialisation → `validate` →
//! namespaces, and the `Locator` behind a first document that always earns a finding) and must
//! never panic, overflow the stack or hang (see `harness/config_load.rs`, which the corpus
//! replay in `tests/fuzz_corpus.rs` shares). Seeds: `fuzz/corpus/config_load/`; run with
//! `cargo +nightly fuzz run config_load`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../harness/config_load.rs"]
mod harness;

fuzz_target!(|data: &[u8]| harness::run(data));
