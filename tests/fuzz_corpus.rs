//! Replays every seed under `fuzz/corpus/<target>/` through the function its cargo-fuzz target
//! calls, so a crashing input committed to a corpus fails ordinary `cargo test` (CI has no
//! nightly). `connect_head` and `config_load` share their harness source with the fuzz targets;
//! `client_hello` calls `sniff::client_hello::parse`, `access_log_line` calls
//! `observed::line::fuzz_one`. Unknown corpus folders fail the test, so a
//! new target cannot be added without being replayed here.

use std::fs;
use std::path::{Path, PathBuf};

#[path = "../fuzz/harness/connect_head.rs"]
mod connect_head;

#[path = "../fuzz/harness/config_load.rs"]
mod config_load;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus");

/// The default `limits.max_client_hello_bytes`, as the client_hello target uses.
const MAX_HELLO: usize = 16384;

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(target: &str, data: &[u8]) {
    match target {
        "connect_head" => connect_head::run(data),
        "config_load" => config_load::run(data),
        "access_log_line" => egress_gateway::observed::line::fuzz_one(data),
        "client_hello" => {
            let _ = egress_gateway::sniff::client_hello::parse(data, MAX_HELLO);
        }
        other => panic!("fuzz/corpus/{other}: no such fuzz target; add it to tests/fuzz_corpus.rs"),
    }
}

#[test]
fn every_corpus_file_replays_without_panicking() {
    let mut targets: Vec<PathBuf> = fs::read_dir(CORPUS)
        .expect("fuzz/corpus")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_dir())
        .collect();
    targets.sort();
    let names: Vec<String> = targets
        .iter()
        .map(|t| t.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    for expected in ["client_hello", "config_load", "connect_head"] {
        assert!(
            names.iter().any(|n| n == expected),
            "fuzz/corpus/{expected} is missing"
        );
    }
    let mut replayed = 0;
    for (dir, target) in targets.iter().zip(&names) {
        let files = files_in(dir);
        assert!(!files.is_empty(), "fuzz/corpus/{target} has no seeds");
        for file in files {
            let data = fs::read(&file).expect("read seed");
            let outcome = std::panic::catch_unwind(|| replay(target, &data));
            assert!(outcome.is_ok(), "{} panicked", file.display());
            replayed += 1;
        }
    }
    assert!(replayed >= 30, "only {replayed} seeds");
}

#[test]
fn seeds_cover_what_they_claim() {
    use egress_gateway::sniff::connect_head::{parse, HeadError, ProxyRequest};
    let seed =
        |name: &str| fs::read(Path::new(CORPUS).join("connect_head").join(name)).expect(name);
    assert!(matches!(
        parse(&seed("connect_valid.txt"), connect_head::MAX_HEAD),
        Ok(Some(ProxyRequest::Connect { .. }))
    ));
    assert!(matches!(
        parse(&seed("connect_ipv6.txt"), connect_head::MAX_HEAD),
        Ok(Some(ProxyRequest::Connect { .. }))
    ));
    assert_eq!(
        parse(&seed("connect_missing_port.txt"), connect_head::MAX_HEAD),
        Err(HeadError::MissingPort)
    );
    assert_eq!(
        parse(&seed("connect_huge_port.txt"), connect_head::MAX_HEAD),
        Err(HeadError::BadPort)
    );
    assert!(matches!(
        parse(&seed("garbage.txt"), connect_head::MAX_HEAD),
        Err(HeadError::Malformed(_))
    ));
    assert_eq!(
        parse(&seed("too_many_headers.txt"), connect_head::MAX_HEAD),
        Err(HeadError::TooLarge)
    );
}
