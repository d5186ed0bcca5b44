//! Tests against the corpus of real Istio manifests (tests/corpus/serviceentries, copied unchanged; see tests/corpus/README.md) plus
//! focused cases for rules the corpus does not reach.
//!
//! This file holds the shared helpers: checking one document into an [`Outcome`], and walking
//! corpus files, documents and finding paths. The corpus walks are in `corpus`, the focused rule
//! cases in `rules`.

mod corpus;
mod rules;

use std::fs;
use std::path::{Path, PathBuf};

use super::*;

/// Either the serde error (with its path) or the findings of one document.
enum Outcome {
    ParseError(String),
    Checked(Vec<Finding>),
}

impl Outcome {
    fn errors(&self) -> Vec<String> {
        match self {
            Self::ParseError(e) => vec![e.clone()],
            Self::Checked(findings) => findings
                .iter()
                .filter(|f| f.is_error())
                .map(|f| f.to_string())
                .collect(),
        }
    }

    fn findings(&self) -> &[Finding] {
        match self {
            Self::ParseError(_) => &[],
            Self::Checked(findings) => findings,
        }
    }
}

fn check_value(value: serde_yaml::Value) -> Outcome {
    match serde_path_to_error::deserialize::<_, ServiceEntry>(value) {
        Ok(se) => Outcome::Checked(validate(&se)),
        Err(err) => Outcome::ParseError(format!("{}: {}", err.path(), err.inner())),
    }
}

fn check_str(yaml: &str) -> Outcome {
    check_value(serde_yaml::from_str(yaml).expect("test YAML parses"))
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// Splits a multi-document file on lines that are exactly `---`, dropping comment-only parts;
/// each document is its parsed value, or its text and the YAML syntax error.
fn documents(text: &str) -> Vec<Result<serde_yaml::Value, (String, serde_yaml::Error)>> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line == "---" {
            docs.push(String::new());
        } else {
            let last = docs.last_mut().unwrap();
            last.push_str(line);
            last.push('\n');
        }
    }
    docs.into_iter()
        .map(|doc| serde_yaml::from_str::<serde_yaml::Value>(&doc).map_err(|e| (doc, e)))
        .filter(|value| !value.as_ref().is_ok_and(serde_yaml::Value::is_null))
        .collect()
}

/// Follows a finding path (`a.b[1].c`) through a YAML value, as the loader's locator does.
fn resolves(root: &serde_yaml::Value, path: &str) -> bool {
    let mut node = root;
    for segment in path.split('.') {
        let (key, indexes) = match segment.find('[') {
            Some(at) => (&segment[..at], &segment[at..]),
            None => (segment, ""),
        };
        match node.get(key) {
            Some(next) => node = next,
            None => return false,
        }
        for index in indexes.split(']').filter(|s| !s.is_empty()) {
            let i: usize = index.trim_start_matches('[').parse().unwrap();
            match node.get(i) {
                Some(next) => node = next,
                None => return false,
            }
        }
    }
    true
}

/// The parent of a path: where a missing key would be inserted.
fn parent(path: &str) -> &str {
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    &path[..cut]
}
