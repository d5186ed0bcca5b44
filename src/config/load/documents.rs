//! Reading the documents of one ServiceEntry file into [`SourcedEntry`] values: every YAML
//! document, `kind: List` items, the supported API versions, istiod's validation findings as
//! diagnostics at their `FILE:LINE:COL`, each entry's namespace (`metadata.namespace`, else its
//! top folder; a namespace folder holds only its own namespace's entries), and unique names per
//! namespace.
//!
//! Works on text already read by the loader and reports through its `Sink`. Must not read, list or
//! digest files (that is the directory walk in `load`), and must not compile policy.

use std::cell::OnceCell;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde_yaml::Value;

use super::{deserialize_at, join_path, shape_ok, syntax_error, DocumentOrigin, EntryPositions};
use super::{list_split, Sink, SourcedEntry};
use crate::config::diagnostic::Diagnostic;
use crate::config::locate::{Locator, Position};
use crate::config::serviceentry::{self, EntryAnnotations, ServiceEntry};
use crate::names::Namespace;
use crate::pace::Pacer;

/// Istio API versions whose ServiceEntry schema we accept.
const API_VERSIONS: [&str; 3] = [
    "networking.istio.io/v1",
    "networking.istio.io/v1beta1",
    "networking.istio.io/v1alpha3",
];

/// Reads every document of a ServiceEntry file (including `kind: List` items).
pub(super) fn read_entries(
    path: &Path,
    text: &str,
    top_folder: Option<&str>,
    out: &mut Vec<Arc<SourcedEntry>>,
    sink: &mut Sink,
) {
    let Some(shape) = shape_ok(path, text, sink) else {
        return;
    };
    let locator = OnceCell::new();
    if shape.documents == 1 && !shape.aliases {
        if let Some(list) = list_split::split(text) {
            let source = Source {
                path,
                text,
                doc: 0,
                top_folder,
                locator: &locator,
            };
            if read_split_list(&source, list, out, sink) {
                return;
            }
        }
    }
    for (doc, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = match serde::Deserialize::deserialize(document) {
            Ok(value) => value,
            Err(err) => {
                sink.push(syntax_error(path, &err));
                return;
            }
        };
        let source = Source {
            path,
            text,
            doc,
            top_folder,
            locator: &locator,
        };
        read_object(&source, value, "", out, sink);
    }
}

/// Reads a List cut into its items' texts, one item at a time; `false` (having read nothing) when
/// the rest of the document is not a List after all, so the caller parses it whole.
fn read_split_list(
    source: &Source<'_>,
    list: list_split::SplitList,
    out: &mut Vec<Arc<SourcedEntry>>,
    sink: &mut Sink,
) -> bool {
    let is_list = serde_yaml::from_str::<Value>(&list.rest).is_ok_and(|rest| {
        matches!(
            rest.get("kind").and_then(Value::as_str),
            Some("List" | "ServiceEntryList")
        )
    });
    if !is_list {
        return false;
    }
    for (i, (first_line, text)) in list.items.into_iter().enumerate() {
        match serde_yaml::from_str::<Value>(&text) {
            Ok(item) => read_object(source, item, &format!("items[{i}]."), out, sink),
            Err(err) => {
                let mut diagnostic = syntax_error(source.path, &err);
                if let Some(position) = diagnostic.position.as_mut() {
                    position.line += first_line - 1;
                }
                sink.push(diagnostic);
                break;
            }
        }
    }
    true
}

/// Where a document came from, for positions and namespace defaults.
struct Source<'a> {
    path: &'a Path,
    text: &'a str,
    doc: usize,
    top_folder: Option<&'a str>,
    locator: &'a OnceCell<Locator>,
}

impl Source<'_> {
    /// Position of `field`; indexes the file on first use, which only problems need.
    fn at(&self, field: &str) -> Option<Position> {
        self.locator
            .get_or_init(|| Locator::new(self.text))
            .find(self.doc, field)
    }
}

fn read_object(
    source: &Source<'_>,
    value: Value,
    prefix: &str,
    out: &mut Vec<Arc<SourcedEntry>>,
    sink: &mut Sink,
) {
    if value.is_null() {
        return;
    }
    let kind = value.get("kind").and_then(Value::as_str).map(str::to_owned);
    let api_version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    match kind.as_deref() {
        Some("ServiceEntry") if api_version.starts_with("networking.istio.io/") => {
            if !API_VERSIONS.contains(&api_version.as_str()) {
                sink.push(Diagnostic::error(
                    source.path,
                    source.at(&format!("{prefix}apiVersion")),
                    format!(
                        "apiVersion {api_version:?} is not supported: use one of {}",
                        API_VERSIONS.join(", ")
                    ),
                ));
                return;
            }
            read_service_entry(source, value, prefix, out, sink);
        }
        Some("List") | Some("ServiceEntryList") => {
            // Taken out of the document, not copied: a List can hold the whole allowlist.
            let items = match value {
                Value::Mapping(mut document) => document.remove("items"),
                _ => None,
            };
            let items = match items {
                Some(Value::Sequence(items)) => items,
                _ => {
                    sink.push(Diagnostic::error(
                        source.path,
                        source.at(prefix.trim_end_matches('.')),
                        "a `kind: List` needs an `items` sequence",
                    ));
                    return;
                }
            };
            for (i, item) in items.into_iter().enumerate() {
                read_object(source, item, &format!("{prefix}items[{i}]."), out, sink);
            }
        }
        Some(other) => sink.push(Diagnostic::warning(
            source.path,
            source.at(&format!("{prefix}kind")),
            format!("skipped `kind: {other}` (apiVersion {api_version:?}): only networking.istio.io ServiceEntry objects are read"),
        )),
        None => sink.push(Diagnostic::error(
            source.path,
            source.at(prefix.trim_end_matches('.')),
            "document has no `kind`: expected `kind: ServiceEntry` (apiVersion networking.istio.io/v1)",
        )),
    }
}

fn read_service_entry(
    source: &Source<'_>,
    value: Value,
    prefix: &str,
    out: &mut Vec<Arc<SourcedEntry>>,
    sink: &mut Sink,
) {
    let Some(entry) =
        deserialize_at::<ServiceEntry>(value, source.path, |at| source.at(at), prefix, sink)
    else {
        return;
    };
    let mut failed = false;
    for finding in serviceentry::validate(&entry) {
        let position = source.at(&join_path(prefix, &finding.path));
        let label = entry_label(&entry);
        let message = format!("{label}: {}: {}", finding.path, finding.message);
        let diagnostic = if finding.severity == serviceentry::Severity::Error {
            failed = true;
            Diagnostic::error(source.path, position, message)
        } else {
            Diagnostic::warning(source.path, position, message)
        };
        sink.push(diagnostic);
    }
    let namespace = match resolve_namespace(source, &entry, prefix, sink) {
        Some(namespace) => namespace,
        None => return,
    };
    let Some(name) = entry.metadata.name.clone() else {
        return;
    };
    if failed {
        return;
    }
    let annotations = EntryAnnotations::parse(&entry.metadata)
        .ok()
        .flatten()
        .map(Arc::new);
    // Boxed at once: a Vec of entries inline would hold each twice while it grows.
    out.push(Arc::new(SourcedEntry {
        namespace,
        name,
        file: source.path.to_path_buf(),
        origin: DocumentOrigin {
            doc: source.doc,
            path: prefix.trim_end_matches('.').to_owned(),
        },
        entry,
        annotations,
    }));
}

fn entry_label(entry: &ServiceEntry) -> String {
    let name = entry.metadata.name.as_deref().unwrap_or("<unnamed>");
    match entry.metadata.namespace.as_deref() {
        Some(ns) => format!("ServiceEntry {ns}/{name}"),
        None => format!("ServiceEntry {name}"),
    }
}

/// metadata.namespace, else the top folder; an error if neither exists or is valid.
fn resolve_namespace(
    source: &Source<'_>,
    entry: &ServiceEntry,
    prefix: &str,
    sink: &mut Sink,
) -> Option<Namespace> {
    let field = format!("{prefix}metadata.namespace");
    let (raw, origin) = match (entry.metadata.namespace.as_deref(), source.top_folder) {
        (Some(ns), Some(folder)) if folder != ns => {
            sink.push(Diagnostic::error(
                source.path,
                source.at(&field),
                format!(
                    "{}: metadata.namespace {ns:?} differs from the folder {folder:?}: a namespace folder holds only its own namespace's entries (move the file to serviceentries/{ns}/, or directly under serviceentries/)",
                    entry_label(entry)
                ),
            ));
            return None;
        }
        (Some(ns), _) => (ns, "metadata.namespace"),
        (None, Some(folder)) => (folder, "the top folder under serviceentries/"),
        (None, None) => {
            sink.push(Diagnostic::error(
                source.path,
                source.at(&format!("{prefix}metadata")),
                format!(
                    "{}: no metadata.namespace, and the file is not inside a namespace folder (serviceentries/<namespace>/...)",
                    entry_label(entry)
                ),
            ));
            return None;
        }
    };
    match Namespace::parse(raw) {
        Ok(namespace) => Some(namespace),
        Err(message) => {
            sink.push(Diagnostic::error(
                source.path,
                source.at(&field),
                format!("{}: namespace from {origin}: {message}", entry_label(entry)),
            ));
            None
        }
    }
}

/// `metadata.name` must be unique within a namespace, like in Kubernetes.
pub(super) fn check_unique_names(entries: &[Arc<SourcedEntry>], sink: &mut Sink) {
    let mut seen: HashMap<(&str, &str), &SourcedEntry> = HashMap::with_capacity(entries.len());
    let mut positions = EntryPositions::default();
    let mut pacer = Pacer::default();
    for entry in entries {
        pacer.step();
        let key = (entry.namespace.as_str(), entry.name.as_str());
        match seen.entry(key) {
            Entry::Vacant(vacant) => {
                vacant.insert(entry);
            }
            Entry::Occupied(first) => {
                let first = first.get();
                let first_at = positions.of(first).map_or(1, |p| p.line);
                sink.push(Diagnostic::error(
                    &entry.file,
                    positions.of(entry),
                    format!(
                        "ServiceEntry {}/{} is defined twice (first at {}:{first_at}): names must be unique per namespace",
                        key.0,
                        key.1,
                        first.file.display()
                    ),
                ));
            }
        }
    }
}
