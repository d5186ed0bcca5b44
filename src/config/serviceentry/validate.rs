//! istiod's `ValidateServiceEntry` rules (plus the CRD schema rules the API server enforces), as
//! one pure function that reports every finding at once.
//!
//! Each finding names the rule, the bad value and a hint, and points at the offending field with a
//! `serde_path_to_error`-style path. Warnings cover what Istio warns about and what the egress
//! gateway accepts but ignores. Nothing here compiles policy or touches files.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use super::wire::{
    ExportTo, Location, Protocol, Resolution, ServiceEntry, ServiceEntrySpec, ServicePort,
    WorkloadEntry, WorkloadSelector,
};
use super::{Finding, Severity};
use crate::names::{HostPattern, Hostname, NameError, Namespace};

/// The API versions that share the ServiceEntry schema.
const API_VERSIONS: [&str; 3] = [
    "networking.istio.io/v1",
    "networking.istio.io/v1beta1",
    "networking.istio.io/v1alpha3",
];
/// The metadata label binding an entry to an ambient waypoint.
const USE_WAYPOINT_LABEL: &str = "istio.io/use-waypoint";
/// The prefix of a unix domain socket endpoint address.
const UNIX_PREFIX: &str = "unix://";
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

/// `apiVersion`, `kind` and `metadata`.
fn check_header(se: &ServiceEntry, out: &mut Findings) {
    if !API_VERSIONS.contains(&se.api_version.as_str()) {
        out.error(
            "apiVersion",
            format!(
                "apiVersion {:?} is not a ServiceEntry API version; use one of {}",
                se.api_version,
                API_VERSIONS.join(", ")
            ),
        );
    }
    if se.kind != "ServiceEntry" {
        out.error("kind", format!("kind {:?} is not ServiceEntry", se.kind));
    }
    match se.metadata.name.as_deref() {
        None | Some("") => out.error(
            "metadata.name",
            "metadata.name is required: every ServiceEntry needs a name, unique in its namespace",
        ),
        Some(name) => check_object_name(name, out),
    }
    if let Some(ns) = se.metadata.namespace.as_deref() {
        if let Err(message) = Namespace::parse(ns) {
            out.error(
                "metadata.namespace",
                format!("metadata.namespace {message}"),
            );
        }
    }
}

/// A Kubernetes object name is a DNS-1123 subdomain. Upper case is only warned about: Istio's own
/// test data uses it and istiod does not check names (the API server would refuse them).
fn check_object_name(name: &str, out: &mut Findings) {
    let lower = name.to_ascii_lowercase();
    let valid = lower.len() <= MAX_OBJECT_NAME_LEN
        && lower
            .split('.')
            .all(|label| is_dns1123_label(label) && !label.bytes().any(|b| b.is_ascii_uppercase()));
    if !valid {
        out.error(
            "metadata.name",
            format!(
                "metadata.name {name:?} is not a valid name: use lowercase letters, digits, '-' and \
                 '.', starting and ending with a letter or digit, at most {MAX_OBJECT_NAME_LEN}"
            ),
        );
    } else if lower != name {
        out.warn(
            "metadata.name",
            format!(
                "metadata.name {name:?} has upper-case letters, which Kubernetes refuses; \
                 did you mean {lower:?}?"
            ),
        );
    }
}

fn check_spec(se: &ServiceEntry, spec: &ServiceEntrySpec, out: &mut Findings) {
    let resolution = spec.resolution();
    let hosts = check_hosts(spec, out);
    check_addresses(spec, resolution, out);
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

/// `spec.hosts`: required, DNS names or `*.suffix`, no bare `*`, no partial wildcards, no IPs.
fn check_hosts(spec: &ServiceEntrySpec, out: &mut Findings) -> Vec<HostKind> {
    if spec.hosts.is_empty() {
        out.error(
            "spec.hosts",
            "spec.hosts is required: list at least one host name (e.g. `api.example.com` or \
             `*.example.com`)",
        );
    }
    spec.hosts
        .iter()
        .enumerate()
        .map(|(i, host)| match parse_host(host) {
            Ok(pattern) if pattern.is_wildcard() => HostKind::Wildcard,
            Ok(_) => HostKind::Exact,
            Err(message) => {
                out.error(format!("spec.hosts[{i}]"), message);
                HostKind::Invalid
            }
        })
        .collect()
}

/// One host, with a message naming the rule it breaks.
fn parse_host(raw: &str) -> Result<HostPattern, String> {
    let unbracketed = raw
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(raw);
    if unbracketed.parse::<IpAddr>().is_ok() {
        return Err(format!(
            "host {raw:?} is an IP address: hosts must be DNS names; put IP addresses in \
             spec.addresses"
        ));
    }
    match HostPattern::parse(raw) {
        Ok(pattern) => {
            let name = match &pattern {
                HostPattern::Exact(name) | HostPattern::Wildcard(name) => name.as_str(),
            };
            match all_numeric_tld(name) {
                Some(tld) => Err(format!(
                    "host {raw:?}: the last label {tld:?} is all digits, which is not a valid \
                     top-level domain"
                )),
                None => Ok(pattern),
            }
        }
        Err(NameError::BareWildcard) => Err(format!(
            "host {raw:?} would allow every destination: a bare `*` is not allowed; list the \
             domains instead (e.g. `*.example.com`)"
        )),
        Err(NameError::PartialWildcard(_)) => Err(partial_wildcard_message(raw)),
        Err(err) => Err(format!("host {raw:?} is not a valid DNS name: {err}")),
    }
}

fn partial_wildcard_message(raw: &str) -> String {
    match raw.strip_prefix('*') {
        Some(rest) if !rest.contains('*') => {
            let suffix = rest.trim_start_matches('.');
            format!(
                "host {raw:?}: wildcards are allowed only as the whole leftmost label (did you \
                 mean `*.{suffix}`?); Istio only warns about this partial wildcard, but the gateway \
                 refuses it because it cannot tell which names it is meant to allow"
            )
        }
        _ => format!(
            "host {raw:?}: wildcards are allowed only as the whole leftmost label, as in \
             `*.example.com`"
        ),
    }
}

/// Istio refuses names whose top-level label is all digits (it would look like an IP).
fn all_numeric_tld(name: &str) -> Option<&str> {
    let tld = name.rsplit('.').next().unwrap_or(name);
    (!tld.is_empty() && tld.bytes().all(|b| b.is_ascii_digit())).then_some(tld)
}

/// `spec.addresses`: IPs or CIDRs; CIDRs only with NONE/STATIC.
fn check_addresses(spec: &ServiceEntrySpec, resolution: Resolution, out: &mut Findings) {
    let mut cidr_reported = false;
    for (i, address) in spec.addresses.iter().enumerate() {
        let path = format!("spec.addresses[{i}]");
        if address.contains('/') {
            if address.parse::<ipnet::IpNet>().is_err() {
                out.error(
                    &path,
                    format!(
                        "address {address:?} is not a valid CIDR block (e.g. `10.0.0.0/24` or \
                         `2001:db8::/64`)"
                    ),
                );
            } else if !cidr_reported && !matches!(resolution, Resolution::None | Resolution::Static)
            {
                cidr_reported = true;
                out.error(
                    &path,
                    format!(
                        "CIDR addresses are allowed only for NONE/STATIC resolution types, but \
                         {address:?} is used with resolution {resolution}; list single IPs or \
                         change the resolution"
                    ),
                );
            }
        } else if address.parse::<IpAddr>().is_err() {
            out.error(
                path,
                format!(
                    "address {address:?} is not an IP address or CIDR block; host names belong in \
                     spec.hosts"
                ),
            );
        }
    }
}

/// `spec.ports`: no nulls, names required and unique, numbers unique and in range, known
/// protocols. Returns the non-null ports with their index and parsed protocol.
fn check_ports<'a>(
    spec: &'a ServiceEntrySpec,
    resolution: Resolution,
    out: &mut Findings,
) -> Vec<(usize, &'a ServicePort, Option<Protocol>)> {
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut numbers: HashMap<u32, usize> = HashMap::new();
    let mut ports = Vec::with_capacity(spec.ports.len());
    for (i, port) in spec.ports.iter().enumerate() {
        let base = format!("spec.ports[{i}]");
        let Some(port) = port else {
            out.error(
                base,
                "every element of ports must be a port object (found null); give `number`, \
                 `name` and `protocol` or remove the element",
            );
            continue;
        };
        let number = port.number;

        match port.name.as_deref() {
            None | Some("") => out.error(
                &base,
                format!(
                    "port {number} has no name: every port needs a name (a DNS label such as \
                     `http` or `https`)"
                ),
            ),
            Some(name) if !is_dns1123_label(name) => out.error(
                format!("{base}.name"),
                format!(
                    "port name {name:?} is not a DNS label: use letters, digits and '-', at most \
                     {MAX_LABEL_LEN}, starting and ending with a letter or digit"
                ),
            ),
            Some(name) => {
                if let Some(first) = names.insert(name, i) {
                    names.insert(name, first);
                    out.error(
                        format!("{base}.name"),
                        format!(
                            "port name {name:?} is already used by spec.ports[{first}]: port \
                             names must be unique"
                        ),
                    );
                }
            }
        }

        if !(1..=65535).contains(&number) {
            out.error(
                format!("{base}.number"),
                format!("port {number} is outside 1-65535"),
            );
        } else if let Some(first) = numbers.insert(number, i) {
            numbers.insert(number, first);
            out.error(
                format!("{base}.number"),
                format!(
                    "port {number} is already declared by spec.ports[{first}]: port numbers must \
                     be unique"
                ),
            );
        }

        if let Some(target) = port.target_port {
            if !(1..=65535).contains(&target) {
                out.error(
                    format!("{base}.targetPort"),
                    format!("targetPort {target} is outside 1-65535"),
                );
            } else if resolution == Resolution::None {
                out.warn(
                    format!("{base}.targetPort"),
                    format!(
                        "targetPort {target} has no effect with resolution NONE: the gateway dials \
                         the port the client asked for"
                    ),
                );
            }
        }

        let protocol = match port.protocol() {
            Ok(protocol) => Some(protocol),
            Err(raw) => {
                let known: Vec<&str> = Protocol::ALL.iter().map(|p| p.as_str()).collect();
                out.error(
                    format!("{base}.protocol"),
                    format!(
                        "unrecognized protocol {raw:?} on port {number}; use one of {} (any case), \
                         or leave it out for TCP",
                        known.join(", ")
                    ),
                );
                None
            }
        };
        let protocol_path = if port.protocol.is_some() {
            format!("{base}.protocol")
        } else {
            base.clone()
        };
        let number_valid = (1..=65535).contains(&number);
        if number_valid && protocol == Some(Protocol::Tcp) && spec.addresses.is_empty() {
            out.warn(
                &protocol_path,
                format!(
                    "port {number} is TCP (protocol {}) and the entry has no addresses: Istio \
                     matches such a port by number alone, which may capture all traffic on port \
                     {number}; the gateway checks only the CONNECT target on it, not the bytes",
                    port.protocol
                        .as_deref()
                        .filter(|p| !p.is_empty())
                        .unwrap_or("unset")
                ),
            );
        }
        if protocol == Some(Protocol::Udp) {
            out.warn(
                protocol_path,
                format!(
                    "port {number} is UDP, which the egress gateway does not proxy; it is ignored"
                ),
            );
        }
        ports.push((i, port, protocol));
    }
    ports
}

/// Endpoints of STATIC, DNS and DNS_ROUND_ROBIN entries.
fn check_endpoints(
    spec: &ServiceEntrySpec,
    resolution: Resolution,
    declared: &BTreeSet<&str>,
    out: &mut Findings,
) {
    for (i, endpoint) in spec.endpoints.iter().enumerate() {
        let base = format!("spec.endpoints[{i}]");
        match endpoint {
            None => out.error(
                base,
                "every element of endpoints must be an endpoint object (found null); give an \
                 `address` or remove the element",
            ),
            Some(endpoint) => check_endpoint(&base, endpoint, resolution, declared, out),
        }
    }
}

fn check_endpoint(
    base: &str,
    endpoint: &WorkloadEntry,
    resolution: Resolution,
    declared: &BTreeSet<&str>,
    out: &mut Findings,
) {
    let address = endpoint.address.as_deref().unwrap_or("");
    let address_path = if endpoint.address.is_some() {
        format!("{base}.address")
    } else {
        base.to_owned()
    };
    let network = endpoint.network.as_deref().unwrap_or("");

    if address.is_empty() {
        if resolution == Resolution::Static && !network.is_empty() {
            out.warn(
                address_path,
                format!(
                    "endpoint has network {network:?} but no address: Istio reaches it through \
                     that network's gateway; the egress gateway has no address to dial and skips it"
                ),
            );
        } else {
            out.error(
                address_path,
                format!(
                    "endpoint address is required with resolution {resolution} (an IP{})",
                    if resolution == Resolution::Static {
                        " or unix:///absolute/path"
                    } else {
                        " or a resolvable host name"
                    }
                ),
            );
        }
    } else if let Some(path) = address.strip_prefix(UNIX_PREFIX) {
        if resolution != Resolution::Static {
            out.error(
                &address_path,
                format!(
                    "endpoint {address:?} is a unix socket, which only resolution STATIC can use; \
                     resolution {resolution} needs a host name or IP"
                ),
            );
        } else {
            if let Err(message) = check_unix_path(path) {
                out.error(&address_path, format!("endpoint {address:?}: {message}"));
            }
            if !endpoint.ports.is_empty() {
                out.error(
                    format!("{base}.ports"),
                    format!(
                        "unix socket endpoint {address:?} must not have a ports map: a socket has \
                         no port"
                    ),
                );
            }
            if declared.len() != 1 {
                out.error(
                    &address_path,
                    format!(
                        "a unix socket endpoint needs exactly one service port in spec.ports \
                         (found {}): every port would reach the same socket",
                        declared.len()
                    ),
                );
            }
        }
    } else if address.parse::<IpAddr>().is_err() {
        match resolution {
            Resolution::Static => out.error(
                address_path,
                format!(
                    "with resolution STATIC every endpoint address must be an IP address or \
                     unix:///absolute/path, not {address:?}; use resolution DNS to resolve host \
                     names"
                ),
            ),
            _ => {
                if let Err(message) = check_endpoint_name(address, resolution) {
                    out.error(address_path, message);
                }
            }
        }
    }

    let ports_path = format!("{base}.ports");
    for (name, number) in &endpoint.ports {
        let path = key_path(&ports_path, name);
        if !declared.contains(name.as_str()) {
            let list: Vec<&str> = declared.iter().copied().filter(|n| !n.is_empty()).collect();
            out.error(
                &path,
                format!(
                    "endpoint port name {name:?} is not declared in spec.ports (declared: {}); \
                     the ports map goes from a spec port name to this endpoint's port number",
                    if list.is_empty() {
                        "none".to_owned()
                    } else {
                        list.join(", ")
                    }
                ),
            );
        }
        if !(1..=65535).contains(number) {
            out.error(
                path,
                format!("endpoint port {number} (for {name:?}) is outside 1-65535"),
            );
        }
    }
    check_labels(
        &format!("{base}.labels"),
        &endpoint.labels,
        "endpoint label",
        out,
    );
}

/// A DNS endpoint must be a concrete, resolvable name.
fn check_endpoint_name(address: &str, resolution: Resolution) -> Result<(), String> {
    if address.contains('*') {
        return Err(format!(
            "endpoint address {address:?} is a wildcard: resolution {resolution} must resolve each \
             endpoint, so name a concrete host or IP"
        ));
    }
    let name = Hostname::parse(address).map_err(|err| {
        format!("endpoint address {address:?} is not a valid host name or IP address: {err}")
    })?;
    match all_numeric_tld(name.as_str()) {
        Some(tld) => Err(format!(
            "endpoint address {address:?} is not a valid host name or IP address: the last label \
             {tld:?} is all digits"
        )),
        None => Ok(()),
    }
}

/// Istio's `ValidateUnixAddress`: an absolute file path, or an abstract socket `@name`.
fn check_unix_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        Err("the unix socket path is empty (use unix:///path/to/socket)".to_owned())
    } else if path.starts_with('@') {
        Ok(())
    } else if !path.starts_with('/') || path.ends_with('/') {
        Err(format!(
            "unix socket path {path:?} must be an absolute path to a file (unix:///path/to/socket)"
        ))
    } else {
        Ok(())
    }
}

/// DYNAMIC_DNS: wildcard hosts only, no endpoints, no addresses, request-level protocols only.
fn check_dynamic_dns(
    se: &ServiceEntry,
    spec: &ServiceEntrySpec,
    hosts: &[HostKind],
    ports: &[(usize, &ServicePort, Option<Protocol>)],
    out: &mut Findings,
) {
    for (i, host) in spec.hosts.iter().enumerate() {
        if hosts[i] == HostKind::Exact {
            out.error(
                format!("spec.hosts[{i}]"),
                format!(
                    "resolution DYNAMIC_DNS is for wildcard hosts only, but {host:?} is a plain \
                     name; use resolution DNS for it"
                ),
            );
        }
    }
    if !spec.endpoints.is_empty() {
        out.error(
            "spec.endpoints",
            "resolution DYNAMIC_DNS resolves the requested name at request time, so endpoints \
             must not be listed",
        );
    }
    if !spec.addresses.is_empty() {
        out.error(
            "spec.addresses",
            "resolution DYNAMIC_DNS cannot have addresses: the name is only known per request",
        );
    }
    for (i, port, protocol) in ports {
        let Some(protocol) = protocol else { continue };
        if !matches!(
            protocol,
            Protocol::Http | Protocol::Tls | Protocol::Grpc | Protocol::Http2
        ) {
            let path = if port.protocol.is_some() {
                format!("spec.ports[{i}].protocol")
            } else {
                format!("spec.ports[{i}]")
            };
            out.error(
                path,
                format!(
                    "resolution DYNAMIC_DNS supports only HTTP, TLS, GRPC and HTTP2 ports (the \
                     name must be known per request), but port {} is {protocol}",
                    port.number
                ),
            );
        }
    }
    if se.metadata.labels.contains_key(USE_WAYPOINT_LABEL)
        && spec.location() == Location::MeshInternal
    {
        out.error(
            "spec.location",
            format!(
                "a DYNAMIC_DNS entry bound to a waypoint (label {USE_WAYPOINT_LABEL}) must have \
                 location MESH_EXTERNAL, not MESH_INTERNAL"
            ),
        );
    }
}

/// Several hosts with a port that carries no host name: only NONE can tell them apart.
fn check_multi_host_ports(
    spec: &ServiceEntrySpec,
    resolution: Resolution,
    ports: &[(usize, &ServicePort, Option<Protocol>)],
    out: &mut Findings,
) {
    if resolution == Resolution::None || spec.hosts.len() < 2 {
        return;
    }
    let offending = ports
        .iter()
        .find(|(_, _, p)| p.is_some_and(|p| !p.is_http() && !p.is_tls()));
    if let Some((i, port, protocol)) = offending {
        let path = if port.protocol.is_some() {
            format!("spec.ports[{i}].protocol")
        } else {
            format!("spec.ports[{i}]")
        };
        out.error(
            path,
            format!(
                "multiple hosts provided with non-HTTP, non-TLS ports: port {} ({}) carries no \
                 host name, so the {} hosts cannot be told apart with resolution {resolution}; use \
                 one host per ServiceEntry or resolution NONE",
                port.number,
                protocol.map_or("TCP", Protocol::as_str),
                spec.hosts.len()
            ),
        );
    }
}

/// `spec.workloadSelector`: exclusive with endpoints, valid non-wildcard labels; ignored here.
fn check_selector(
    spec: &ServiceEntrySpec,
    selector: &WorkloadSelector,
    resolution: Resolution,
    out: &mut Findings,
) {
    let path = "spec.workloadSelector";
    if !spec.endpoints.is_empty() {
        out.error(
            path,
            "only one of workloadSelector or endpoints can be set: they are mutually exclusive ways \
             to name the backends; keep endpoints (the gateway ignores workloadSelector)",
        );
    }
    let labels_path = format!("{path}.labels");
    match &selector.labels {
        Some(labels) if !labels.is_empty() => {
            for (key, value) in labels {
                let key_at = key_path(&labels_path, key);
                if key.is_empty() {
                    out.error(
                        &key_at,
                        format!("empty key is not supported in selector (value {value:?})"),
                    );
                } else if key.contains('*') || value.contains('*') {
                    out.error(
                        &key_at,
                        format!(
                            "wildcard is not supported in selector: {key}={value}; selectors match \
                             exact label values"
                        ),
                    );
                }
            }
            let valid: std::collections::BTreeMap<String, String> = labels
                .iter()
                .filter(|(k, v)| !k.is_empty() && !k.contains('*') && !v.contains('*'))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            check_labels(&labels_path, &valid, "selector label", out);
        }
        _ => out.warn(
            path,
            "workloadSelector has no labels: Istio would apply the entry to every workload in the \
             namespace",
        ),
    }
    if matches!(
        resolution,
        Resolution::None | Resolution::Dns | Resolution::DnsRoundRobin
    ) {
        out.warn(
            path,
            format!("workloadSelector should not be set when resolution is {resolution}"),
        );
    }
    out.warn(
        path,
        "workloadSelector is ignored by the egress gateway: it selects in-mesh workloads, which \
         the gateway never dials",
    );
}

/// Kubernetes label rules (Istio's `labels.Instance.Validate`).
fn check_labels(
    path: &str,
    labels: &std::collections::BTreeMap<String, String>,
    what: &str,
    out: &mut Findings,
) {
    for (key, value) in labels {
        let at = key_path(path, key);
        if let Err(message) = check_label_key(key) {
            out.error(&at, format!("{what} key {key:?} is invalid: {message}"));
        }
        if !(value.is_empty() || is_qualified_name(value)) {
            out.error(
                at,
                format!(
                    "{what} value {value:?} (key {key:?}) is invalid: use letters, digits, '-', \
                     '_' and '.', at most {MAX_LABEL_LEN}, starting and ending with a letter or \
                     digit"
                ),
            );
        }
    }
}

fn check_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if prefix.len() > MAX_OBJECT_NAME_LEN || !prefix.split('.').all(is_dns1123_label) {
            return Err(format!(
                "prefix {prefix:?} must be a DNS name, as in `example.com/key`"
            ));
        }
    }
    if !is_qualified_name(name) {
        return Err(format!(
            "name {name:?} must use letters, digits, '-', '_' and '.', at most {MAX_LABEL_LEN}, \
             starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// `spec.exportTo`: `.`, `*`, `~` or namespace names; no duplicates; `*` and `~` stand alone.
fn check_export_to(se: &ServiceEntry, spec: &ServiceEntrySpec, out: &mut Findings) {
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

/// Kubernetes qualified name (label-key name part, label value): alphanumeric at both ends,
/// `-`, `_` and `.` inside, at most 63.
fn is_qualified_name(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_LABEL_LEN
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}
