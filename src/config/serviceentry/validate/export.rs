//! `spec.exportTo`: `.`, `*`, `~` or namespace names; no duplicates; `*` and `~` stand alone.
//!
//! Owns the exportTo rules only. Must not decide visibility across namespaces (that is policy
//! compilation).

use std::collections::HashMap;

use crate::config::serviceentry::wire::{ExportTo, ServiceEntry, ServiceEntrySpec};

use super::Findings;

/// `spec.exportTo`: `.`, `*`, `~` or namespace names; no duplicates; `*` and `~` stand alone.
pub(super) fn check_export_to(se: &ServiceEntry, spec: &ServiceEntrySpec, out: &mut Findings) {
    let own = se.metadata.namespace.as_deref();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, value) in spec.export_to.iter().enumerate() {
        let path = format!("spec.exportTo[{i}]");
        let key = if value == "." {
            own.unwrap_or(".")
        } else {
            value.as_str()
        };
        if let Some(first) = seen.get(key) {
            let message = if key != value || spec.export_to[*first] != *value {
                format!(
                    "duplicate entries in exportTo: `.` and the entry's own namespace {key:?} \
                     (spec.exportTo[{first}]) mean the same; keep one"
                )
            } else {
                format!(
                    "duplicate entries in exportTo: {value:?} is already spec.exportTo[{first}]"
                )
            };
            out.error(path, message);
            continue;
        }
        match ExportTo::parse(value) {
            Ok(_) => {
                seen.insert(key, i);
            }
            Err(message) => out.error(path, message),
        }
    }
    if spec.export_to.len() > 1 {
        if seen.contains_key("*") {
            out.error(
                "spec.exportTo",
                "`*` already exports to every namespace: it cannot be combined with other \
                 exportTo values",
            );
        }
        if seen.contains_key("~") {
            out.error(
                "spec.exportTo",
                "`~` exports to no namespace: it cannot be combined with other exportTo values",
            );
        }
    }
}
