//! What the `config_load` fuzz target runs on each input, shared with the corpus replay in
//! `tests/fuzz_corpus.rs`. It is the loader's per-file path without the file system: split the
//! text into YAML documents, deserialise each as a ServiceEntry with `serde_path_to_error`, run
//! istiod's validation rules, and locate every finding in the text.

use egress_gateway::config::locate::Locator;
use egress_gateway::config::serviceentry::{validate, ServiceEntry};

/// Treats `data` as the UTF-8 text of one ServiceEntry file.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let locator = Locator::new(text);
    let _ = locator.find(0, "spec.hosts[0]");
    for (doc, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value: serde_yaml::Value = match serde::Deserialize::deserialize(document) {
            Ok(value) => value,
            // The loader stops at the first syntax error of a file.
            Err(_) => return,
        };
        match serde_path_to_error::deserialize::<_, ServiceEntry>(value) {
            Ok(entry) => {
                for finding in validate(&entry) {
                    let _ = locator.find(doc, &finding.path);
                }
            }
            Err(err) => {
                let _ = locator.find(doc, &err.path().to_string());
            }
        }
    }
}
