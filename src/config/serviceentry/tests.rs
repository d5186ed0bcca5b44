//! Tests against the corpus of real Istio manifests (tests/corpus/serviceentries, copied unchanged from ../shared/corpus) plus
//! focused cases for rules the corpus does not reach.

use std::fs;
use std::path::{Path, PathBuf};

use super::*;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/serviceentries/");

/// Every file Istio rejects: (file, keyword the refusing message must contain, path it must point
/// at). The keyword ties the message to the file's `# rule:` header.
const INVALID: &[(&str, &str, &str)] = &[
    (
        "crd-schema__bad-cidr-resolution.yaml",
        "CIDR addresses are allowed only for NONE/STATIC",
        "spec.addresses[0]",
    ),
    (
        "crd-schema__bad-host-wildcard.yaml",
        "bare `*`",
        "spec.hosts[0]",
    ),
    (
        "crd-schema__bad-port-target.yaml",
        "targetPort 99999 is outside 1-65535",
        "spec.ports[0].targetPort",
    ),
    (
        "crd-schema__bad-port.yaml",
        "port 99999 is outside 1-65535",
        "spec.ports[0].number",
    ),
    (
        "crd-schema__bad-selector-value.yaml",
        "wildcard is not supported in selector",
        "spec.workloadSelector.labels.val",
    ),
    (
        "crd-schema__dns-rr-with-multiple-endpoints.yaml",
        "DNS_ROUND_ROBIN allows at most one endpoint",
        "spec.endpoints",
    ),
    (
        "crd-schema__duplicate-ports-name.yaml",
        "port name \"a\" is already used",
        "spec.ports[1].name",
    ),
    (
        "crd-schema__duplicate-ports-number.yaml",
        "port 1 is already declared",
        "spec.ports[1].number",
    ),
    (
        "crd-schema__missing-host.yaml",
        "spec.hosts is required",
        "spec.hosts",
    ),
    ("crd-schema__no-spec.yaml", "must have a spec", "spec"),
    (
        "crd-schema__none-with-endpoints.yaml",
        "endpoints must not be listed",
        "spec.endpoints",
    ),
    (
        "crd-schema__selector-and-endpoints.yaml",
        "only one of workloadSelector or endpoints",
        "spec.workloadSelector",
    ),
    (
        "validation-test__bad-hosts.yaml",
        "\"-\" is not a valid DNS name",
        "spec.hosts[0]",
    ),
    (
        "validation-test__bad-selector-key.yaml",
        "empty key is not supported in selector",
        "spec.workloadSelector.labels",
    ),
    (
        "validation-test__discovery-type-dns-non-fqdn-endpoint.yaml",
        "\"*.lon.google.com\" is a wildcard",
        "spec.endpoints[0].address",
    ),
    (
        "validation-test__discovery-type-dns-non-fqdn-host.yaml",
        "with a wildcard host needs endpoints",
        "spec.hosts[0]",
    ),
    (
        "validation-test__discovery-type-dns-unix-endpoint.yaml",
        "only resolution STATIC can use",
        "spec.endpoints[0].address",
    ),
    (
        "validation-test__discovery-type-dns-with-addresses-nil-port.yaml",
        "every element of ports must be a port object",
        "spec.ports[0]",
    ),
    (
        "validation-test__discovery-type-dynamic-dns-empty-hosts.yaml",
        "spec.hosts is required",
        "spec.hosts",
    ),
    (
        "validation-test__discovery-type-dynamic-dns-endpoints-set.yaml",
        "DYNAMIC_DNS resolves the requested name at request time",
        "spec.endpoints",
    ),
    (
        "validation-test__discovery-type-dynamic-dns-fqdn-host.yaml",
        "DYNAMIC_DNS is for wildcard hosts only",
        "spec.hosts[0]",
    ),
    (
        "validation-test__discovery-type-dynamic-dns-ip-address-set.yaml",
        "DYNAMIC_DNS cannot have addresses",
        "spec.addresses",
    ),
    (
        "validation-test__discovery-type-dynamic-dns-mesh-internal-with-waypoint-invalid.yaml",
        "must have location MESH_EXTERNAL",
        "spec.location",
    ),
    (
        "validation-test__discovery-type-dynamic-dns-nil-port.yaml",
        "every element of ports must be a port object",
        "spec.ports[0]",
    ),
    (
        "validation-test__discovery-type-dynamic-dns-unsupported-tcp-protocol.yaml",
        "supports only HTTP, TLS, GRPC and HTTP2",
        "spec.ports[1].protocol",
    ),
    (
        "validation-test__discovery-type-none-conflicting-port-names.yaml",
        "port name \"http-conflict\" is already used",
        "spec.ports[1].name",
    ),
    (
        "validation-test__discovery-type-none-conflicting-port-numbers.yaml",
        "port 80 is already declared",
        "spec.ports[1].number",
    ),
    (
        "validation-test__discovery-type-none-endpoints-provided.yaml",
        "endpoints must not be listed",
        "spec.endpoints",
    ),
    (
        "validation-test__discovery-type-static-bad-endpoint-port-name.yaml",
        "\"http-dne\" is not declared in spec.ports",
        "spec.endpoints[1].ports.http-dne",
    ),
    (
        "validation-test__discovery-type-static-fqdn-in-endpoints.yaml",
        "must be an IP address or unix",
        "spec.endpoints[0].address",
    ),
    (
        "validation-test__dns-round-robin-with-more-than-one-endpoint.yaml",
        "DNS_ROUND_ROBIN allows at most one endpoint",
        "spec.endpoints",
    ),
    (
        "validation-test__empty-hosts.yaml",
        "spec.hosts is required",
        "spec.hosts",
    ),
    (
        "validation-test__full-wildcard-host.yaml",
        "bare `*`",
        "spec.hosts[1]",
    ),
    (
        "validation-test__invalid-endpoint-port.yaml",
        "endpoint port 65536",
        "spec.endpoints[0].ports.http-valid1",
    ),
    (
        "validation-test__invalid-target-port.yaml",
        "targetPort 65536 is outside 1-65535",
        "spec.ports[0].targetPort",
    ),
    (
        "validation-test__nil-port-in-ports-array.yaml",
        "every element of ports must be a port object",
        "spec.ports[0]",
    ),
    (
        "validation-test__selector-and-endpoints.yaml",
        "only one of workloadSelector or endpoints",
        "spec.workloadSelector",
    ),
    (
        "validation-test__undefined-endpoint-port.yaml",
        "\"http-dne\" is not declared in spec.ports",
        "spec.endpoints[1].ports.http-dne",
    ),
    (
        "validation-test__unix-socket-endpoint-ports.yaml",
        "must not have a ports map",
        "spec.endpoints[0].ports",
    ),
    (
        "validation-test__unix-socket-multiple-service-ports.yaml",
        "exactly one service port",
        "spec.endpoints[0].address",
    ),
    (
        "validation-test__unix-socket-relative-path.yaml",
        "must be an absolute path",
        "spec.endpoints[0].address",
    ),
];

/// Every file Istio accepts with a warning: (file, keyword of the expected warning). The partial
/// wildcard case is refused here (SPEC §4), so its keyword is an error's.
const WARNING: &[(&str, &str)] = &[
    (
        "validation-test__discovery-type-dns-multi-hosts-set-with-ip-address-and-https-port.yaml",
        "several hosts share spec.addresses",
    ),
    (
        "validation-test__network-set-with-no-address-on-endpoint.yaml",
        "has network \"cluster-1\" but no address",
    ),
    (
        "validation-test__partial-wildcard-hosts.yaml",
        "Istio only warns",
    ),
    (
        "validation-test__protocol-is-tcp-for-addresses-empty.yaml",
        "may capture all traffic on port 81",
    ),
    (
        "validation-test__protocol-unset-for-addresses-empty.yaml",
        "may capture all traffic on port 8080",
    ),
    (
        "validation-test__selector-and-resolution-none.yaml",
        "should not be set when resolution is NONE",
    ),
    (
        "validation-test__selector.yaml",
        "should not be set when resolution is NONE",
    ),
    (
        "validation-test__warn-target-port.yaml",
        "targetPort 1234 has no effect",
    ),
    (
        "validation-test__workload-selector-without-labels.yaml",
        "has no labels",
    ),
];

/// The one warning-corpus file refused here.
const PARTIAL_WILDCARD: &str = "validation-test__partial-wildcard-hosts.yaml";

/// Documents of the accepted corpus that this gateway refuses: (file, metadata.name, keyword of
/// the error). All are Istio test fixtures that never go through istiod's `ValidateServiceEntry`
/// (analyzer inputs, and a CRD-schema fixture Istio's webhook would only warn about): istiod would
/// reject the first three too; the partial wildcard is refused by SPEC §4.
const ACCEPTED_BUT_REFUSED: &[(&str, &str, &str)] = &[
    (
        "istio__pkg__config__analysis__analyzers__testdata__authorizationpolicies.yaml",
        "istio",
        "with a wildcard host needs endpoints",
    ),
    (
        "istio__pkg__config__analysis__analyzers__testdata__condition-analyzer.yaml",
        "negative-condition-svcEntry",
        "must have a spec",
    ),
    (
        "istio__pkg__config__analysis__analyzers__testdata__virtualservice_destinationhosts.yaml",
        "service-entry-ignore",
        "bare `*`",
    ),
    (
        "istio__pkg__config__validation__testdata__crds__serviceentry-valid.yaml",
        "partial-wildcard",
        "Istio only warns",
    ),
];

/// Documents of the accepted corpus that libyaml (behind serde_yaml) cannot even parse, so the
/// loader reports a YAML syntax error for them: (file, text the document contains). Istio's Go YAML
/// parser reads the flow sequence `[1.2.3.4, 001:db8::]`; libyaml stops at the `:` before `]`.
const YAML_SYNTAX_ERRORS: &[(&str, &str)] = &[(
    "istio__pkg__config__validation__testdata__crds__serviceentry-valid.yaml",
    "001:db8::]",
)];

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

#[test]
fn every_invalid_corpus_file_is_refused_for_its_rule() {
    let files = yaml_files(&Path::new(CORPUS).join("invalid"));
    let names: Vec<String> = files.iter().map(|p| file_name(p)).collect();
    let table: Vec<&str> = INVALID.iter().map(|(f, _, _)| *f).collect();
    assert_eq!(
        names, table,
        "INVALID must list exactly the files of invalid/"
    );

    for (path, (name, keyword, at)) in files.iter().zip(INVALID) {
        let text = fs::read_to_string(path).unwrap();
        let value: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let outcome = check_value(value.clone());
        let errors = outcome.errors();
        assert!(!errors.is_empty(), "{name}: accepted, but Istio rejects it");
        let hit = outcome
            .findings()
            .iter()
            .find(|f| f.is_error() && f.message.contains(keyword));
        let Some(hit) = hit else {
            panic!(
                "{name}: no error mentions {keyword:?}; got:\n  {}",
                errors.join("\n  ")
            );
        };
        assert_eq!(hit.path, *at, "{name}: {hit}");
        assert!(
            resolves(&value, &hit.path)
                || parent(&hit.path).is_empty()
                || resolves(&value, parent(&hit.path)),
            "{name}: path {} does not locate anything",
            hit.path
        );
    }
}

#[test]
fn every_accepted_corpus_document_passes() {
    let mut checked = 0;
    let mut refused_on_purpose = 0;
    let mut unparsable = 0;
    let mut failures = Vec::new();
    for path in yaml_files(Path::new(CORPUS)) {
        let name = file_name(&path);
        let text = fs::read_to_string(&path).unwrap();
        for value in documents(&text) {
            let value = match value {
                Ok(value) => value,
                Err((doc, err)) => {
                    let known = YAML_SYNTAX_ERRORS
                        .iter()
                        .any(|(f, snippet)| *f == name && doc.contains(snippet));
                    assert!(known, "{name}: YAML syntax error {err}");
                    checked += 1;
                    unparsable += 1;
                    continue;
                }
            };
            assert_eq!(
                value.get("kind").and_then(|k| k.as_str()),
                Some("ServiceEntry"),
                "{name}"
            );
            let doc = value["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let outcome = check_value(value.clone());
            for finding in outcome.findings() {
                assert!(
                    resolves(&value, &finding.path)
                        || parent(&finding.path).is_empty()
                        || resolves(&value, parent(&finding.path)),
                    "{name} ({doc}): path of {finding} does not locate anything"
                );
            }
            let errors = outcome.errors();
            checked += 1;
            if let Some((_, _, keyword)) = ACCEPTED_BUT_REFUSED
                .iter()
                .find(|(f, d, _)| *f == name && *d == doc)
            {
                refused_on_purpose += 1;
                assert!(
                    errors.iter().any(|e| e.contains(keyword)),
                    "{name} ({doc}): expected an error about {keyword:?}, got {errors:?}"
                );
                continue;
            }
            if !errors.is_empty() {
                failures.push(format!(
                    "{name} ({doc}) refused:\n  {}",
                    errors.join("\n  ")
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        checked, 117,
        "the corpus README counts 117 ServiceEntry documents"
    );
    assert_eq!(refused_on_purpose, ACCEPTED_BUT_REFUSED.len());
    assert_eq!(unparsable, YAML_SYNTAX_ERRORS.len());
}

#[test]
fn every_warning_corpus_file_warns() {
    let files = yaml_files(&Path::new(CORPUS).join("warning"));
    let names: Vec<String> = files.iter().map(|p| file_name(p)).collect();
    let table: Vec<&str> = WARNING.iter().map(|(f, _)| *f).collect();
    assert_eq!(
        names, table,
        "WARNING must list exactly the files of warning/"
    );

    for (path, (name, keyword)) in files.iter().zip(WARNING) {
        let outcome = check_str(&fs::read_to_string(path).unwrap());
        let errors = outcome.errors();
        if *name == PARTIAL_WILDCARD {
            assert!(
                errors
                    .iter()
                    .any(|e| e.contains(keyword) && e.contains("spec.hosts[1]")),
                "{name}: the partial wildcard must be refused, got {errors:?}"
            );
            continue;
        }
        assert!(
            errors.is_empty(),
            "{name} refused:\n  {}",
            errors.join("\n  ")
        );
        let warnings: Vec<&Finding> = outcome
            .findings()
            .iter()
            .filter(|f| f.severity == Severity::Warning)
            .collect();
        assert!(
            warnings.iter().any(|w| w.message.contains(keyword)),
            "{name}: no warning mentions {keyword:?}; got {warnings:#?}"
        );
    }
}

/// A minimal valid entry with one extra spec snippet spliced in.
fn entry(spec: &str) -> Outcome {
    check_str(&format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: t\n  \
         namespace: team-a\nspec:\n{spec}"
    ))
}

fn error_at(outcome: &Outcome, path: &str, keyword: &str) -> bool {
    outcome
        .findings()
        .iter()
        .any(|f| f.is_error() && f.path == path && f.message.contains(keyword))
}

#[test]
fn protocols_parse_like_istio_and_decide_inspection() {
    assert_eq!(Protocol::parse("https"), Some(Protocol::Https));
    assert_eq!(Protocol::parse("Grpc-Web"), Some(Protocol::GrpcWeb));
    assert_eq!(Protocol::parse("http_proxy"), Some(Protocol::HttpProxy));
    assert_eq!(Protocol::parse("SMTP"), None);
    assert_eq!(Protocol::Tls.inspection(), Inspection::Sni);
    assert_eq!(Protocol::Https.inspection(), Inspection::Sni);
    assert_eq!(Protocol::Http2.inspection(), Inspection::HostHeader);
    assert_eq!(Protocol::Grpc.inspection(), Inspection::HostHeader);
    assert_eq!(Protocol::Mongo.inspection(), Inspection::None);
    let unset = ServicePort {
        number: 1,
        ..ServicePort::default()
    };
    assert_eq!(unset.protocol(), Ok(Protocol::Tcp));

    let outcome =
        entry("  hosts: [a.example.com]\n  ports:\n  - {number: 25, name: smtp, protocol: SMTP}\n");
    assert!(error_at(
        &outcome,
        "spec.ports[0].protocol",
        "unrecognized protocol \"SMTP\""
    ));
}

#[test]
fn hosts_must_be_dns_names_with_whole_label_wildcards() {
    let outcome = entry(
        "  hosts: ['10.0.0.1', 'a.*.com', 'foo.123', 'bad_name.com', '*example.com', 'A.Example.COM.']\n",
    );
    assert!(error_at(&outcome, "spec.hosts[0]", "is an IP address"));
    assert!(error_at(&outcome, "spec.hosts[1]", "whole leftmost label"));
    assert!(error_at(&outcome, "spec.hosts[2]", "all digits"));
    assert!(error_at(&outcome, "spec.hosts[3]", "not a valid DNS name"));
    assert!(error_at(
        &outcome,
        "spec.hosts[4]",
        "did you mean `*.example.com`?"
    ));
    assert!(!outcome.findings().iter().any(|f| f.path == "spec.hosts[5]"));
}

#[test]
fn several_hosts_need_inspectable_ports_unless_resolution_none() {
    let spec = "  hosts: [a.example.com, b.example.com]\n  addresses: [10.0.0.1]\n  ports:\n  - \
                {number: 443, name: tls, protocol: TLS}\n  - {number: 5432, name: pg}\n";
    let dns = entry(&format!("{spec}  resolution: DNS\n"));
    assert!(error_at(
        &dns,
        "spec.ports[1]",
        "multiple hosts provided with non-HTTP, non-TLS ports"
    ));
    let none = entry(spec);
    assert!(none.errors().is_empty(), "{:?}", none.errors());
}

#[test]
fn addresses_must_be_ips_or_cidrs() {
    let outcome = entry(
        "  hosts: [a.example.com]\n  addresses: [10.0.0.0/8, example.com, 10.0.0.1/99]\n  \
         resolution: STATIC\n  endpoints: [{address: 10.0.0.2}]\n",
    );
    assert!(!error_at(&outcome, "spec.addresses[0]", ""));
    assert!(error_at(
        &outcome,
        "spec.addresses[1]",
        "not an IP address or CIDR"
    ));
    assert!(error_at(&outcome, "spec.addresses[2]", "not a valid CIDR"));
}

#[test]
fn export_to_rules() {
    let dup = entry("  hosts: [a.example.com]\n  exportTo: [team-a, '.', foo, foo, Bad_NS]\n");
    assert!(error_at(
        &dup,
        "spec.exportTo[1]",
        "own namespace \"team-a\""
    ));
    assert!(error_at(
        &dup,
        "spec.exportTo[3]",
        "duplicate entries in exportTo"
    ));
    assert!(error_at(
        &dup,
        "spec.exportTo[4]",
        "not `.`, `*`, `~` or a namespace name"
    ));
    let star = entry("  hosts: [a.example.com]\n  exportTo: ['*', foo]\n");
    assert!(error_at(&star, "spec.exportTo", "cannot be combined"));
    let fine = entry("  hosts: [a.example.com]\n  exportTo: ['.', other]\n");
    assert!(fine.errors().is_empty(), "{:?}", fine.errors());
    assert_eq!(ExportTo::parse("."), Ok(ExportTo::OwnNamespace));
    assert_eq!(ExportTo::parse("*"), Ok(ExportTo::All));
}

#[test]
fn metadata_name_is_required_and_other_metadata_is_ignored() {
    let outcome = check_str(
        "apiVersion: networking.istio.io/v1beta1\nkind: ServiceEntry\nmetadata:\n  namespace: \
         x\n  uid: abc\n  resourceVersion: '7'\n  annotations: {a: b}\n  managedFields: [{}]\n\
         spec:\n  hosts: [a.example.com]\n",
    );
    assert!(error_at(
        &outcome,
        "metadata.name",
        "metadata.name is required"
    ));
    let bad = check_str(
        "apiVersion: networking.istio.io/v2\nkind: ServiceEntry\nmetadata: {name: a_b, \
         namespace: X}\nspec: {hosts: [a.example.com]}\n",
    );
    assert!(error_at(
        &bad,
        "apiVersion",
        "not a ServiceEntry API version"
    ));
    assert!(error_at(&bad, "metadata.name", "not a valid name"));
    assert!(error_at(
        &bad,
        "metadata.namespace",
        "not a valid namespace"
    ));
}

#[test]
fn unknown_spec_keys_are_parse_errors_with_their_path() {
    let Outcome::ParseError(err) =
        entry("  hosts: [a.example.com]\n  ports:\n  - {number: 1, name: a, protocl: TCP}\n")
    else {
        panic!("a misspelt key must not parse");
    };
    assert!(err.starts_with("spec.ports[0]"), "{err}");
    assert!(err.contains("protocl"), "{err}");
    let Outcome::ParseError(err) = entry("  hosts: [a.example.com]\n  resolution: dns\n") else {
        panic!("resolution names are case-sensitive like Istio's");
    };
    assert!(err.starts_with("spec.resolution"), "{err}");
}

#[test]
fn ignored_fields_and_tcp_ports_warn() {
    let outcome = entry(
        "  hosts: [a.example.com]\n  subjectAltNames: [sa]\n  ports:\n  - {number: 5432, name: \
         pg}\n  - {number: 53, name: dns, protocol: UDP}\n",
    );
    assert!(outcome.errors().is_empty(), "{:?}", outcome.errors());
    let warnings: Vec<&str> = outcome
        .findings()
        .iter()
        .filter(|f| !f.is_error())
        .map(|f| f.path.as_str())
        .collect();
    assert_eq!(
        warnings,
        [
            "spec.ports[0]",
            "spec.ports[1].protocol",
            "spec.subjectAltNames"
        ]
    );
}

#[test]
fn static_endpoints_and_unix_sockets() {
    let outcome = entry(
        "  hosts: [a.example.com]\n  ports: [{number: 443, name: https, protocol: HTTPS}]\n  \
         resolution: STATIC\n  endpoints:\n  - address: unix:///var/run/a.sock\n  - address: \
         10.1.1.1\n    ports: {https: 8443}\n    labels: {'bad key!': v}\n  - null\n  - {}\n",
    );
    assert!(!outcome
        .findings()
        .iter()
        .any(|f| f.path.starts_with("spec.endpoints[0]")));
    assert!(error_at(
        &outcome,
        "spec.endpoints[1].labels.bad key!",
        "endpoint label key \"bad key!\""
    ));
    assert!(error_at(
        &outcome,
        "spec.endpoints[2]",
        "must be an endpoint object"
    ));
    assert!(error_at(
        &outcome,
        "spec.endpoints[3]",
        "endpoint address is required"
    ));
}

#[test]
fn missing_spec_is_a_finding_not_a_parse_error() {
    let outcome = check_str(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: a}\nspec: null\n",
    );
    assert!(error_at(&outcome, "spec", "must have a spec"));
}
