//! Entries another entry of the same namespace already covers: every (destination, port) they
//! write is written, as is or under a wildcard or wider prefix, by some other entry of theirs.
//! Indexed by host pattern, so a namespace of thousands of entries is not compared pairwise.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use super::exposure::{destinations, label, ports, Destination, Tree};

/// An entry whose every (destination, port) other entries of its namespace already allow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Redundant {
    /// `namespace/name` of the redundant entry.
    pub entry: String,
    /// The entries that cover it.
    pub covered_by: Vec<String>,
}

/// What one entry writes.
struct Written {
    label: String,
    destinations: Vec<Destination>,
    ports: BTreeSet<u16>,
}

/// The redundant entries of each namespace of `tree`.
pub fn redundant(tree: &Tree) -> BTreeMap<String, Vec<Redundant>> {
    let mut found: BTreeMap<String, Vec<Redundant>> = BTreeMap::new();
    for (namespace, entries) in &tree.snapshot.namespaces {
        let written: Vec<Written> = entries
            .iter()
            .filter_map(|sourced| {
                let spec = sourced.entry.spec.as_ref()?;
                Some(Written {
                    label: label(sourced),
                    destinations: destinations(spec),
                    ports: ports(spec),
                })
            })
            .collect();
        let index = Index::new(&written);
        for (i, entry) in written.iter().enumerate() {
            if let Some(covered_by) = index.covering(i) {
                found
                    .entry(namespace.as_str().to_owned())
                    .or_default()
                    .push(Redundant {
                        entry: entry.label.clone(),
                        covered_by,
                    });
            }
        }
    }
    found
}

/// One namespace's entries by host pattern, and those with address prefixes.
struct Index<'a> {
    written: &'a [Written],
    by_pattern: HashMap<&'a str, Vec<usize>>,
    with_prefixes: Vec<usize>,
}

impl<'a> Index<'a> {
    fn new(written: &'a [Written]) -> Self {
        let mut by_pattern: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut with_prefixes = Vec::new();
        for (i, entry) in written.iter().enumerate() {
            for destination in &entry.destinations {
                match destination {
                    Destination::Host(pattern) => by_pattern.entry(pattern).or_default().push(i),
                    Destination::Prefix(_) => with_prefixes.push(i),
                }
            }
        }
        with_prefixes.dedup();
        Self {
            written,
            by_pattern,
            with_prefixes,
        }
    }

    /// The other entries that cover every (destination, port) of entry `i`, or `None`.
    fn covering(&self, i: usize) -> Option<Vec<String>> {
        let entry = &self.written[i];
        if entry.destinations.is_empty() || entry.ports.is_empty() {
            return None;
        }
        let mut covering = BTreeSet::new();
        for destination in &entry.destinations {
            for port in &entry.ports {
                let cover = self.candidates(destination).into_iter().find(|j| {
                    let other = &self.written[*j];
                    *j != i
                        && other.ports.contains(port)
                        && other.destinations.iter().any(|d| covers(d, destination))
                })?;
                covering.insert(self.written[cover].label.clone());
            }
        }
        Some(covering.into_iter().collect())
    }

    /// Entries that may cover `destination`: those writing it or a wildcard above it, or any
    /// prefix.
    fn candidates(&self, destination: &Destination) -> Vec<usize> {
        match destination {
            Destination::Host(pattern) => {
                let name = pattern.strip_prefix("*.").unwrap_or(pattern);
                let parents = name
                    .match_indices('.')
                    .map(|(at, _)| format!("*.{}", &name[at + 1..]));
                std::iter::once(pattern.clone())
                    .chain(parents)
                    .filter_map(|key| self.by_pattern.get(key.as_str()))
                    .flatten()
                    .copied()
                    .collect()
            }
            Destination::Prefix(_) => self.with_prefixes.clone(),
        }
    }
}

/// Whether `wide` matches everything `narrow` matches.
fn covers(wide: &Destination, narrow: &Destination) -> bool {
    match (wide, narrow) {
        (Destination::Host(wide), Destination::Host(narrow)) => {
            let Some(suffix) = wide.strip_prefix("*.") else {
                return wide == narrow;
            };
            let name = narrow.strip_prefix("*.").unwrap_or(narrow);
            name.ends_with(&format!(".{suffix}")) || (name == suffix && name != narrow)
        }
        (Destination::Prefix(wide), Destination::Prefix(narrow)) => wide.contains(narrow),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(raw: &str) -> Destination {
        Destination::Host(raw.to_owned())
    }

    #[test]
    fn a_wildcard_covers_names_and_narrower_wildcards_under_it_only() {
        assert!(covers(&host("*.example.com"), &host("api.example.com")));
        assert!(covers(&host("*.example.com"), &host("*.api.example.com")));
        assert!(covers(&host("*.example.com"), &host("*.example.com")));
        assert!(!covers(&host("*.example.com"), &host("example.com")));
        assert!(!covers(&host("*.example.com"), &host("badexample.com")));
        assert!(!covers(&host("api.example.com"), &host("*.example.com")));
    }

    #[test]
    fn a_prefix_covers_the_prefixes_inside_it() {
        let net = |raw: &str| Destination::Prefix(raw.parse().expect("prefix"));
        assert!(covers(&net("10.0.0.0/8"), &net("10.1.0.0/16")));
        assert!(!covers(&net("10.1.0.0/16"), &net("10.0.0.0/8")));
        assert!(!covers(&net("10.0.0.0/8"), &host("api.example.com")));
    }
}
