//! The reference documentation in `docs/` against the code, in both directions: every config key
//! the serde types accept, every metric, access-log field, deny reason, CLI subcommand and flag
//! must be described, and everything described must exist. The key, metric and field sets are
//! read from the code (serde's own field lists, the metrics catalog, a running gateway), so a new
//! one fails this test until it is documented, without anyone editing the test.
//!
//! Around that: the alerts and dashboard panels are named under the metrics they read, the YAML
//! examples parse (and the ServiceEntry ones validate), links between pages resolve, and product
//! files hold no references to anything outside the repository.

#[path = "../common/mod.rs"]
mod common;

mod catalog;
mod cli;
mod config_keys;
mod links;
mod markdown;
mod monitoring;
mod references;
mod serde_probe;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The repository root.
fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The text of `docs/<name>`.
fn doc(name: &str) -> String {
    let path = repo().join("docs").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Fails, naming both directions, unless the code's set and the doc's set are equal.
fn assert_same(what: &str, doc: &Path, code: &BTreeSet<String>, documented: &BTreeSet<String>) {
    let undocumented: Vec<_> = code.difference(documented).collect();
    let unknown: Vec<_> = documented.difference(code).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "{what}: code and {} disagree\n  in the code, not documented: {undocumented:?}\n  \
         documented, not in the code: {unknown:?}",
        doc.display()
    );
}
