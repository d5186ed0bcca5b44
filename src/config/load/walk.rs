//! Finding the ServiceEntry files below the tree's root: `*.yaml` / `*.yml` at any depth,
//! following the kubelet's per-file symlinks but refusing links that lead out of the tree.
//!
//! Lists folders and reports what it cannot read; must not read or parse the files themselves.

use std::fs;
use std::path::{Path, PathBuf};

use super::Sink;
use crate::config::diagnostic::Diagnostic;

/// Deepest folder nesting followed below `serviceentries/` (guards against symlink loops).
const MAX_DEPTH: usize = 16;

/// The walk for ServiceEntry files below the (canonical) `root` of the tree.
pub(super) struct Walk<'a> {
    /// The canonical root of the tree.
    pub(super) root: &'a Path,
    /// Files found.
    pub(super) out: &'a mut Vec<PathBuf>,
    /// Where problems go.
    pub(super) sink: &'a mut Sink,
}

impl Walk<'_> {
    /// Finds `*.yaml` / `*.yml` below `dir`, following symlinks that stay inside the tree but
    /// skipping `..`-prefixed entries (the kubelet's `..data` and timestamped folders, reached
    /// through the per-file symlinks). A symlink leading out of the tree is an error: whoever can
    /// write a link into the allowlist must not make the gateway read policy from elsewhere.
    pub(super) fn collect(&mut self, dir: &Path, depth: usize) {
        if depth > MAX_DEPTH {
            self.sink.push(Diagnostic::error(
                dir,
                None,
                format!("folders nested deeper than {MAX_DEPTH} levels (a symlink loop?)"),
            ));
            return;
        }
        let listing = match fs::read_dir(dir) {
            Ok(listing) => listing,
            Err(err) => {
                self.sink
                    .push(Diagnostic::error(dir, None, format!("cannot list: {err}")));
                return;
            }
        };
        for item in listing.flatten() {
            let path = item.path();
            let name = item.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("..") || name.starts_with('.') {
                continue;
            }
            if item.file_type().is_ok_and(|t| t.is_symlink()) && !self.inside(&path) {
                continue;
            }
            match fs::metadata(&path) {
                Ok(meta) if meta.is_dir() => self.collect(&path, depth + 1),
                Ok(meta)
                    if meta.is_file() && (name.ends_with(".yaml") || name.ends_with(".yml")) =>
                {
                    self.out.push(path)
                }
                Ok(_) => {}
                Err(err) => self.sink.push(Diagnostic::error(
                    &path,
                    None,
                    format!("cannot read: {err}"),
                )),
            }
        }
    }

    /// Whether the symlink `link` resolves inside the tree; reports it when not.
    fn inside(&mut self, link: &Path) -> bool {
        match link.canonicalize() {
            Ok(target) if target.starts_with(self.root) => true,
            Ok(target) => {
                self.sink.push(Diagnostic::error(
                    link,
                    None,
                    format!(
                        "symlink leads out of the serviceentries tree (to {}): refused; only files inside {} are read",
                        target.display(),
                        self.root.display()
                    ),
                ));
                false
            }
            // A dangling link or a loop: reading it reports the error.
            Err(_) => true,
        }
    }
}
