//! Deciding whether a tenant may reach a target: the compiled allowlist and the one `decide`.
//!
//! Pure and synchronous: no sockets, no clocks, no metrics. Lookups are hash probes whose number
//! depends on the target (labels in the name, prefix lengths in use), never on the number of
//! entries, and `decide` allocates nothing.

pub mod address;
pub mod reason;
pub mod rule;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use ipnet::IpNet;

pub use address::AddressGuard;
pub use reason::DenyReason;
pub use rule::{DialTarget, Endpoint, EndpointAddress, Inspection, Rule, RulePort, Upstream};

use crate::config::gateway::Mode;
use crate::names::{Host, HostPattern, Namespace, Target};
use crate::prefix_map::PrefixMap;

/// Index of a rule in `Allowlist::rules`.
type RuleId = u32;

/// The outcome for one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Let it through.
    Allow,
    /// Refuse it, for this reason.
    Deny(DenyReason),
    /// Would be refused for this reason, but the namespace is in audit mode: let it through.
    Audit(DenyReason),
}

impl Verdict {
    /// The `decision` label value.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny(_) => "deny",
            Self::Audit(_) => "audit",
        }
    }

    /// The `reason` label value (`none` when allowed).
    pub const fn reason_label(self) -> &'static str {
        match self {
            Self::Allow => "none",
            Self::Deny(reason) | Self::Audit(reason) => reason.as_str(),
        }
    }

    /// Number of distinct verdicts (allow, each deny, each audit), for tables indexed by verdict.
    pub const COUNT: usize = 1 + 2 * DenyReason::ALL.len();

    /// Position of this verdict in a table of [`Self::COUNT`] entries.
    pub const fn index(self) -> usize {
        match self {
            Self::Allow => 0,
            Self::Deny(reason) => 1 + reason.index(),
            Self::Audit(reason) => 1 + DenyReason::ALL.len() + reason.index(),
        }
    }

    /// Whether the connection goes out.
    pub const fn lets_through(self) -> bool {
        !matches!(self, Self::Deny(_))
    }

    /// Applies a namespace's mode to a deny: allowlist reasons become `Audit` in audit mode.
    pub const fn deny_in(reason: DenyReason, mode: Mode) -> Self {
        match mode {
            Mode::Audit if reason.is_allowlist() => Self::Audit(reason),
            _ => Self::Deny(reason),
        }
    }
}

/// A decision: the verdict and the entry and port that allowed it.
#[derive(Debug, Clone, Copy)]
pub struct Decision<'a> {
    /// Allow, deny or audit.
    pub verdict: Verdict,
    /// The matching entry (none on a deny, or an audit of an unlisted host).
    pub rule: Option<&'a Rule>,
    /// The matching port of that entry.
    pub port: Option<&'a RulePort>,
    /// The tenant's enforcement mode, for later stages that may deny (SNI checks).
    pub mode: Mode,
}

impl<'a> Decision<'a> {
    /// Dial targets for an allowed or audited decision; an audit without a rule goes where the
    /// tenant asked, deny-list checked.
    pub fn dial_targets(&self, target: &'a Target) -> impl Iterator<Item = DialTarget> + 'a {
        let via_rule = self
            .rule
            .zip(self.port)
            .map(|(rule, port)| rule.dial_targets(target, port));
        let as_requested = self
            .rule
            .is_none()
            .then(|| DialTarget::requested(target, false));
        via_rule.into_iter().flatten().chain(as_requested)
    }

    /// What the allowing port requires to be checked inside the stream.
    pub fn inspection(&self) -> Inspection {
        self.port.map_or(Inspection::Opaque, |port| port.inspection)
    }
}

/// Which hosts and addresses one namespace can reach, built from the entries visible to it.
///
/// Shared by `Arc` between snapshots: a reload that changed none of the entries a namespace sees
/// hands the next snapshot the same allowlist instead of building it again.
#[derive(Debug, Default, Clone)]
pub struct Allowlist {
    rules: Vec<Arc<Rule>>,
    exact: HashMap<Box<str>, Vec<RuleId>>,
    wildcard: HashMap<Box<str>, Vec<RuleId>>,
    addresses: PrefixMap<Vec<RuleId>>,
}

impl Allowlist {
    /// Adds an entry reachable through `hosts` and `addresses`; earlier entries win ties.
    pub fn add(&mut self, rule: Arc<Rule>, hosts: &[HostPattern], addresses: &[IpNet]) {
        let id = RuleId::try_from(self.rules.len()).unwrap_or(RuleId::MAX);
        self.rules.push(rule);
        for host in hosts {
            let (map, key) = match host {
                HostPattern::Exact(name) => (&mut self.exact, name.as_str()),
                HostPattern::Wildcard(suffix) => (&mut self.wildcard, suffix.as_str()),
            };
            map.entry(key.into()).or_default().push(id);
        }
        for net in addresses {
            self.addresses.entry_or_insert_with(*net, Vec::new).push(id);
        }
    }
}

/// Who can see an entry (its `exportTo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visibility {
    /// `*`: every namespace, including ones without entries of their own.
    Everyone,
    /// These namespaces (`.` already replaced by the owner).
    Namespaces(Vec<Namespace>),
}

/// The compiled allowlist of every namespace, plus enforcement modes.
#[derive(Debug, Default)]
pub struct Policy {
    tenants: HashMap<Box<str>, Arc<Allowlist>>,
    everyone: Arc<Allowlist>,
    modes: HashMap<Box<str>, Mode>,
    default_mode: Mode,
}

impl Policy {
    /// An empty policy with the given enforcement modes.
    pub fn new(default_mode: Mode, modes: impl IntoIterator<Item = (String, Mode)>) -> Self {
        Self {
            default_mode,
            modes: modes.into_iter().map(|(ns, m)| (ns.into(), m)).collect(),
            ..Self::default()
        }
    }

    /// Adds an entry reachable through `hosts` and `addresses` by `visibility`, one at a time;
    /// [`Self::with_allowlists`] takes allowlists built (or kept) elsewhere.
    pub fn add(
        &mut self,
        rule: Rule,
        visibility: &Visibility,
        hosts: &[HostPattern],
        addresses: &[IpNet],
    ) {
        let rule = Arc::new(rule);
        match visibility {
            Visibility::Everyone => Arc::make_mut(&mut self.everyone).add(rule, hosts, addresses),
            Visibility::Namespaces(namespaces) => {
                for namespace in namespaces {
                    let allowlist = self.tenants.entry(namespace.as_str().into()).or_default();
                    Arc::make_mut(allowlist).add(rule.clone(), hosts, addresses);
                }
            }
        }
    }

    /// Serves these allowlists: one per namespace that sees entries of its own or exported to
    /// it by name, and `everyone` for the entries exported to `*`.
    pub fn with_allowlists(
        mut self,
        tenants: impl IntoIterator<Item = (Namespace, Arc<Allowlist>)>,
        everyone: Arc<Allowlist>,
    ) -> Self {
        self.tenants = tenants
            .into_iter()
            .map(|(namespace, allowlist)| (namespace.as_str().into(), allowlist))
            .collect();
        self.everyone = everyone;
        self
    }

    /// The enforcement mode of `namespace`.
    pub fn mode(&self, namespace: &str) -> Mode {
        self.modes
            .get(namespace)
            .copied()
            .unwrap_or(self.default_mode)
    }

    /// Decides whether `namespace` may reach `target`. Exact hosts beat wildcards, longer
    /// wildcard suffixes beat shorter ones, and the tenant's own entries beat `*`-exported ones.
    /// An IP literal tries every `addresses` prefix that contains it, longest first, as a name
    /// tries every wildcard suffix: a narrower entry on another port does not hide a wider one.
    ///
    /// A rule past its `egress-gateway.io/expires` instant is skipped, as if absent: the
    /// decision is exact at the instant, while the snapshot without the entry is published by the
    /// reload thread a moment later. The wall clock is read only when a candidate rule expires.
    pub fn decide<'a>(&'a self, namespace: &str, target: &Target) -> Decision<'a> {
        let mode = self.mode(namespace);
        let own = self.tenants.get(namespace).map(|own| &**own);
        let tables = [own, Some(&*self.everyone)];
        let mut host_matched = false;
        let mut found = None;
        let mut now = None;
        let mut try_ids = |table: &'a Allowlist, ids: &[RuleId]| {
            for id in ids {
                let Some(rule) = table.rules.get(*id as usize) else {
                    continue;
                };
                if let Some(expires) = rule.expires() {
                    if expires <= *now.get_or_insert_with(SystemTime::now) {
                        continue;
                    }
                }
                host_matched = true;
                if let Some(port) = rule.port(target.port) {
                    found = Some((rule, port));
                    return true;
                }
            }
            false
        };
        let hit = match &target.host {
            Host::Ip(ip) => {
                covering_prefixes(own, &self.everyone, *ip).any(|(t, ids)| try_ids(t, ids))
            }
            Host::Name(name) => {
                let name = name.as_str();
                tables
                    .iter()
                    .flatten()
                    .any(|t| t.exact.get(name).is_some_and(|ids| try_ids(t, ids)))
                    || parent_suffixes(name).any(|suffix| {
                        tables
                            .iter()
                            .flatten()
                            .any(|t| t.wildcard.get(suffix).is_some_and(|ids| try_ids(t, ids)))
                    })
            }
        };
        match (hit, found) {
            (true, Some((rule, port))) => Decision {
                verdict: Verdict::Allow,
                rule: Some(rule),
                port: Some(port),
                mode,
            },
            _ => {
                let reason = if host_matched {
                    DenyReason::PortNotAllowed
                } else {
                    DenyReason::NotAllowlisted
                };
                Decision {
                    verdict: Verdict::deny_in(reason, mode),
                    rule: None,
                    port: None,
                    mode,
                }
            }
        }
    }
}

/// The address rules of `own` and `everyone` whose prefix contains `ip`: longest prefix first,
/// the tenant's own table first on a tie.
fn covering_prefixes<'a>(
    own: Option<&'a Allowlist>,
    everyone: &'a Allowlist,
    ip: IpAddr,
) -> impl Iterator<Item = (&'a Allowlist, &'a [RuleId])> + 'a {
    let tagged = move |table: &'a Allowlist| {
        table
            .addresses
            .matches(ip)
            .map(move |(len, ids)| (len, table, ids.as_slice()))
    };
    let mut own = own.into_iter().flat_map(tagged).peekable();
    let mut everyone = tagged(everyone).peekable();
    std::iter::from_fn(move || {
        let everyone_longer = match (own.peek(), everyone.peek()) {
            (Some(mine), Some(shared)) => shared.0 > mine.0,
            (None, _) => true,
            (Some(_), None) => false,
        };
        let next = if everyone_longer {
            everyone.next()
        } else {
            own.next()
        };
        next.map(|(_, table, ids)| (table, ids))
    })
}

/// `a.b.example.com` → `b.example.com`, `example.com`, `com` (longest first).
fn parent_suffixes(name: &str) -> impl Iterator<Item = &str> {
    name.match_indices('.').map(move |(i, _)| &name[i + 1..])
}

#[cfg(test)]
mod tests;
