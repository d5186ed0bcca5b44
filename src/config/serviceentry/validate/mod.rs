//! istiod's `ValidateServiceEntry` rules (plus the CRD schema rules the API server enforces), as
//! one pure function that reports every finding at once.
//!
//! Each finding names the rule, the bad value and a hint, and points at the offending field with a
//! `serde_path_to_error`-style path. Warnings cover what Istio warns about and what the egress
//! gateway accepts but ignores. Nothing here compiles policy or touches files.
//!
//! This file owns [`validate`], the order in which the rule families run (`check_spec`, including
//! the rules that tie resolution to hosts, endpoints and addresses), the findings accumulator and
//! the name/path helpers several families share. Each rule family lives in its own submodule and
//! must only push findings, never decide which other families run.

mod dynamic_dns;
mod endpoints;
mod export;
mod hosts;
mod metadata;
mod ports;
mod selector;
mod trusted_addresses;

use std::collections::BTreeSet;

use super::wire::{Protocol, Resolution, ServiceEntry, ServiceEntrySpec};
use super::{Finding, Severity};
use dynamic_dns::check_dynamic_dns;
use endpoints::check_endpoints;
use export::check_export_to;
use hosts::{check_addresses, check_hosts};
use metadata::check_header;
use ports::{check_multi_host_ports, check_ports};
use selector::check_selector;
use trusted_addresses::check_trusted_addresses;

/// Longest Kubernetes object name (DNS-1123 subdomain).
const MAX_OBJECT_NAME_LEN: usize = 253;
/// Longest DNS-1123 label, label-key name part or label value.
const MAX_LABEL_LEN: usize = 63;

/// Checks one ServiceEntry against istiod's rules and returns every finding (errors and warnings),
/// in document order as far as possible. An empty result means the entry is clean.
pub fn validate(se: &ServiceEntry) -> Vec<Finding> {
    let mut out = Findings::default();
    check_header(se, &mut out);
    match &se.spec {
        None => out.error(
            "spec",
            "the object must have a spec (at least `spec.hosts` and `spec.ports`)",
        ),
        Some(spec) => check_spec(se, spec, &mut out),
    }
    out.0
}

/// Accumulates findings; keeps the call sites short.
#[derive(Default)]
struct Findings(Vec<Finding>);

impl Findings {
    fn push(&mut self, severity: Severity, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Finding {
            severity,
            path: path.into(),
            message: message.into(),
        });
    }

    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.push(Severity::Error, path, message);
    }

    fn warn(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.push(Severity::Warning, path, message);
    }
}

/// What a host turned out to be, so later rules do not re-report a broken host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HostKind {
    Exact,
    Wildcard,
    Invalid,
}

fn check_spec(se: &ServiceEntry, spec: &ServiceEntrySpec, out: &mut Findings) {
    let resolution = spec.resolution();
    let hosts = check_hosts(spec, out);
    check_addresses(spec, resolution, out);
    check_trusted_addresses(spec, out);
    let ports = check_ports(spec, resolution, out);
    let declared: BTreeSet<&str> = ports
        .iter()
        .map(|(_, port, _)| port.name.as_deref().unwrap_or(""))
        .collect();

    match resolution {
        Resolution::None => {
            if !spec.endpoints.is_empty() {
                out.error(
                    "spec.endpoints",
                    "resolution NONE passes traffic to the destination the client asked for, so \
                     endpoints must not be listed; use resolution STATIC or DNS to dial endpoints, \
                     or remove them",
                );
            }
        }
        Resolution::Static | Resolution::Dns | Resolution::DnsRoundRobin => {
            check_endpoints(spec, resolution, &declared, out);
        }
        Resolution::DynamicDns => check_dynamic_dns(se, spec, &hosts, &ports, out),
    }

    if matches!(resolution, Resolution::Dns | Resolution::DnsRoundRobin) {
        if spec.endpoints.is_empty() {
            for (i, host) in spec.hosts.iter().enumerate() {
                if hosts[i] == HostKind::Wildcard {
                    out.error(
                        format!("spec.hosts[{i}]"),
                        format!(
                            "resolution {resolution} with a wildcard host needs endpoints: the \
                             wildcard itself ({host:?}) cannot be resolved; use resolution NONE or \
                             list endpoints"
                        ),
                    );
                }
            }
        }
        if spec.endpoints.len() > 1 && resolution == Resolution::DnsRoundRobin {
            out.error(
                "spec.endpoints",
                format!(
                    "resolution DNS_ROUND_ROBIN allows at most one endpoint (found {}); use \
                     resolution DNS to balance over several",
                    spec.endpoints.len()
                ),
            );
        }
        if !spec.addresses.is_empty() && spec.hosts.len() > 1 {
            if let Some((i, port, protocol)) = ports
                .iter()
                .find(|(_, _, p)| p.is_some_and(Protocol::is_tcp))
            {
                out.warn(
                    format!("spec.ports[{i}]"),
                    format!(
                        "several hosts share spec.addresses while port {} is {}: a TCP listener \
                         on those addresses cannot tell the hosts apart; use one host per \
                         ServiceEntry",
                        port.number,
                        protocol.map_or("TCP", Protocol::as_str)
                    ),
                );
            }
        }
    }

    check_multi_host_ports(spec, resolution, &ports, out);
    if let Some(selector) = &spec.workload_selector {
        check_selector(spec, selector, resolution, out);
    }
    if !spec.subject_alt_names.is_empty() {
        out.warn(
            "spec.subjectAltNames",
            "subjectAltNames is ignored by the egress gateway: it does not terminate upstream TLS, \
             so the client verifies the server certificate itself",
        );
    }
    check_export_to(se, spec, out);
}

/// Appends a map key to a path the loader's locator can split on dots; keys it could not split
/// (empty, or containing `.`, `[` or `]`) leave the path at the enclosing map.
fn key_path(base: &str, key: &str) -> String {
    if key.is_empty() || key.contains(['.', '[', ']']) {
        base.to_owned()
    } else {
        format!("{base}.{key}")
    }
}

/// Istio's `IsDNS1123Label`: letters (either case), digits and '-', alphanumeric at both ends.
fn is_dns1123_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_LABEL_LEN
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}
