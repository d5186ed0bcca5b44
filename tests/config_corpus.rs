//! The config loader against real Istio manifests and hand-written edge cases, through the
//! library entry point `egress_gateway::app::load` (the path `run`, `check` and reloads share).
//!
//! Proves: every accepted manifest of the vendored corpus `tests/corpus/serviceentries/` (a
//! verbatim copy of `../shared/corpus/serviceentries/`, so the test runs on a clean clone) loads,
//! except a short, documented list the gateway deliberately rejects (docs/serviceentries.md), each rejected with a message
//! naming the rule;
//! every `invalid/` manifest is rejected with a `FILE:LINE:COL: message` whose line is inside the
//! document and whose message names the rule of the file's `# rule:` header; `warning/` manifests
//! load with warnings (except the partial wildcard, which the gateway rejects); and strict keys,
//! `kind: List`, skipped kinds, namespace folders, duplicate names and multi-document files
//! behave as docs/configuration.md and docs/serviceentries.md say.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use egress_gateway::config::{Diagnostic, LoadedConfig};

/// The vendored corpus the tests read.
const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/serviceentries");
/// Where it was copied from; outside the repository, so absent on a clean clone.
const SHARED_CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/corpus/serviceentries"
);

/// Top-level corpus files Istio accepts but the gateway rejects (docs/serviceentries.md), and a keyword the error must
/// contain.
const DELIBERATELY_REJECTED: &[(&str, &str)] = &[
    // `hosts: ["*"]` in one of its documents: a bare `*` would allow every destination.
    (
        "istio__pkg__config__analysis__analyzers__testdata__virtualservice_destinationhosts.yaml",
        "a bare `*` is not allowed",
    ),
    // `*.kiali.io` with resolution DNS and no endpoints: nothing to resolve.
    (
        "istio__pkg__config__analysis__analyzers__testdata__authorizationpolicies.yaml",
        "wildcard host needs endpoints",
    ),
    // A ServiceEntry with only `status`, no spec.
    (
        "istio__pkg__config__analysis__analyzers__testdata__condition-analyzer.yaml",
        "must have a spec",
    ),
    // `addresses: [1.2.3.4, 001:db8::]`: a flow list with an unquoted IPv6 literal ending in
    // `::`, which YAML 1.1/libyaml (serde_yaml) cannot scan.
    (
        "istio__pkg__config__validation__testdata__crds__serviceentry-valid.yaml",
        "invalid YAML",
    ),
];

/// `warning/` files the gateway rejects (Istio only warns), with the keyword of the error.
const WARNING_BUT_REJECTED: &[(&str, &str)] = &[(
    "validation-test__partial-wildcard-hosts.yaml",
    "wildcards are allowed only as the whole leftmost label",
)];

/// Every `invalid/` file and a keyword of its `# rule:` header that the error must contain.
const INVALID_KEYWORDS: &[(&str, &str)] = &[
    ("crd-schema__bad-cidr-resolution.yaml", "CIDR addresses are allowed only for NONE/STATIC"),
    ("crd-schema__bad-host-wildcard.yaml", "a bare `*` is not allowed"),
    ("crd-schema__bad-port-target.yaml", "targetPort 99999 is outside 1-65535"),
    ("crd-schema__bad-port.yaml", "port 99999 is outside 1-65535"),
    ("crd-schema__bad-selector-value.yaml", "wildcard is not supported in selector"),
    ("crd-schema__dns-rr-with-multiple-endpoints.yaml", "DNS_ROUND_ROBIN allows at most one endpoint"),
    ("crd-schema__duplicate-ports-name.yaml", "port names must be unique"),
    ("crd-schema__duplicate-ports-number.yaml", "port numbers must be unique"),
    ("crd-schema__missing-host.yaml", "spec.hosts is required"),
    ("crd-schema__no-spec.yaml", "must have a spec"),
    ("crd-schema__none-with-endpoints.yaml", "resolution NONE"),
    ("crd-schema__selector-and-endpoints.yaml", "only one of workloadSelector or endpoints"),
    ("validation-test__bad-hosts.yaml", "is not a valid DNS name"),
    ("validation-test__bad-selector-key.yaml", "empty key is not supported in selector"),
    ("validation-test__discovery-type-dns-non-fqdn-endpoint.yaml", "is a wildcard: resolution DNS must resolve each endpoint"),
    ("validation-test__discovery-type-dns-non-fqdn-host.yaml", "wildcard host needs endpoints"),
    ("validation-test__discovery-type-dns-unix-endpoint.yaml", "unix socket, which only resolution STATIC can use"),
    ("validation-test__discovery-type-dns-with-addresses-nil-port.yaml", "every element of ports must be a port object"),
    ("validation-test__discovery-type-dynamic-dns-empty-hosts.yaml", "spec.hosts is required"),
    ("validation-test__discovery-type-dynamic-dns-endpoints-set.yaml", "DYNAMIC_DNS resolves the requested name at request time, so endpoints must not be listed"),
    ("validation-test__discovery-type-dynamic-dns-fqdn-host.yaml", "DYNAMIC_DNS is for wildcard hosts only"),
    ("validation-test__discovery-type-dynamic-dns-ip-address-set.yaml", "DYNAMIC_DNS cannot have addresses"),
    ("validation-test__discovery-type-dynamic-dns-mesh-internal-with-waypoint-invalid.yaml", "must have location MESH_EXTERNAL"),
    ("validation-test__discovery-type-dynamic-dns-nil-port.yaml", "every element of ports must be a port object"),
    ("validation-test__discovery-type-dynamic-dns-unsupported-tcp-protocol.yaml", "DYNAMIC_DNS supports only HTTP, TLS, GRPC and HTTP2 ports"),
    ("validation-test__discovery-type-none-conflicting-port-names.yaml", "port names must be unique"),
    ("validation-test__discovery-type-none-conflicting-port-numbers.yaml", "port numbers must be unique"),
    ("validation-test__discovery-type-none-endpoints-provided.yaml", "resolution NONE passes traffic to the destination the client asked for, so endpoints must not be listed"),
    ("validation-test__discovery-type-static-bad-endpoint-port-name.yaml", "\"http-dne\" is not declared in spec.ports"),
    ("validation-test__discovery-type-static-fqdn-in-endpoints.yaml", "with resolution STATIC every endpoint address must be an IP address"),
    ("validation-test__dns-round-robin-with-more-than-one-endpoint.yaml", "DNS_ROUND_ROBIN allows at most one endpoint"),
    ("validation-test__empty-hosts.yaml", "spec.hosts is required"),
    ("validation-test__full-wildcard-host.yaml", "a bare `*` is not allowed"),
    ("validation-test__invalid-endpoint-port.yaml", "endpoint port 65536 (for \"http-valid1\") is outside 1-65535"),
    ("validation-test__invalid-target-port.yaml", "targetPort 65536 is outside 1-65535"),
    ("validation-test__nil-port-in-ports-array.yaml", "every element of ports must be a port object"),
    ("validation-test__selector-and-endpoints.yaml", "only one of workloadSelector or endpoints"),
    ("validation-test__undefined-endpoint-port.yaml", "\"http-dne\" is not declared in spec.ports"),
    ("validation-test__unix-socket-endpoint-ports.yaml", "must not have a ports map"),
    ("validation-test__unix-socket-multiple-service-ports.yaml", "needs exactly one service port"),
    ("validation-test__unix-socket-relative-path.yaml", "must be an absolute path"),
];

/// The minimal gateway.yaml for loading entries.
const GATEWAY: &str = "listeners:\n  connect: {address: \"127.0.0.1:0\"}\n";

/// The `*.yaml` files directly in `dir`, sorted.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

fn name_of(path: &Path) -> String {
    path.file_name()
        .expect("file name")
        .to_string_lossy()
        .into_owned()
}

/// A config dir with `gateway` and the given files under `serviceentries/`.
fn config_dir(gateway: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::write(dir.path().join("gateway.yaml"), gateway).expect("gateway.yaml");
    fs::create_dir_all(dir.path().join("serviceentries")).expect("mkdir");
    for (relative, content) in files {
        let path = dir.path().join("serviceentries").join(relative);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(path, content).expect("write");
    }
    dir
}

fn load(dir: &Path) -> Result<LoadedConfig, Vec<Diagnostic>> {
    egress_gateway::app::load(dir, 1).map(|(loaded, _)| loaded)
}

/// Loads one corpus file copied unchanged into the folder its entries may live in: directly
/// under `serviceentries/` when every entry names its namespace, else the folder of the one
/// namespace its entries name (`corpus/` when none does), since a namespace folder holds only
/// its own namespace's entries.
fn load_corpus_file(file: &Path) -> (tempfile::TempDir, Result<LoadedConfig, Vec<Diagnostic>>) {
    let content = fs::read_to_string(file).expect("read corpus file");
    let named = entry_namespaces(&content);
    let relative = match (named.contains(&None), named.iter().flatten().next()) {
        (false, _) => name_of(file),
        (true, Some(namespace)) => format!("{namespace}/{}", name_of(file)),
        (true, None) => format!("corpus/{}", name_of(file)),
    };
    let dir = config_dir(GATEWAY, &[(&relative, &content)]);
    let result = load(dir.path());
    (dir, result)
}

/// The `metadata.namespace` of every ServiceEntry in `text` (`None` for those without one),
/// including `kind: List` items; documents that do not parse count as `None`.
fn entry_namespaces(text: &str) -> std::collections::BTreeSet<Option<String>> {
    fn walk(value: &serde_yaml::Value, out: &mut std::collections::BTreeSet<Option<String>>) {
        match value.get("kind").and_then(|k| k.as_str()) {
            Some("List") | Some("ServiceEntryList") => value
                .get("items")
                .and_then(|items| items.as_sequence())
                .into_iter()
                .flatten()
                .for_each(|item| walk(item, out)),
            Some("ServiceEntry") => {
                let namespace = value
                    .get("metadata")
                    .and_then(|m| m.get("namespace"))
                    .and_then(|n| n.as_str());
                out.insert(namespace.map(str::to_owned));
            }
            _ => {}
        }
    }
    let mut out = std::collections::BTreeSet::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        match serde::Deserialize::deserialize(document) {
            Ok(value) => walk(&value, &mut out),
            Err(_) => {
                out.insert(None);
                break;
            }
        }
    }
    out
}

/// A diagnostic split as `FILE:LINE:COL: message` (checked by splitting on ':').
struct Located {
    file: String,
    line: usize,
    col: usize,
    message: String,
}

fn located(diagnostic: &Diagnostic) -> Located {
    let text = diagnostic.to_string();
    let mut parts = text.splitn(4, ':');
    let file = parts.next().expect("file").to_owned();
    let line = parts.next().and_then(|l| l.parse().ok());
    let col = parts.next().and_then(|c| c.parse().ok());
    let message = parts.next().and_then(|m| m.strip_prefix(' '));
    match (line, col, message) {
        (Some(line), Some(col), Some(message)) if line > 0 && col > 0 => Located {
            file,
            line,
            col,
            message: message.to_owned(),
        },
        _ => panic!("not FILE:LINE:COL: message: {text}"),
    }
}

fn errors(problems: &[Diagnostic]) -> Vec<&Diagnostic> {
    problems.iter().filter(|p| p.is_error()).collect()
}

fn render(problems: &[Diagnostic]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Number of ServiceEntry objects written in a file (top level or List items).
fn service_entry_count(text: &str) -> usize {
    text.lines()
        .filter(|l| {
            let l = l.trim_start().trim_start_matches("- ").trim_end();
            l == "kind: ServiceEntry"
        })
        .count()
}

/// Asserts that a rejection names `keyword` in an error located inside `file`'s text.
fn assert_rejected_with(file: &Path, problems: &[Diagnostic], keyword: &str) {
    let text = fs::read_to_string(file).expect("read");
    let total_lines = text.lines().count();
    let first_document_line = text
        .lines()
        .position(|l| !l.starts_with('#') && !l.trim().is_empty())
        .expect("a document")
        + 1;
    let errors = errors(problems);
    assert!(!errors.is_empty(), "{}: no error", name_of(file));
    for error in &errors {
        let at = located(error);
        assert!(
            at.file.ends_with(&name_of(file)),
            "{}: error names another file: {error}",
            name_of(file)
        );
        assert!(
            (first_document_line..=total_lines).contains(&at.line),
            "{}: line {} is outside the document (lines {first_document_line}-{total_lines}): {error}",
            name_of(file),
            at.line
        );
        let line_text = text.lines().nth(at.line - 1).unwrap_or_default();
        assert!(
            at.col <= line_text.chars().count() + 1,
            "{}: column {} is past the end of line {}: {error}",
            name_of(file),
            at.col,
            at.line
        );
    }
    assert!(
        errors.iter().any(|e| located(e).message.contains(keyword)),
        "{}: no error mentions {keyword:?}:\n{}",
        name_of(file),
        render(problems)
    );
}

#[test]
fn the_vendored_corpus_is_the_shared_corpus() {
    let shared = Path::new(SHARED_CORPUS);
    if !shared.is_dir() {
        eprintln!("{SHARED_CORPUS} is absent (clean clone): nothing to compare");
        return;
    }
    for sub in ["", "invalid", "warning"] {
        let ours = yaml_files(&Path::new(CORPUS).join(sub));
        let theirs = yaml_files(&shared.join(sub));
        assert_eq!(
            ours.iter().map(|p| name_of(p)).collect::<Vec<_>>(),
            theirs.iter().map(|p| name_of(p)).collect::<Vec<_>>(),
            "tests/corpus/serviceentries/{sub} differs from the shared corpus: copy it again"
        );
        for (a, b) in ours.iter().zip(&theirs) {
            assert!(
                fs::read(a).expect("read") == fs::read(b).expect("read"),
                "{} differs from the shared corpus: copy it again",
                a.display()
            );
        }
    }
}

#[test]
fn every_accepted_corpus_manifest_loads_except_the_documented_ones() {
    let files = yaml_files(Path::new(CORPUS));
    assert!(files.len() >= 60, "corpus missing? {} files", files.len());
    let rejected: BTreeMap<&str, &str> = DELIBERATELY_REJECTED.iter().copied().collect();
    let mut loaded_entries = 0;
    for file in &files {
        let name = name_of(file);
        let (_dir, result) = load_corpus_file(file);
        match (result, rejected.get(name.as_str())) {
            (Ok(loaded), None) => {
                let text = fs::read_to_string(file).expect("read");
                assert_eq!(
                    loaded.entries.len(),
                    service_entry_count(&text),
                    "{name}: every ServiceEntry document becomes an entry"
                );
                assert!(loaded.warnings.iter().all(|w| !w.is_error()));
                loaded_entries += loaded.entries.len();
            }
            (Err(problems), None) => {
                panic!("{name} should load:\n{}", render(&problems))
            }
            (Ok(_), Some(_)) => panic!(
                "{name} loads now: remove it from DELIBERATELY_REJECTED (and check docs/serviceentries.md)"
            ),
            (Err(problems), Some(keyword)) => assert_rejected_with(file, &problems, keyword),
        }
    }
    for (name, _) in DELIBERATELY_REJECTED {
        assert!(
            files.iter().any(|f| name_of(f) == *name),
            "{name} is no longer in the corpus"
        );
    }
    assert!(
        loaded_entries >= 100,
        "only {loaded_entries} entries loaded"
    );
}

#[test]
fn every_invalid_corpus_manifest_is_rejected_naming_its_rule() {
    let files = yaml_files(&Path::new(CORPUS).join("invalid"));
    let table: BTreeMap<&str, &str> = INVALID_KEYWORDS.iter().copied().collect();
    assert_eq!(
        files.iter().map(|f| name_of(f)).collect::<Vec<_>>(),
        table.keys().map(|k| k.to_string()).collect::<Vec<_>>(),
        "INVALID_KEYWORDS must list exactly the files of invalid/"
    );
    for file in &files {
        let name = name_of(file);
        let header = fs::read_to_string(file).expect("read");
        assert!(
            header.lines().any(|l| l.starts_with("# rule:")),
            "{name} has no # rule: header"
        );
        let (_dir, result) = load_corpus_file(file);
        match result {
            Ok(_) => panic!("{name} was accepted"),
            Err(problems) => assert_rejected_with(file, &problems, table[name.as_str()]),
        }
    }
}

#[test]
fn warning_corpus_manifests_load_with_warnings() {
    let files = yaml_files(&Path::new(CORPUS).join("warning"));
    assert!(!files.is_empty());
    let rejected: BTreeMap<&str, &str> = WARNING_BUT_REJECTED.iter().copied().collect();
    for file in &files {
        let name = name_of(file);
        let (_dir, result) = load_corpus_file(file);
        match (result, rejected.get(name.as_str())) {
            (Ok(loaded), None) => {
                let istio_warnings: Vec<_> = loaded.warnings.iter().collect();
                assert!(
                    !istio_warnings.is_empty(),
                    "{name}: accepted without a warning"
                );
                for warning in istio_warnings {
                    let at = located(warning);
                    assert!(at.message.starts_with("warning: "), "{warning}");
                    assert!(at.line > 1, "{warning}");
                }
                assert_eq!(loaded.entries.len(), 1, "{name}");
            }
            (Err(problems), None) => panic!("{name} should load:\n{}", render(&problems)),
            (Ok(_), Some(_)) => panic!("{name} loads now: remove it from WARNING_BUT_REJECTED"),
            (Err(problems), Some(keyword)) => assert_rejected_with(file, &problems, keyword),
        }
    }
}

fn entry(name: &str, host: &str, metadata_extra: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: {name}\n{metadata_extra}spec:\n  hosts: [\"{host}\"]\n  ports:\n    - {{number: 443, name: https, protocol: TLS}}\n  resolution: DNS\n"
    )
}

fn only_error(problems: &[Diagnostic]) -> Located {
    let errors = errors(problems);
    assert_eq!(errors.len(), 1, "{}", render(problems));
    located(errors[0])
}

#[test]
fn unknown_key_in_gateway_yaml_is_an_error_at_its_line() {
    let gateway = "listeners:\n  connect: {address: \"127.0.0.1:0\"}\nlimits:\n  max_connections_per_namspace: 5\n";
    let dir = config_dir(gateway, &[]);
    let problems = load(dir.path()).expect_err("unknown key must fail");
    let at = only_error(&problems);
    assert!(at.file.ends_with("gateway.yaml"), "{}", at.file);
    assert_eq!((at.line, at.col), (4, 3), "{}", at.message);
    assert!(
        at.message.contains("max_connections_per_namspace"),
        "{}",
        at.message
    );

    let gateway = "listeners:\n  conect: {address: \"127.0.0.1:0\"}\n";
    let dir = config_dir(gateway, &[]);
    let at = only_error(&load(dir.path()).expect_err("unknown listener"));
    assert_eq!(at.line, 2, "{}", at.message);
    assert!(at.message.contains("conect"), "{}", at.message);
}

#[test]
fn unknown_key_in_a_service_entry_spec_is_an_error_at_its_line() {
    let text = "# a comment\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: typo\nspec:\n  hostz: [\"api.example.com\"]\n  ports:\n    - {number: 443, name: https, protocol: TLS}\n";
    let dir = config_dir(GATEWAY, &[("app1/typo.yaml", text)]);
    let at = only_error(&load(dir.path()).expect_err("hostz must fail"));
    assert!(at.file.ends_with("app1/typo.yaml"), "{}", at.file);
    assert_eq!((at.line, at.col), (7, 3), "{}", at.message);
    assert!(at.message.contains("hostz"), "{}", at.message);

    // The same typo in the second document of a file (after a 9-line entry and `---`) is
    // reported at that document's line.
    let text = format!("{}---\n{text}", entry("first", "a.example.com", ""));
    let dir = config_dir(GATEWAY, &[("app1/typo.yaml", &text)]);
    let at = only_error(&load(dir.path()).expect_err("hostz must fail"));
    assert_eq!(at.line, 9 + 1 + 7, "{}", at.message);
    assert!(at.message.contains("hostz"), "{}", at.message);
}

#[test]
fn kind_list_with_items_loads() {
    let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: networking.istio.io/v1\n  kind: ServiceEntry\n  metadata: {name: one, namespace: app1, resourceVersion: \"42\", uid: abc}\n  spec:\n    hosts: [one.example.com]\n    ports: [{number: 443, name: https, protocol: TLS}]\n    resolution: DNS\n  status: {}\n- apiVersion: networking.istio.io/v1beta1\n  kind: ServiceEntry\n  metadata: {name: two, namespace: app2}\n  spec:\n    hosts: [two.example.com]\n    ports: [{number: 443, name: https, protocol: TLS}]\n    resolution: DNS\n";
    let dir = config_dir(GATEWAY, &[("exported.yaml", text)]);
    let loaded = load(dir.path()).unwrap_or_else(|p| panic!("{}", render(&p)));
    let names: Vec<String> = loaded
        .entries
        .iter()
        .map(|e| format!("{}/{}", e.namespace, e.name))
        .collect();
    assert_eq!(names, ["app1/one", "app2/two"]);
}

#[test]
fn other_kinds_are_skipped_with_a_warning() {
    let text = format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: vs}}\nspec:\n  hosts: [x]\n---\n{}",
        entry("kept", "kept.example.com", "")
    );
    let dir = config_dir(GATEWAY, &[("app1/mixed.yaml", &text)]);
    let loaded = load(dir.path()).unwrap_or_else(|p| panic!("{}", render(&p)));
    assert_eq!(loaded.entries.len(), 1);
    assert_eq!(loaded.entries[0].name, "kept");
    let warning = loaded
        .warnings
        .iter()
        .find(|w| w.message.contains("VirtualService"))
        .unwrap_or_else(|| panic!("no warning: {}", render(&loaded.warnings)));
    let at = located(warning);
    assert_eq!(at.line, 2, "{warning}");
    assert!(at.message.contains("skipped"), "{warning}");
}

#[test]
fn namespace_comes_from_metadata_or_the_top_folder() {
    let dir = config_dir(
        GATEWAY,
        &[
            ("team-a/deep/er/a.yaml", &entry("a", "a.example.com", "")),
            (
                "team-b/b.yml",
                &entry("b", "b.example.com", "  namespace: team-b\n"),
            ),
        ],
    );
    let loaded = load(dir.path()).unwrap_or_else(|p| panic!("{}", render(&p)));
    let mut names: Vec<String> = loaded
        .entries
        .iter()
        .map(|e| format!("{}/{}", e.namespace, e.name))
        .collect();
    names.sort();
    assert_eq!(names, ["team-a/a", "team-b/b"]);
}

#[test]
fn a_file_directly_in_serviceentries_needs_metadata_namespace() {
    let dir = config_dir(
        GATEWAY,
        &[("loose.yaml", &entry("loose", "loose.example.com", ""))],
    );
    let at = only_error(&load(dir.path()).expect_err("no namespace"));
    assert!(at.file.ends_with("loose.yaml"), "{}", at.file);
    assert_eq!(at.line, 3, "{}", at.message);
    assert!(
        at.message.contains("no metadata.namespace"),
        "{}",
        at.message
    );

    let dir = config_dir(
        GATEWAY,
        &[(
            "loose.yaml",
            &entry("loose", "loose.example.com", "  namespace: app1\n"),
        )],
    );
    let loaded = load(dir.path()).unwrap_or_else(|p| panic!("{}", render(&p)));
    assert_eq!(loaded.entries[0].namespace.as_str(), "app1");
}

#[test]
fn duplicate_names_in_one_namespace_name_both_places() {
    let second = format!(
        "{}---\n{}",
        entry("other", "other.example.com", ""),
        entry("api", "api2.example.com", "")
    );
    let dir = config_dir(
        GATEWAY,
        &[
            ("app1/a.yaml", &entry("api", "api.example.com", "")),
            ("app1/b.yaml", &second),
            // The same name in another namespace is fine.
            ("app2/a.yaml", &entry("api", "api.example.com", "")),
        ],
    );
    let at = only_error(&load(dir.path()).expect_err("duplicate"));
    assert!(at.file.ends_with("app1/b.yaml"), "{}", at.file);
    assert_eq!(at.line, 11, "the second document of b.yaml: {}", at.message);
    assert!(at.message.contains("app1/api"), "{}", at.message);
    assert!(at.message.contains("defined twice"), "{}", at.message);
    assert!(
        at.message.contains("app1/a.yaml:1"),
        "names the first place: {}",
        at.message
    );
}

#[test]
fn multi_document_files_load_every_document() {
    let text = format!(
        "# three entries\n{}---\n{}---\n# an empty document is fine\n---\n{}",
        entry("one", "one.example.com", ""),
        entry("two", "two.example.com", ""),
        entry("three", "*.three.example.com", "").replace("resolution: DNS", "resolution: NONE")
    );
    let dir = config_dir(GATEWAY, &[("app1/many.yaml", &text)]);
    let loaded = load(dir.path()).unwrap_or_else(|p| panic!("{}", render(&p)));
    let names: Vec<&str> = loaded.entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["one", "two", "three"]);
    assert_eq!(loaded.files.len(), 2, "gateway.yaml and many.yaml");
}
