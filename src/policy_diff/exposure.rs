//! What each namespace may reach, read from the compiled policy: every (host pattern or address
//! prefix, port) written in either tree is put to `Policy::decide` of both trees, so the answer is
//! the one `run` and `explain` would give, and text-only edits (renamed files, reordered entries)
//! change nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use super::visibility::Views;
use crate::config::serviceentry::ServiceEntrySpec;
use crate::config::{LoadedConfig, SourcedEntry};
use crate::decide::Inspection;
use crate::names::{Host, HostPattern, Hostname, Namespace, Target};
use crate::plan::{self, Ask, Listener, Tenant, Verdict};
use crate::snapshot::Snapshot;

/// The pseudo-namespace standing for every namespace the trees do not name: it sees only the
/// entries exported to `*`.
pub const EVERY_OTHER_NAMESPACE: &str = "*";

/// The namespace that plays `*` (like the probe label, a name no real tree is expected to use).
const PROBE_NAMESPACE: &str = "plan-probe-namespace";

/// The label put in front of a wildcard's suffix to ask the policy about "some name under it".
const PROBE_LABEL: &str = "plan-probe-name";

/// One loaded and compiled config tree.
pub struct Tree {
    /// The config as read.
    pub loaded: LoadedConfig,
    /// The config as `run` would serve it.
    pub snapshot: Snapshot,
}

/// A destination written in an entry: a host pattern or an address prefix.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Destination {
    /// `api.example.com` or `*.example.com`.
    Host(String),
    /// `203.0.113.0/24`.
    Prefix(IpNet),
}

impl Destination {
    /// The destination as an operator writes it.
    pub fn display(&self) -> String {
        match self {
            Self::Host(pattern) => pattern.clone(),
            Self::Prefix(net) => net.to_string(),
        }
    }

    /// True for a `*.suffix` host.
    pub fn is_wildcard(&self) -> bool {
        matches!(self, Self::Host(pattern) if pattern.starts_with("*."))
    }

    /// The targets asked of the policy: the name itself, a name under a wildcard, or, for a
    /// prefix, every address in it where the answer can change (its first address and the
    /// first address in and after each prefix of `prefixes` inside it): the policy allows the
    /// whole prefix exactly when it allows all of these.
    fn probes(&self, port: u16, prefixes: &BTreeSet<IpNet>) -> Vec<Target> {
        let target = |host| Target { host, port };
        match self {
            Self::Host(pattern) => {
                let name = match pattern.strip_prefix("*.") {
                    Some(suffix) => Hostname::parse(&format!("{PROBE_LABEL}.{suffix}")),
                    None => Hostname::parse(pattern),
                };
                name.map(|name| vec![target(Host::Name(name))])
                    .unwrap_or_default()
            }
            Self::Prefix(net) => {
                let inside = prefixes.iter().filter(|inner| net.contains(*inner));
                let bounds = inside.flat_map(|inner| [Some(inner.network()), after(inner)]);
                let mut points: BTreeSet<IpAddr> =
                    bounds.flatten().filter(|ip| net.contains(ip)).collect();
                points.insert(net.network());
                points.into_iter().map(|ip| target(Host::Ip(ip))).collect()
            }
        }
    }
}

/// The first address after `net`, if there is one.
fn after(net: &IpNet) -> Option<IpAddr> {
    match net.broadcast() {
        IpAddr::V4(last) => u32::from(last)
            .checked_add(1)
            .map(|n| IpAddr::from(n.to_be_bytes())),
        IpAddr::V6(last) => u128::from(last)
            .checked_add(1)
            .map(|n| IpAddr::from(n.to_be_bytes())),
    }
}

/// One (destination, port, protocol) a namespace may reach, and the entry that allows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Exposure {
    /// Host pattern or address prefix.
    pub destination: String,
    /// Port number.
    pub port: u16,
    /// What the gateway inspects on that port: `TLS` (SNI), `HTTP` (Host header) or `TCP`.
    pub protocol: &'static str,
    /// `namespace/name` of the allowing entry in the tree where it is allowed.
    pub via: String,
}

/// What one namespace gains and loses.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ExposureChange {
    /// Reachable in head, not in base.
    pub opened: Vec<Exposure>,
    /// Reachable in base, not in head.
    pub closed: Vec<Exposure>,
}

/// The destinations an entry writes, parsed as `compile` parses them (the tree compiled, so
/// nothing here fails; anything unparsable is skipped).
pub fn destinations(spec: &ServiceEntrySpec) -> Vec<Destination> {
    let hosts = spec
        .hosts
        .iter()
        .filter_map(|raw| HostPattern::parse(raw).ok())
        .map(|pattern| Destination::Host(pattern.to_string()));
    let prefixes = spec.addresses.iter().filter_map(|raw| {
        raw.parse::<IpNet>()
            .ok()
            .or_else(|| raw.parse::<IpAddr>().ok().map(IpNet::from))
            .map(|net| Destination::Prefix(net.trunc()))
    });
    hosts.chain(prefixes).collect()
}

/// The port numbers an entry writes.
pub fn ports(spec: &ServiceEntrySpec) -> BTreeSet<u16> {
    spec.ports
        .iter()
        .flatten()
        .filter_map(|port| u16::try_from(port.number).ok())
        .collect()
}

/// Every namespace either tree names (owners, `exportTo` targets, enforcement and limit
/// overrides), plus [`EVERY_OTHER_NAMESPACE`].
pub fn namespaces(trees: [&Tree; 2]) -> BTreeSet<String> {
    let mut all = BTreeSet::from([EVERY_OTHER_NAMESPACE.to_owned()]);
    for tree in trees {
        let gateway = &tree.loaded.gateway;
        all.extend(gateway.enforcement.namespaces.keys().cloned());
        all.extend(gateway.limits.namespaces.keys().cloned());
        for sourced in &tree.loaded.entries {
            all.insert(sourced.namespace.as_str().to_owned());
            let export = sourced.entry.spec.iter().flat_map(|s| s.export_to.iter());
            all.extend(
                export
                    .filter(|raw| !matches!(raw.as_str(), "." | "*" | "~"))
                    .cloned(),
            );
        }
    }
    all
}

/// Every (destination, port) written in either tree: the questions put to both policies.
fn candidates(trees: [&Tree; 2]) -> BTreeSet<(Destination, u16)> {
    let specs = trees
        .into_iter()
        .flat_map(|tree| &tree.loaded.entries)
        .filter_map(|sourced| sourced.entry.spec.as_ref());
    written(specs)
}

/// Every (destination, port) the entries with these specs write.
fn written<'a>(specs: impl Iterator<Item = &'a ServiceEntrySpec>) -> BTreeSet<(Destination, u16)> {
    let mut all = BTreeSet::new();
    for spec in specs {
        let ports = ports(spec);
        for destination in destinations(spec) {
            all.extend(ports.iter().map(|port| (destination.clone(), *port)));
        }
    }
    all
}

/// The opened and closed exposure of every namespace that changed. A namespace is asked only
/// about what the entries it sees (in either tree) write: a wildcard it gains is one opened row,
/// not one per name other namespaces happen to write under it.
pub fn diff(base: &Tree, head: &Tree) -> BTreeMap<String, ExposureChange> {
    let questions = candidates([base, head]);
    let prefixes: BTreeSet<IpNet> = questions
        .iter()
        .filter_map(|(destination, _)| match destination {
            Destination::Prefix(net) => Some(*net),
            Destination::Host(_) => None,
        })
        .collect();
    let probes: BTreeMap<&(Destination, u16), Vec<Target>> = questions
        .iter()
        .map(|question| (question, question.0.probes(question.1, &prefixes)))
        .collect();
    let (base_views, head_views) = (Views::new(base), Views::new(head));
    let mut changes = BTreeMap::new();
    for namespace in namespaces([base, head]) {
        if base_views.same_for(&head_views, &namespace) {
            continue;
        }
        let mut change = ExposureChange::default();
        let seen = base_views
            .visible(&namespace)
            .chain(head_views.visible(&namespace));
        for question in written(seen) {
            let (destination, port) = &question;
            let Some(targets) = probes.get(&question).filter(|t| !t.is_empty()) else {
                continue;
            };
            let before = reach(&base.snapshot, &namespace, targets);
            let after = reach(&head.snapshot, &namespace, targets);
            let exposure = |(protocol, via): (&'static str, String)| Exposure {
                destination: destination.display(),
                port: *port,
                protocol,
                via,
            };
            match (before, after) {
                (Some(old), Some(new)) if old.0 == new.0 => {}
                (old, new) => {
                    change.closed.extend(old.map(exposure));
                    change.opened.extend(new.map(exposure));
                }
            }
        }
        if !change.opened.is_empty() || !change.closed.is_empty() {
            changes.insert(namespace, change);
        }
    }
    changes
}

/// The protocol and allowing entry (those of the first target) when `namespace`'s `CONNECT`s to
/// every one of `targets` are allowed, asked of the planner exactly as the connect listener asks.
fn reach(
    snapshot: &Snapshot,
    namespace: &str,
    targets: &[Target],
) -> Option<(&'static str, String)> {
    let tenant = Tenant::assumed(probe_namespace(namespace)?);
    let mut first = None;
    for target in targets {
        let plan = plan::plan(snapshot, &tenant, Listener::Connect, &Ask::Connect(target));
        if plan.decision.verdict != Verdict::Allow {
            return None;
        }
        if first.is_none() {
            let protocol = match plan.decision.inspection() {
                Inspection::Sni => "TLS",
                Inspection::HostHeader => "HTTP",
                Inspection::Opaque => "TCP",
            };
            first = Some((protocol, plan.decision.rule?.label.to_string()));
        }
    }
    first
}

/// The tenant a namespace key stands for; `*` (every other namespace) is played by a namespace
/// no tree names, since it sees exactly what such a namespace sees.
fn probe_namespace(namespace: &str) -> Option<Namespace> {
    let name = match namespace {
        EVERY_OTHER_NAMESPACE => PROBE_NAMESPACE,
        named => named,
    };
    Namespace::parse(name).ok()
}

/// `namespace/name`.
pub fn label(sourced: &SourcedEntry) -> String {
    format!("{}/{}", sourced.namespace, sourced.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(raw: &str) -> IpNet {
        raw.parse().expect("prefix")
    }

    fn probed(destination: &Destination, prefixes: &[&str]) -> Vec<String> {
        let prefixes = prefixes.iter().map(|p| net(p)).collect();
        destination
            .probes(443, &prefixes)
            .iter()
            .map(|t| t.host.to_string())
            .collect()
    }

    #[test]
    fn a_prefix_is_probed_at_every_boundary_inside_it() {
        let wide = Destination::Prefix(net("198.51.100.0/24"));
        let probes = probed(
            &wide,
            &["198.51.100.0/24", "198.51.100.64/26", "203.0.113.0/24"],
        );
        assert_eq!(probes, ["198.51.100.0", "198.51.100.64", "198.51.100.128"]);
    }

    #[test]
    fn a_wildcard_is_probed_with_a_name_under_it_and_the_last_prefix_has_no_successor() {
        let wildcard = Destination::Host("*.example.com".to_owned());
        assert_eq!(
            probed(&wildcard, &[]),
            [format!("{PROBE_LABEL}.example.com")]
        );
        assert_eq!(after(&net("255.255.255.0/24")), None);
        assert_eq!(after(&net("ffff::/16")), None);
        assert_eq!(
            after(&net("2001:db8::/32")),
            Some("2001:db9::".parse().expect("ip"))
        );
    }
}
