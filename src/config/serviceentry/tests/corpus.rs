//! The corpus walks: every invalid file is refused for its rule, every accepted document passes,
//! every warning file warns; with the keyword tables that tie each file to its rule.

use std::fs;
use std::path::Path;

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
/// wildcard case is refused here (docs/serviceentries.md), so its keyword is an error's.
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
/// reject the first three too; the partial wildcard is refused by docs/serviceentries.md.
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
