//! Product files must not point outside the repository: no paths into the workspace the project
//! was built in, no sibling folders, no section numbers of a contract the repository does not
//! hold. The patterns are assembled from parts so this file does not match itself.

use std::path::{Path, PathBuf};

use super::repo;

/// What must not appear.
fn patterns() -> [String; 3] {
    [
        ["..", "/shared"].concat(),
        ["/wo", "rk/"].concat(),
        ["SPEC ", "§"].concat(),
    ]
}

/// Every text file under `paths` (files or folders, relative to the repository).
fn files(paths: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo: Vec<PathBuf> = paths.iter().map(|p| repo().join(p)).collect();
    while let Some(path) = todo.pop() {
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            for entry in std::fs::read_dir(&path).expect("read dir") {
                todo.push(entry.expect("dir entry").path());
            }
        } else if path.is_file() {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// `file:line: text` for every line of `files` that holds a pattern, unless `allowed` says so.
fn offending(files: &[PathBuf], allowed: impl Fn(&Path, &str) -> bool) -> Vec<String> {
    let patterns = patterns();
    let mut found = Vec::new();
    for file in files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for (i, line) in text.lines().enumerate() {
            if patterns.iter().any(|p| line.contains(p.as_str())) && !allowed(file, line) {
                let relative = file.strip_prefix(repo()).unwrap_or(file);
                found.push(format!("{}:{}: {}", relative.display(), i + 1, line.trim()));
            }
        }
    }
    found
}

#[test]
fn readme_docs_config_and_benches_refer_only_to_the_repository() {
    let found = offending(
        &files(&["README.md", "docs", "config", "benches"]),
        |_, _| false,
    );
    assert!(
        found.is_empty(),
        "outside references:\n{}",
        found.join("\n")
    );
}

#[test]
fn sources_tests_deploy_and_ci_refer_only_to_the_repository() {
    let own = repo().join("tests/docs");
    // Tests may compare the vendored corpus with an outside copy when one is present.
    let outside_corpus = ["..", "/shared/corpus"].concat();
    let found = offending(
        &files(&["src", "tests", "deploy", ".ci", "Dockerfile", "fuzz"]),
        |file, line| file.starts_with(&own) || line.contains(outside_corpus.as_str()),
    );
    assert!(
        found.is_empty(),
        "outside references:\n{}",
        found.join("\n")
    );
}
