//! Istio `ServiceEntry` manifests as written: the serde mirror of the YAML (`wire`) and istiod's
//! validation rules (`validate`), so a manifest Istio rejects is rejected here too.
//!
//! This module owns the wire types and the rules only. It must not compile policy (hosts into
//! lookup tables, namespaces into tenants), read or locate files, or log: the loader parses each
//! document with `serde_path_to_error`, calls [`validate`], and maps every [`Finding::path`] to a
//! `FILE:LINE:COL` itself.

pub mod annotations;
mod validate;
mod wire;

#[cfg(test)]
mod tests;

pub use annotations::{EntryAnnotations, Expiry};
pub use validate::validate;
pub use wire::{
    ExportTo, Inspection, Location, ObjectMeta, Protocol, Resolution, ServiceEntry,
    ServiceEntrySpec, ServicePort, WorkloadEntry, WorkloadSelector,
};

use std::fmt;

/// How serious a [`Finding`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// The manifest is refused: Istio would reject it, or it would change policy in a way the
    /// author cannot have meant. `check` fails and `run` does not load the snapshot.
    Error,
    /// The manifest is accepted, but something in it is suspicious or ignored by the gateway;
    /// `check` prints it and still succeeds.
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Error => "error",
            Self::Warning => "warning",
        })
    }
}

/// One problem found in one ServiceEntry: what is wrong, where, and how bad.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Whether the manifest is refused ([`Severity::Error`]) or only flagged.
    pub severity: Severity,
    /// Where the problem is, relative to the ServiceEntry object, in `serde_path_to_error` syntax:
    /// dot-separated keys and `[i]` indexes, e.g. `spec.ports[1].number` or
    /// `spec.endpoints[0].ports.http-dne`. A key the locator could not split on dots (empty, or
    /// containing `.`, `[` or `]`) is left out and the path names the enclosing map instead.
    pub path: String,
    /// What is wrong, naming the broken rule and the bad value, with a hint where one helps.
    pub message: String,
}

impl Finding {
    /// Whether this finding refuses the manifest.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.severity, self.path, self.message)
    }
}
