//! Grouping wanted destinations by registrable domain (the Public Suffix List of the `psl`
//! crate) and collapsing names into `*.suffix` only where enough distinct names were seen under
//! it. A wildcard is only ever written at or below a registrable domain, so `*.com`, `*.co.uk`
//! or `*.github.io` can never come out, whatever the log says.

use std::collections::{BTreeMap, BTreeSet};

use crate::names::Hostname;

/// What a suggested port inspects, from what was observed on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// Nothing seen inside the stream.
    Tcp,
    /// Plain HTTP: the Host header is checked.
    Http,
    /// TLS: the ClientHello's SNI is checked.
    Tls,
}

impl Protocol {
    /// The `protocol` value written in the entry.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "TCP",
            Self::Http => "HTTP",
            Self::Tls => "TLS",
        }
    }
}

/// Ports and the protocol each is suggested with (when flows disagree, the one that inspects
/// the most: TLS over HTTP over TCP).
pub type Ports = BTreeMap<u16, Protocol>;

/// One destination to write: an exact name or `*.suffix`, with the names it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// `name` or `*.suffix`.
    pub host: String,
    /// The observed names it covers.
    pub names: BTreeSet<Hostname>,
    /// Ports seen on any of those names.
    pub ports: Ports,
}

/// The registrable domain `name` is grouped under: its domain by the Public Suffix List, or the
/// name itself when it is a public suffix (then it is only ever suggested exactly).
pub fn registrable(name: &Hostname) -> &str {
    psl::domain_str(name.as_str()).unwrap_or(name.as_str())
}

/// Whether `*.suffix` may be written: `suffix` is a registrable domain or lies under one.
pub fn wildcard_allowed(suffix: &str) -> bool {
    psl::domain_str(suffix).is_some()
}

/// The destinations for names of one registrable `domain`: from the longest suffix to the shortest, a suffix
/// with at least `min` names not yet covered under it becomes `*.suffix` (the narrowest wildcard
/// that covers them); the names left are written exactly.
pub fn collapse(domain: &str, names: &BTreeMap<Hostname, Ports>, min: usize) -> Vec<Destination> {
    let mut left: BTreeMap<&Hostname, &Ports> = names.iter().collect();
    // Each name is listed under each of its suffixes once, so the work grows with names times
    // their depth, not with names times suffixes (a tenant can make both large).
    let mut under_suffix: BTreeMap<&str, Vec<&Hostname>> = BTreeMap::new();
    for name in names.keys() {
        for suffix in parents(name.as_str(), domain) {
            under_suffix.entry(suffix).or_default().push(name);
        }
    }
    let mut suffixes: Vec<(&str, Vec<&Hostname>)> = under_suffix
        .into_iter()
        .filter(|(suffix, under)| under.len() >= min.max(1) && wildcard_allowed(suffix))
        .collect();
    suffixes.sort_by_key(|(suffix, _)| (std::cmp::Reverse(suffix.split('.').count()), *suffix));
    let mut out = Vec::new();
    for (suffix, under) in suffixes {
        let under: Vec<&Hostname> = under
            .into_iter()
            .filter(|name| left.contains_key(name))
            .collect();
        if under.len() < min.max(1) {
            continue;
        }
        let mut destination = Destination {
            host: format!("*.{suffix}"),
            names: BTreeSet::new(),
            ports: Ports::new(),
        };
        for name in under {
            if let Some(ports) = left.remove(name) {
                merge(&mut destination.ports, ports);
            }
            destination.names.insert(name.clone());
        }
        out.push(destination);
    }
    out.extend(left.into_iter().map(|(name, ports)| Destination {
        host: name.to_string(),
        names: BTreeSet::from([name.clone()]),
        ports: ports.clone(),
    }));
    out
}

/// Adds `ports` into `into`, keeping the stronger protocol on a port seen both ways.
pub fn merge(into: &mut Ports, ports: &Ports) {
    for (port, protocol) in ports {
        let slot = into.entry(*port).or_insert(*protocol);
        *slot = (*slot).max(*protocol);
    }
}

/// The proper parents of `name` down to and including `domain` (none when `name` is `domain`).
fn parents<'a>(name: &'a str, domain: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    std::iter::successors(name.split_once('.').map(|(_, rest)| rest), |s| {
        s.split_once('.').map(|(_, rest)| rest)
    })
    .take_while(move |suffix| suffix.len() >= domain.len())
    .filter(move |suffix| *suffix == domain || is_under(suffix, domain))
}

/// `name` ends in `.suffix`.
fn is_under(name: &str, suffix: &str) -> bool {
    name.len() > suffix.len() + 1
        && name.ends_with(suffix)
        && name.as_bytes()[name.len() - suffix.len() - 1] == b'.'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> BTreeMap<Hostname, Ports> {
        list.iter()
            .map(|n| {
                let ports = Ports::from([(443, Protocol::Tls)]);
                (Hostname::parse(n).expect("name"), ports)
            })
            .collect()
    }

    fn hosts(domain: &str, list: &[&str], min: usize) -> Vec<String> {
        collapse(domain, &names(list), min)
            .into_iter()
            .map(|d| d.host)
            .collect()
    }

    #[test]
    fn names_collapse_at_the_narrowest_suffix_with_enough_of_them() {
        let seen = [
            "a.x.example.com",
            "b.x.example.com",
            "c.x.example.com",
            "www.example.com",
            "example.com",
        ];
        assert_eq!(
            hosts("example.com", &seen, 3),
            ["*.x.example.com", "example.com", "www.example.com"]
        );
        assert_eq!(
            hosts("example.com", &seen, 4),
            ["*.example.com", "example.com"]
        );
        assert_eq!(hosts("example.com", &seen, 5).len(), 5);
    }

    #[test]
    fn names_each_under_their_own_suffix_are_grouped_in_one_pass() {
        // A tenant asking for a.r1.evil.example, a.r2.evil.example, ...: as many suffixes as
        // names. Scanning every name for every suffix would take 10^10 steps here.
        let names: BTreeMap<Hostname, Ports> = (0..100_000)
            .map(|n| {
                let name = Hostname::parse(&format!("a.r{n}.evil.example")).expect("name");
                (name, Ports::from([(443, Protocol::Tls)]))
            })
            .collect();
        let grouped = collapse("evil.example", &names, 2);
        assert_eq!(grouped.len(), 1);
        assert_eq!(grouped[0].host, "*.evil.example");
        assert_eq!(grouped[0].names.len(), 100_000);
    }

    #[test]
    fn a_public_suffix_never_becomes_a_wildcard() {
        for (domain, seen) in [
            ("github.io", ["a.github.io", "b.github.io", "c.github.io"]),
            ("co.uk", ["a.co.uk", "b.co.uk", "c.co.uk"]),
        ] {
            let grouped: Vec<String> = seen
                .iter()
                .map(|n| registrable(&Hostname::parse(n).expect("name")).to_owned())
                .collect();
            assert_eq!(grouped, seen, "each name is its own registrable domain");
            assert_eq!(hosts(domain, &seen, 2), seen);
        }
        assert!(
            !wildcard_allowed("com")
                && !wildcard_allowed("co.uk")
                && !wildcard_allowed("github.io")
        );
        assert!(wildcard_allowed("example.co.uk"));
        assert_eq!(
            registrable(&Hostname::parse("github.io").expect("name")),
            "github.io"
        );
    }

    #[test]
    fn ports_merge_to_the_stronger_protocol() {
        let mut ports = Ports::from([(443, Protocol::Tcp), (80, Protocol::Http)]);
        merge(
            &mut ports,
            &Ports::from([(443, Protocol::Tls), (80, Protocol::Tcp)]),
        );
        assert_eq!(
            ports,
            Ports::from([(443, Protocol::Tls), (80, Protocol::Http)])
        );
    }
}
