//! Changes that widen what tenants can reach in ways a reviewer should look at twice: wider
//! wildcards, wider `exportTo`, opaque TCP by name, trusted addresses in ranges the SSRF guard
//! refuses, `resolution: NONE`, audit mode, raised limits and `upstream.allow_cidrs` holes.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use super::exposure::{label, ExposureChange, Tree};
use super::visibility::{visibility, Visible};
use crate::config::gateway::Mode;
use crate::config::serviceentry::{Inspection, Resolution, ServiceEntrySpec};
use crate::config::SourcedEntry;
use crate::decide::address::forbidden_ranges_within;
use crate::names::Namespace;

/// One risky change.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Risk {
    /// Stable class name: `wildcard`, `export_widened`, `tcp_without_addresses`,
    /// `trusted_private_address`, `resolution_none`, `audit_mode`, `limit_raised`,
    /// `allow_cidrs`.
    pub kind: &'static str,
    /// `namespace/name` of the entry responsible, when one is.
    pub entry: Option<String>,
    /// What changed, in words.
    pub detail: String,
}

/// The base tree's entries by `namespace/name`, to find what a head entry was before.
pub struct BaseEntries<'a> {
    by_label: HashMap<String, &'a SourcedEntry>,
    tree: &'a Tree,
}

impl<'a> BaseEntries<'a> {
    /// Indexes `base`'s entries.
    pub fn new(base: &'a Tree) -> Self {
        let by_label = base
            .loaded
            .entries
            .iter()
            .map(|e| (label(e), &**e))
            .collect();
        Self {
            by_label,
            tree: base,
        }
    }

    /// The base entry `entry` was: the one of the same `namespace/name`, else one of its
    /// namespace with the very same spec (a renamed or copied entry widens nothing).
    fn before(&self, entry: &SourcedEntry) -> Option<&'a SourcedEntry> {
        if let Some(same_name) = self.by_label.get(&label(entry)) {
            return Some(same_name);
        }
        let spec = entry.entry.spec.as_ref()?;
        let owned = self.tree.snapshot.namespaces.get(&entry.namespace)?;
        owned
            .iter()
            .find(|old| old.entry.spec.as_ref() == Some(spec))
            .map(|old| &**old)
    }
}

/// Risks of one namespace: opened wildcards, its entries' risky changes, and its own mode and
/// limit overrides (changes of the defaults are gateway risks).
pub fn namespace_risks(
    base: &Tree,
    head: &Tree,
    before: &BaseEntries<'_>,
    namespace: &str,
    exposure: Option<&ExposureChange>,
) -> Vec<Risk> {
    let mut risks = Vec::new();
    for opened in exposure.iter().flat_map(|change| &change.opened) {
        if opened.destination.starts_with("*.") {
            risks.push(Risk {
                kind: "wildcard",
                entry: Some(opened.via.clone()),
                detail: format!(
                    "new or wider wildcard `{}` opens port {}/{}",
                    opened.destination, opened.port, opened.protocol
                ),
            });
        }
    }
    let owned = Namespace::parse(namespace)
        .ok()
        .and_then(|ns| head.snapshot.namespaces.get(&ns));
    for entry in owned.into_iter().flatten() {
        let was = before.before(entry);
        entry_risks(base, head, was, entry, &mut risks);
    }
    let overridden = |tree: &Tree| {
        let gateway = &tree.loaded.gateway;
        (
            gateway.enforcement.namespaces.contains_key(namespace),
            gateway.limits.namespaces.contains_key(namespace),
        )
    };
    let (mode_override, limit_override) = {
        let (before, after) = (overridden(base), overridden(head));
        (before.0 || after.0, before.1 || after.1)
    };
    let (was, is) = (
        base.snapshot.policy.mode(namespace),
        head.snapshot.policy.mode(namespace),
    );
    if mode_override && was == Mode::Enforce && is == Mode::Audit {
        risks.push(Risk {
            kind: "audit_mode",
            entry: None,
            detail: "moved from enforce to audit: every deny is let through".to_owned(),
        });
    }
    let (was, is) = (
        base.snapshot.connection_limit(namespace),
        head.snapshot.connection_limit(namespace),
    );
    if limit_override && is > was {
        risks.push(Risk {
            kind: "limit_raised",
            entry: None,
            detail: format!("connection limit raised from {was} to {is}"),
        });
    }
    risks.sort();
    risks.dedup();
    risks
}

/// Risks of `gateway.yaml` that hold for every namespace: global limits, the default mode and
/// `allow_cidrs`.
pub fn gateway_risks(base: &Tree, head: &Tree) -> Vec<Risk> {
    let mut risks = Vec::new();
    let (old, new) = (&base.loaded.gateway.limits, &head.loaded.gateway.limits);
    let limits = [
        (
            "limits.max_connections_per_namespace",
            old.max_connections_per_namespace,
            new.max_connections_per_namespace,
        ),
        (
            "limits.max_streams_per_connection",
            old.max_streams_per_connection as usize,
            new.max_streams_per_connection as usize,
        ),
        (
            "limits.max_request_head_bytes",
            old.max_request_head_bytes,
            new.max_request_head_bytes,
        ),
        (
            "limits.max_client_hello_bytes",
            old.max_client_hello_bytes,
            new.max_client_hello_bytes,
        ),
    ];
    for (key, was, is) in limits {
        if is > was {
            risks.push(Risk {
                kind: "limit_raised",
                entry: None,
                detail: format!("{key} raised from {was} to {is}"),
            });
        }
    }
    let (was, is) = (
        base.loaded.gateway.enforcement.default,
        head.loaded.gateway.enforcement.default,
    );
    if was == Mode::Enforce && is == Mode::Audit {
        risks.push(Risk {
            kind: "audit_mode",
            entry: None,
            detail: "enforcement.default moved from enforce to audit: every namespace without \
                     an override lets every deny through"
                .to_owned(),
        });
    }
    let punched: BTreeSet<&IpNet> = base.loaded.gateway.upstream.allow_cidrs.iter().collect();
    for net in &head.loaded.gateway.upstream.allow_cidrs {
        if !punched.contains(net) {
            risks.push(Risk {
                kind: "allow_cidrs",
                entry: None,
                detail: format!(
                    "upstream.allow_cidrs `{net}` lets DNS answers in it be dialled despite the address deny list"
                ),
            });
        }
    }
    risks
}

/// Risks of one head entry that is new or whose spec changed.
fn entry_risks(
    base: &Tree,
    head: &Tree,
    before: Option<&SourcedEntry>,
    entry: &SourcedEntry,
    risks: &mut Vec<Risk>,
) {
    let Some(spec) = &entry.entry.spec else {
        return;
    };
    let old_spec = before.and_then(|b| b.entry.spec.as_ref());
    let name = Some(label(entry));
    let old_visibility = before.map(|b| visibility(base, b));
    let new_visibility = visibility(head, entry);
    let own = Visible::Namespaces(BTreeSet::from([entry.namespace.as_str().to_owned()]));
    if !old_visibility
        .as_ref()
        .unwrap_or(&own)
        .includes(&new_visibility)
    {
        risks.push(Risk {
            kind: "export_widened",
            entry: name.clone(),
            detail: format!("exportTo now reaches {new_visibility}"),
        });
    }
    if old_spec == Some(spec) {
        return;
    }
    let opaque = spec
        .ports
        .iter()
        .flatten()
        .filter(|p| {
            p.protocol()
                .is_ok_and(|p| p.inspection() == Inspection::None)
        })
        .map(|p| p.number.to_string())
        .collect::<Vec<_>>();
    if !opaque.is_empty() && spec.addresses.is_empty() {
        risks.push(Risk {
            kind: "tcp_without_addresses",
            entry: name.clone(),
            detail: format!(
                "TCP port {} without addresses: nothing in the stream is checked",
                opaque.join(",")
            ),
        });
    }
    for written in trusted_addresses(spec) {
        if let Some(net) = parse_net(&written) {
            let ranges = forbidden_ranges_within(net);
            if let Some(range) = ranges.first() {
                risks.push(Risk {
                    kind: "trusted_private_address",
                    entry: name.clone(),
                    detail: format!(
                        "`{written}` is dialled without the address deny list and reaches {} {}",
                        range.name, range.prefix
                    ),
                });
            }
        }
    }
    let explicit_none = |s: &ServiceEntrySpec| s.resolution == Some(Resolution::None);
    if explicit_none(spec) && !old_spec.is_some_and(explicit_none) {
        risks.push(Risk {
            kind: "resolution_none",
            entry: name,
            detail: "resolution: NONE dials whatever the tenant asked for under these hosts"
                .to_owned(),
        });
    }
}

/// `spec.addresses` and IP endpoints: addresses dialled without the SSRF guard.
fn trusted_addresses(spec: &ServiceEntrySpec) -> Vec<String> {
    let endpoints = spec
        .endpoints
        .iter()
        .flatten()
        .filter_map(|e| e.address.clone())
        .filter(|a| a.parse::<IpAddr>().is_ok());
    spec.addresses.iter().cloned().chain(endpoints).collect()
}

fn parse_net(raw: &str) -> Option<IpNet> {
    raw.parse::<IpNet>()
        .ok()
        .or_else(|| raw.parse::<IpAddr>().ok().map(IpNet::from))
}
