//! Reading a config directory: `gateway.yaml` plus every ServiceEntry file below
//! `serviceentries.dir`, all problems collected at once with `FILE:LINE:COL`.
//!
//! This is the only module that touches config files. It follows the kubelet's ConfigMap layout
//! (per-file symlinks into `..data`) and skips its `..`-prefixed bookkeeping folders so each file
//! is read once. It resolves each entry's namespace and checks uniqueness, but it does not
//! compile policy.
//!
//! This file owns [`load`], the directory walk, file reading with digests, and the YAML/serde
//! helpers that report a problem at its position. Turning the text of a ServiceEntry file into
//! [`SourcedEntry`] values (documents, lists, namespaces, unique names) is `documents`; this file
//! must not look inside a ServiceEntry document itself.

mod documents;
mod list_split;
mod walk;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_yaml::Value;
use sha2::{Digest, Sha256};

use super::diagnostic::Diagnostic;
use super::gateway::{GatewayFile, Runtime};
use super::locate::{Locator, Position};
use super::serviceentry::{EntryAnnotations, ServiceEntry};
use super::shape;
use crate::names::Namespace;
use crate::pace::Pacer;
use documents::{check_unique_names, read_entries};
use walk::Walk;

/// Name of the settings file inside the config directory.
pub const GATEWAY_FILE: &str = "gateway.yaml";

/// Everything read from a config directory, validated but not yet compiled.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The config directory.
    pub dir: PathBuf,
    /// Parsed `gateway.yaml`, with file paths already resolved against the directory.
    pub gateway: GatewayFile,
    /// Every ServiceEntry found, with the tenant that owns it; shared with the reload cache, so a
    /// reload after one file changed copies pointers, not ten thousand entries.
    pub entries: Vec<Arc<SourcedEntry>>,
    /// Each file read and its digest, for `/config` and for telling what a reload changed.
    pub files: Vec<FileDigest>,
    /// Accepted-with-a-note problems.
    pub warnings: Vec<Diagnostic>,
}

/// One ServiceEntry and where it came from.
#[derive(Debug, Clone)]
pub struct SourcedEntry {
    /// Owning tenant (metadata.namespace, else the top folder under `serviceentries/`).
    pub namespace: Namespace,
    /// `metadata.name`, unique per namespace.
    pub name: String,
    /// File it was read from.
    pub file: PathBuf,
    /// Which document of the file, and the path of the item inside it (`items[3]` in a List).
    pub origin: DocumentOrigin,
    /// The entry as written.
    pub entry: ServiceEntry,
    /// Its `egress-gateway.io/*` annotations (expiry, owner, ticket), parsed once; shared with
    /// every compiled rule of the entry, so an allowed connection's record points at them.
    pub annotations: Option<Arc<EntryAnnotations>>,
}

/// Where in its file an entry was written, cheap to keep; turned into a line only when needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentOrigin {
    /// Index of the YAML document in the file.
    pub doc: usize,
    /// Path of the object inside the document; empty for a top-level object.
    pub path: String,
}

/// Where entries start, for a batch of diagnostics (error paths only): each file is re-read and
/// indexed once, however many of its entries have a problem — a folder copied twice makes one
/// per entry, and indexing the file again for each of them took seconds per thousand.
#[derive(Default)]
pub struct EntryPositions {
    files: HashMap<PathBuf, Option<Locator>>,
}

impl EntryPositions {
    /// The line and column where `entry` starts.
    pub fn of(&mut self, entry: &SourcedEntry) -> Option<Position> {
        self.of_field(entry, "")
    }

    /// The line and column of `field` (a path inside the entry, like `metadata.name`; empty for
    /// the entry itself), or of its nearest written parent.
    pub fn of_field(&mut self, entry: &SourcedEntry, field: &str) -> Option<Position> {
        if !self.files.contains_key(&entry.file) {
            let locator = fs::read_to_string(&entry.file)
                .ok()
                .map(|text| Locator::new(&text));
            self.files.insert(entry.file.clone(), locator);
        }
        let locator = self.files.get(&entry.file)?.as_ref()?;
        let origin = &entry.origin;
        let path = match (origin.path.as_str(), field) {
            (item, "") => item.to_owned(),
            ("", field) => field.to_owned(),
            (item, field) => format!("{item}.{field}"),
        };
        locator.find(origin.doc, &path)
    }
}

/// A file that was read, and its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    /// Path as found under the config directory.
    pub path: PathBuf,
    /// Lowercase hex SHA-256 of the content.
    pub sha256: String,
}

/// Loads and validates `dir`; on failure returns every error (and warning) found.
pub fn load(dir: &Path) -> Result<LoadedConfig, Vec<Diagnostic>> {
    load_cached(dir, &mut ParseCache::default())
}

/// ServiceEntry files parsed by the previous load, by path, reused while their content (SHA-256)
/// is unchanged: a reload after one file changed parses one file, not ten thousand entries.
#[derive(Default)]
pub struct ParseCache {
    files: HashMap<PathBuf, ParsedFile>,
}

/// What one file produced.
struct ParsedFile {
    sha256: String,
    /// The folder the entries' namespace defaults to: the same bytes below another folder
    /// belong to another tenant.
    top_folder: Option<String>,
    entries: Vec<Arc<SourcedEntry>>,
    diagnostics: Vec<Diagnostic>,
}

/// Like [`load`], reusing (and refreshing) `cache`.
pub fn load_cached(dir: &Path, cache: &mut ParseCache) -> Result<LoadedConfig, Vec<Diagnostic>> {
    load_from(&Sources::dir(dir), cache)
}

/// Where a load reads its files from.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The config directory: relative paths in gateway.yaml are resolved against it, and the
    /// loaded config reports it (and its ServiceEntry folder) as the place to watch.
    pub dir: PathBuf,
    /// The gateway.yaml to read.
    pub gateway_file: PathBuf,
    /// Reads the ServiceEntry files from this folder instead of `serviceentries.dir` (a copy of
    /// that folder, such as the last good config).
    pub entries_from: Option<PathBuf>,
}

impl Sources {
    /// The config directory `dir` as written.
    pub fn dir(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            gateway_file: dir.join(GATEWAY_FILE),
            entries_from: None,
        }
    }
}

/// Loads what `sources` names, reusing (and refreshing) `cache`.
pub fn load_from(
    sources: &Sources,
    cache: &mut ParseCache,
) -> Result<LoadedConfig, Vec<Diagnostic>> {
    let mut sink = Sink::default();
    let dir = sources.dir.as_path();
    let gateway_path = sources.gateway_file.clone();
    let gateway = sink.read(&gateway_path).and_then(|text| {
        shape_ok(&gateway_path, &text, &mut sink)?;
        let value = parse_single(&gateway_path, &text, &mut sink)?;
        let locate = |at: &str| Locator::new(&text).find(0, at);
        let typed = deserialize_at::<GatewayFile>(value, &gateway_path, locate, "", &mut sink)?;
        Some((typed, text))
    });
    let Some((mut gateway, gateway_text)) = gateway else {
        return Err(sink.diagnostics);
    };
    resolve_paths(&mut gateway, dir);
    if let Some(state_dir) = &gateway.state_dir {
        let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
        if canonical(state_dir).starts_with(canonical(&gateway.serviceentries.dir)) {
            sink.push(Diagnostic::error(
                &gateway_path,
                Locator::new(&gateway_text).find(0, "state_dir"),
                format!(
                    "state_dir {} is inside serviceentries.dir: the copies kept there would be read as allowlists; put it outside",
                    state_dir.display()
                ),
            ));
        }
    }

    let se_dir = sources
        .entries_from
        .clone()
        .unwrap_or_else(|| gateway.serviceentries.dir.clone());
    let mut files = Vec::new();
    match fs::metadata(&se_dir) {
        Ok(meta) if meta.is_dir() => {
            let root = se_dir.canonicalize().unwrap_or_else(|_| se_dir.clone());
            let mut walk = Walk {
                root: &root,
                out: &mut files,
                sink: &mut sink,
            };
            walk.collect(&se_dir, 0);
        }
        _ => sink.push(Diagnostic::error(
            &gateway_path,
            None,
            format!(
                "serviceentries.dir {} is not a readable directory",
                se_dir.display()
            ),
        )),
    }
    files.sort();

    let mut entries = Vec::new();
    let mut fresh = HashMap::with_capacity(files.len());
    let mut pacer = Pacer::default();
    for file in &files {
        pacer.step();
        let Some(text) = sink.read(file) else {
            continue;
        };
        let sha256 = sink
            .digests
            .last()
            .map(|d| d.sha256.clone())
            .unwrap_or_default();
        let top_folder = top_folder(&se_dir, file);
        let parsed = match cache.files.remove(file) {
            Some(parsed) if parsed.sha256 == sha256 && parsed.top_folder == top_folder => parsed,
            _ => {
                let mut file_sink = Sink::default();
                let mut file_entries = Vec::new();
                read_entries(
                    file,
                    &text,
                    top_folder.as_deref(),
                    &mut file_entries,
                    &mut file_sink,
                );
                ParsedFile {
                    sha256,
                    top_folder,
                    entries: file_entries,
                    diagnostics: file_sink.diagnostics,
                }
            }
        };
        entries.extend(parsed.entries.iter().cloned());
        sink.diagnostics.extend(parsed.diagnostics.iter().cloned());
        fresh.insert(file.clone(), parsed);
    }
    cache.files = fresh;
    check_unique_names(&entries, &mut sink);

    if sink.diagnostics.iter().any(Diagnostic::is_error) {
        return Err(sink.diagnostics);
    }
    Ok(LoadedConfig {
        dir: dir.to_path_buf(),
        gateway,
        entries,
        files: sink.digests,
        warnings: sink.diagnostics,
    })
}

/// What the loader makes of the text of one ServiceEntry file at `path` (below the namespace
/// folder `top_folder`, if any), without touching the file system: the entries it defines and
/// every finding with its position. The fuzz target drives the loader through this.
pub fn read_entries_text(
    path: &Path,
    text: &str,
    top_folder: Option<&str>,
) -> (Vec<Arc<SourcedEntry>>, Vec<Diagnostic>) {
    let mut sink = Sink::default();
    let mut entries = Vec::new();
    read_entries(path, text, top_folder, &mut entries, &mut sink);
    (entries, sink.diagnostics)
}

/// Collects diagnostics and digests as files are read.
#[derive(Default)]
pub(super) struct Sink {
    diagnostics: Vec<Diagnostic>,
    digests: Vec<FileDigest>,
}

impl Sink {
    pub(super) fn push(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    fn read(&mut self, path: &Path) -> Option<String> {
        match fs::read(path) {
            Ok(bytes) => {
                self.digests.push(FileDigest {
                    path: path.to_path_buf(),
                    sha256: hex(&Sha256::digest(&bytes)),
                });
                match String::from_utf8(bytes) {
                    Ok(text) => Some(text),
                    Err(_) => {
                        self.push(Diagnostic::error(path, None, "file is not valid UTF-8"));
                        None
                    }
                }
            }
            Err(err) => {
                self.push(Diagnostic::error(path, None, format!("cannot read: {err}")));
                None
            }
        }
    }
}

/// Lowercase hex of `bytes`, as digests are shown.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Makes TLS and ServiceEntry paths relative to the config directory, as docs/configuration.md says.
fn resolve_paths(gateway: &mut GatewayFile, dir: &Path) {
    gateway.serviceentries.dir = dir.join(&gateway.serviceentries.dir);
    gateway.state_dir = gateway.state_dir.as_ref().map(|state| dir.join(state));
    if let Some(tls) = gateway.tls.as_mut() {
        tls.cert = dir.join(&tls.cert);
        tls.key = dir.join(&tls.key);
        tls.client_ca = dir.join(&tls.client_ca);
    }
    let upstream = &mut gateway.upstream;
    let parents = upstream.proxy.iter_mut().chain(
        upstream
            .namespaces
            .values_mut()
            .filter_map(|ns| ns.proxy.as_mut()),
    );
    for parent in parents {
        if let Some(file) = parent.credentials_file.as_mut() {
            *file = dir.join(&*file);
        }
        if let Some(tls) = parent.tls.as_mut() {
            tls.ca_file = dir.join(&tls.ca_file);
        }
    }
}

/// The first folder below `root` on the way to `file`, if the file is not directly in `root`.
fn top_folder(root: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(root).ok()?;
    let mut parts = relative.components();
    let first = parts.next()?;
    parts.next()?;
    Some(first.as_os_str().to_string_lossy().into_owned())
}

/// Refuses text whose shape would exhaust the loader (see [`shape`]) before anything parses it.
fn shape_ok(path: &Path, text: &str, sink: &mut Sink) -> Option<shape::Shape> {
    match shape::check(text) {
        Ok(shape) => Some(shape),
        Err(problem) => {
            sink.push(Diagnostic::error(
                path,
                Some(problem.position),
                problem.message,
            ));
            None
        }
    }
}

/// Parses a file that must hold exactly one YAML document.
fn parse_single(path: &Path, text: &str, sink: &mut Sink) -> Option<Value> {
    match serde_yaml::from_str::<Value>(text) {
        Ok(value) => Some(value),
        Err(err) => {
            sink.push(syntax_error(path, &err));
            None
        }
    }
}

fn syntax_error(path: &Path, err: &serde_yaml::Error) -> Diagnostic {
    let position = err.location().map(|l| Position {
        line: l.line(),
        col: l.column(),
    });
    Diagnostic::error(path, position, format!("invalid YAML: {err}"))
}

/// Deserialises `value` as `T`, reporting a failure at the exact field it names.
/// `locate` maps a field path to its position; callers pass one that indexes the file once, however
/// many of its documents fail.
fn deserialize_at<T: DeserializeOwned>(
    value: Value,
    path: &Path,
    locate: impl FnOnce(&str) -> Option<Position>,
    prefix: &str,
    sink: &mut Sink,
) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(typed) => Some(typed),
        Err(err) => {
            let field = err.path().to_string();
            let field = if field == "." { String::new() } else { field };
            let at = join_path(prefix, &field);
            let position = locate(&at);
            let shown = if at.is_empty() { "document" } else { &at };
            sink.push(Diagnostic::error(
                path,
                position,
                format!("{shown}: {}", err.into_inner()),
            ));
            None
        }
    }
}

fn join_path(prefix: &str, field: &str) -> String {
    match (prefix.is_empty(), field.is_empty()) {
        (true, _) => field.to_owned(),
        (false, true) => prefix.trim_end_matches('.').to_owned(),
        (false, false) => format!("{prefix}{field}"),
    }
}

/// The `state_dir` of `dir`'s gateway.yaml, resolved against `dir`, read leniently: it is what
/// start-up falls back on when the rest of the file (or a ServiceEntry) is invalid.
pub fn read_state_dir(dir: &Path) -> Option<PathBuf> {
    let text = fs::read_to_string(dir.join(GATEWAY_FILE)).ok()?;
    shape::check(&text).ok()?;
    let value = serde_yaml::from_str::<Value>(&text).ok()?;
    let state_dir = value.get("state_dir")?.as_str()?;
    Some(dir.join(state_dir))
}

/// The `runtime` section of `dir`'s gateway.yaml, read before the runtime exists; any problem
/// (the defaults are returned then) is left for the full load to report.
pub fn read_runtime(dir: &Path) -> Runtime {
    fs::read_to_string(dir.join(GATEWAY_FILE))
        .ok()
        .filter(|text| shape::check(text).is_ok())
        .and_then(|text| serde_yaml::from_str::<GatewayFile>(&text).ok())
        .map(|gateway| gateway.runtime)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_file_now_below_another_top_folder_belongs_to_that_folders_namespace() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("se/team-a/team-b/api.yaml");
        fs::create_dir_all(file.parent().expect("a parent")).expect("mkdir");
        fs::write(
            &file,
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: api}\nspec:\n  hosts: [api.example.com]\n  ports: [{number: 443, name: https, protocol: HTTPS}]\n  resolution: DNS\n",
        )
        .expect("write the entry");
        let serve_from = |se_dir: &str| {
            let gateway = format!(
                "listeners:\n  connect: {{address: \"127.0.0.1:0\"}}\nserviceentries: {{dir: {se_dir}}}\n"
            );
            fs::write(dir.path().join(GATEWAY_FILE), gateway).expect("write gateway.yaml");
        };
        let mut cache = ParseCache::default();

        serve_from("se");
        let first = load_cached(dir.path(), &mut cache).expect("the config loads");
        assert_eq!(first.entries[0].namespace.as_str(), "team-a");

        serve_from("se/team-a");
        let second = load_cached(dir.path(), &mut cache).expect("the config loads");
        assert_eq!(
            second.entries[0].namespace.as_str(),
            "team-b",
            "same bytes, same path, but now below team-b"
        );
    }
}
