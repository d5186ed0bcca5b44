//! Focused cases for the validation rules the corpus does not reach.

use super::*;

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
