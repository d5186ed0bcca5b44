//! Who can use an entry (`exportTo`, or the gateway's `default_export_to`), and which
//! namespaces see exactly the same entries in both trees, so `plan` need not ask their policies.

use std::collections::{BTreeSet, HashMap};

use super::exposure::{label, Tree};
use crate::config::serviceentry::{ExportTo, ServiceEntrySpec};
use crate::config::SourcedEntry;

/// Who can use an entry, as `compile` reads `exportTo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visible {
    /// `*`.
    Everyone,
    /// These namespaces (`.` replaced by the owner).
    Namespaces(BTreeSet<String>),
}

impl Visible {
    /// Whether everyone `other` reaches is reached by `self` too.
    pub fn includes(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Everyone, _) => true,
            (Self::Namespaces(_), Self::Everyone) => false,
            (Self::Namespaces(mine), Self::Namespaces(theirs)) => theirs.is_subset(mine),
        }
    }
}

impl std::fmt::Display for Visible {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Everyone => f.write_str("every namespace (*)"),
            Self::Namespaces(names) => {
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                write!(f, "namespaces {}", names.join(", "))
            }
        }
    }
}

/// Who can use `sourced` in `tree`.
pub fn visibility(tree: &Tree, sourced: &SourcedEntry) -> Visible {
    let written = sourced
        .entry
        .spec
        .as_ref()
        .map(|s| s.export_to.as_slice())
        .unwrap_or_default();
    let export = if written.is_empty() {
        tree.loaded
            .gateway
            .serviceentries
            .default_export_to
            .as_slice()
    } else {
        written
    };
    let mut names = BTreeSet::new();
    for raw in export {
        match ExportTo::parse(raw) {
            Ok(ExportTo::All) => return Visible::Everyone,
            Ok(ExportTo::OwnNamespace) => {
                names.insert(sourced.namespace.as_str().to_owned());
            }
            Ok(ExportTo::Namespace(ns)) => {
                names.insert(ns.as_str().to_owned());
            }
            Ok(ExportTo::Nobody) | Err(_) => {}
        }
    }
    Visible::Namespaces(names)
}

/// The entries each namespace sees in one tree, as (`namespace/name`, spec) sorted by label:
/// two trees whose views of a namespace are equal give it the same answers.
pub struct Views<'a> {
    everyone: Vec<(String, &'a ServiceEntrySpec)>,
    named: HashMap<String, Vec<(String, &'a ServiceEntrySpec)>>,
}

impl<'a> Views<'a> {
    /// The views of every namespace of `tree`.
    pub fn new(tree: &'a Tree) -> Self {
        let mut everyone = Vec::new();
        let mut named: HashMap<String, Vec<_>> = HashMap::new();
        for sourced in &tree.loaded.entries {
            let Some(spec) = &sourced.entry.spec else {
                continue;
            };
            match visibility(tree, sourced) {
                Visible::Everyone => everyone.push((label(sourced), spec)),
                Visible::Namespaces(names) => {
                    for name in names {
                        named.entry(name).or_default().push((label(sourced), spec));
                    }
                }
            }
        }
        everyone.sort_by(|a, b| a.0.cmp(&b.0));
        for seen in named.values_mut() {
            seen.sort_by(|a, b| a.0.cmp(&b.0));
        }
        Self { everyone, named }
    }

    /// The specs of the entries `namespace` sees.
    pub fn visible(&self, namespace: &str) -> impl Iterator<Item = &'a ServiceEntrySpec> + '_ {
        let named = self.named.get(namespace).into_iter().flatten();
        self.everyone.iter().chain(named).map(|(_, spec)| *spec)
    }

    /// Whether `namespace` sees the same entries in both views.
    pub fn same_for(&self, other: &Self, namespace: &str) -> bool {
        self.everyone == other.everyone
            && self
                .named
                .get(namespace)
                .map(Vec::as_slice)
                .unwrap_or_default()
                == other
                    .named
                    .get(namespace)
                    .map(Vec::as_slice)
                    .unwrap_or_default()
    }
}
