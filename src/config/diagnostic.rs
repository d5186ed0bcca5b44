//! A config problem pinned to `FILE:LINE:COL`, the one shape every config error and warning takes.

use std::fmt;
use std::path::{Path, PathBuf};

use super::locate::Position;

/// Whether a problem stops the config from loading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The config is rejected; a running gateway keeps its previous snapshot.
    Error,
    /// Accepted, but worth a look (ignored fields, kinds skipped, Istio warnings).
    Warning,
}

/// One problem, printed as `FILE:LINE:COL: message` so editors and CI annotate the exact spot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// File the problem is in (as found under the config directory).
    pub file: PathBuf,
    /// Where in the file; `None` when the problem is the file as a whole (unreadable, missing).
    pub position: Option<Position>,
    /// What is wrong, which rule, and how to fix it.
    pub message: String,
}

impl Diagnostic {
    /// An error at `position` in `file`.
    pub fn error(file: &Path, position: Option<Position>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            file: file.to_path_buf(),
            position,
            message: message.into(),
        }
    }

    /// A warning at `position` in `file`.
    pub fn warning(file: &Path, position: Option<Position>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(file, position, message)
        }
    }

    /// Whether this diagnostic rejects the config.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Position { line, col } = self.position.unwrap_or(Position { line: 1, col: 1 });
        write!(f, "{}:{line}:{col}: ", self.file.display())?;
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        f.write_str(&self.message)
    }
}
