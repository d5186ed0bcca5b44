//! Suggested ServiceEntry files: one per (namespace, registrable domain), made by serializing
//! typed documents with serde_yaml (never by pasting log text into YAML), with the evidence in a
//! comment whose every value is stripped of control characters. Each entry is exported to its
//! own namespace only, so it allows nothing for anyone else.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::SystemTime;

use serde::Serialize;

use super::group::{Destination, Protocol};
use crate::account::access_log::rfc3339;
use crate::names::Namespace;
use crate::observed::line::printable;
use crate::observed::{Flow, Seen};

/// Longest Kubernetes object name.
const MAX_NAME: usize = 63;
/// Flows quoted in one file's comment; the rest are counted.
const MAX_EVIDENCE: usize = 50;

/// One file to write.
#[derive(Debug)]
pub struct File {
    /// `namespace/domain.yaml`, relative to `--out`.
    pub path: PathBuf,
    /// The file's text.
    pub text: String,
    /// Every host written, in order.
    pub hosts: Vec<String>,
    /// Entries (documents) in it.
    pub entries: usize,
}

/// A destination with the flows that asked for it.
pub type Evidenced<'a> = (Destination, Vec<(&'a Flow, &'a Seen)>);

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Document<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata<'a>,
    spec: Spec<'a>,
}

#[derive(Serialize)]
struct Metadata<'a> {
    name: String,
    namespace: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Spec<'a> {
    hosts: Vec<&'a str>,
    export_to: [&'static str; 1],
    location: &'static str,
    resolution: &'static str,
    ports: Vec<Port>,
}

#[derive(Serialize)]
struct Port {
    number: u16,
    name: String,
    protocol: &'static str,
}

/// The file for `domain` in `namespace`; entry names are unique among `taken` (and added to it).
pub fn render(
    namespace: &Namespace,
    domain: &str,
    destinations: &[Evidenced<'_>],
    taken: &mut BTreeSet<String>,
) -> Result<File, String> {
    let mut by_ports: BTreeMap<Vec<(u16, Protocol)>, Vec<&Destination>> = BTreeMap::new();
    for (destination, _) in destinations {
        let ports = destination.ports.iter().map(|(p, k)| (*p, *k)).collect();
        by_ports.entry(ports).or_default().push(destination);
    }
    let mut documents = Vec::new();
    let mut hosts = Vec::new();
    for (ports, group) in &by_ports {
        for (resolution, entry_hosts) in entries_for(ports, group) {
            let document = Document {
                api_version: "networking.istio.io/v1",
                kind: "ServiceEntry",
                metadata: Metadata {
                    name: unique_name(domain, taken),
                    namespace: namespace.as_str(),
                },
                spec: Spec {
                    hosts: entry_hosts.clone(),
                    export_to: ["."],
                    location: "MESH_EXTERNAL",
                    resolution,
                    ports: ports
                        .iter()
                        .map(|(number, protocol)| Port {
                            number: *number,
                            name: format!("{}-{number}", protocol.as_str().to_ascii_lowercase()),
                            protocol: protocol.as_str(),
                        })
                        .collect(),
                },
            };
            hosts.extend(entry_hosts.iter().map(|h| (*h).to_owned()));
            documents.push(serde_yaml::to_string(&document).map_err(|e| e.to_string())?);
        }
    }
    Ok(File {
        path: PathBuf::from(namespace.as_str()).join(format!("{domain}.yaml")),
        text: comment(namespace, domain, destinations) + &documents.join("---\n"),
        hosts,
        entries: documents.len(),
    })
}

/// How the hosts sharing `ports` are split into entries, and each entry's resolution. Exact
/// names are `DNS`, the conventional Istio choice, which `plan` does not flag; a wildcard must be
/// `NONE`. On a TCP port nothing in the stream names the host, so several names there cannot
/// share a `DNS` entry: each gets its own. (The gateway treats both resolutions alike: it
/// resolves the name the tenant asked for and checks every answer against the deny list.)
fn entries_for<'d>(
    ports: &[(u16, Protocol)],
    group: &[&'d Destination],
) -> Vec<(&'static str, Vec<&'d str>)> {
    let (wildcards, exact): (Vec<&str>, Vec<&str>) = group
        .iter()
        .map(|d| d.host.as_str())
        .partition(|host| host.starts_with("*."));
    let opaque = ports.iter().any(|(_, protocol)| *protocol == Protocol::Tcp);
    let mut entries = Vec::new();
    if !wildcards.is_empty() {
        entries.push(("NONE", wildcards));
    }
    if opaque {
        entries.extend(exact.into_iter().map(|host| ("DNS", vec![host])));
    } else if !exact.is_empty() {
        entries.push(("DNS", exact));
    }
    entries
}

/// `suggested-<domain with dashes>`, cut to fit, with `-2`, `-3`... when already taken.
fn unique_name(domain: &str, taken: &mut BTreeSet<String>) -> String {
    let mut base = format!("suggested-{}", domain.replace('.', "-"));
    base.truncate(MAX_NAME - 4);
    let base = base.trim_end_matches('-').to_owned();
    let name = (1..)
        .map(|n| match n {
            1 => base.clone(),
            n => format!("{base}-{n}"),
        })
        .find(|name| !taken.contains(name))
        .unwrap_or(base);
    taken.insert(name.clone());
    name
}

/// The evidence: every flow behind the file, values made printable and one per line.
fn comment(namespace: &Namespace, domain: &str, destinations: &[Evidenced<'_>]) -> String {
    let flows: Vec<&(&Flow, &Seen)> = destinations.iter().flat_map(|(_, f)| f).collect();
    let first = flows.iter().map(|(_, s)| s.first).min();
    let last = flows.iter().map(|(_, s)| s.last).max();
    let when = |t: Option<SystemTime>| t.map(rfc3339).unwrap_or_default();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Suggested by `egress-gateway suggest` for namespace {namespace}, domain {domain}:\n\
         # {} flow(s) denied or audited in the access log, first seen {}, last seen {}.\n\
         # Review before merging. Evidence (listener host:port sni: count, first .. last, outcome):",
        flows.len(),
        when(first),
        when(last),
    );
    for (flow, seen) in flows.iter().take(MAX_EVIDENCE) {
        let _ = writeln!(
            out,
            "#   {} {}:{} sni {}: {}, {} .. {}, {} {}",
            printable(&flow.listener, 32),
            printable(&flow.host, 253),
            flow.port,
            printable(flow.sni.as_deref().unwrap_or("-"), 253),
            seen.count,
            rfc3339(seen.first),
            rfc3339(seen.last),
            printable(&seen.decision, 16),
            printable(&seen.reason, 32),
        );
    }
    if flows.len() > MAX_EVIDENCE {
        let _ = writeln!(out, "#   ... and {} more", flows.len() - MAX_EVIDENCE);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn destination(host: &str) -> Destination {
        Destination {
            host: host.to_owned(),
            names: BTreeSet::new(),
            ports: BTreeMap::new(),
        }
    }

    #[test]
    fn exact_names_are_dns_and_split_on_tcp_while_a_wildcard_is_none() {
        let (wild, api, www) = (
            destination("*.cdn.example.com"),
            destination("api.example.com"),
            destination("www.example.com"),
        );
        let group = [&wild, &api, &www];
        assert_eq!(
            entries_for(&[(443, Protocol::Tls)], &group),
            [
                ("NONE", vec!["*.cdn.example.com"]),
                ("DNS", vec!["api.example.com", "www.example.com"]),
            ]
        );
        assert_eq!(
            entries_for(&[(443, Protocol::Tls), (5432, Protocol::Tcp)], &group),
            [
                ("NONE", vec!["*.cdn.example.com"]),
                ("DNS", vec!["api.example.com"]),
                ("DNS", vec!["www.example.com"]),
            ]
        );
    }
}
