//! What the `config_load` fuzz target runs on each input, shared with the corpus replay in
//! `tests/fuzz_corpus.rs`. It is the loader's own per-file path without the file system
//! (`read_entries_text`: the shape check, YAML documents, `kind: List` items, typed
//! deserialisation, istiod's validation rules, namespaces), run twice: on the input as a file, and
//! on the input as the second document after one that always earns a finding, so the position
//! locator indexes arbitrary text on every run (a finding in the first document once made a
//! deeply nested second document overflow the stack).

use std::path::Path;

use egress_gateway::config::load::read_entries_text;
use egress_gateway::config::locate::Locator;

/// A first document every run reports (a skipped kind), so the locator always runs.
const FINDING_FIRST: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fuzz}\n---\n";

/// Treats `data` as the UTF-8 text of one ServiceEntry file.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("serviceentries/fuzz/input.yaml");
    let _ = read_entries_text(path, text, Some("fuzz"));
    let second = format!("{FINDING_FIRST}{text}");
    let (_, findings) = read_entries_text(path, &second, None);
    assert!(
        !findings.is_empty(),
        "the first document always earns a finding"
    );
    let locator = Locator::new(text);
    let _ = locator.find(0, "spec.hosts[0]");
}
