//! Longest-prefix lookup over IP prefixes, used for source-address tenants, `addresses` entries
//! and the upstream deny list.
//!
//! [`PrefixMap`] keeps one hash map per prefix length, probed from longest to shortest: a lookup
//! costs at most one probe per distinct prefix length in use, whatever the number of prefixes.
//! [`FlatPrefixMap`] is built once from a fixed set of prefixes of many lengths (the special-
//! purpose registries) and flattens them into disjoint ranges: one binary search per lookup.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

/// Maps IP prefixes to values; `get` returns the value of the longest prefix containing an address.
#[derive(Debug, Clone)]
pub struct PrefixMap<T> {
    /// (prefix length, is IPv6) → network address → value; sorted longest first.
    tables: Vec<(u8, bool, HashMap<IpAddr, T>)>,
}

impl<T> Default for PrefixMap<T> {
    fn default() -> Self {
        Self { tables: Vec::new() }
    }
}

impl<T> PrefixMap<T> {
    /// Inserts `value` for `net`, returning the previous value for exactly that prefix.
    pub fn insert(&mut self, net: IpNet, value: T) -> Option<T> {
        let net = net.trunc();
        self.table_mut(net).insert(net.network(), value)
    }

    /// Mutable access to the value stored for exactly `net`, inserting `default()` if absent.
    pub fn entry_or_insert_with(&mut self, net: IpNet, default: impl FnOnce() -> T) -> &mut T {
        let net = net.trunc();
        self.table_mut(net)
            .entry(net.network())
            .or_insert_with(default)
    }

    /// The table for `net`'s prefix length and family, created (in longest-first order) if new.
    fn table_mut(&mut self, net: IpNet) -> &mut HashMap<IpAddr, T> {
        let key = (net.prefix_len(), matches!(net, IpNet::V6(_)));
        let index = match self.tables.iter().position(|(l, v6, _)| (*l, *v6) == key) {
            Some(index) => index,
            None => {
                let at = self.tables.partition_point(|(len, _, _)| *len > key.0);
                self.tables.insert(at, (key.0, key.1, HashMap::new()));
                at
            }
        };
        &mut self.tables[index].2
    }

    /// The value of the longest prefix that contains `addr`.
    pub fn get(&self, addr: IpAddr) -> Option<&T> {
        self.get_with_prefix(addr).map(|(_, value)| value)
    }

    /// Like `get`, also returning the prefix length that matched.
    pub fn get_with_prefix(&self, addr: IpAddr) -> Option<(u8, &T)> {
        self.matches(addr).next()
    }

    /// Every prefix that contains `addr`, with its value, longest first: for lookups where a
    /// shorter prefix may still answer when the longest one does not (nested `addresses`).
    pub fn matches(&self, addr: IpAddr) -> impl Iterator<Item = (u8, &T)> + '_ {
        let v6 = addr.is_ipv6();
        self.tables
            .iter()
            .filter(move |(_, is_v6, _)| *is_v6 == v6)
            .filter_map(move |(len, _, table)| {
                let net = IpNet::new(addr, *len).ok()?.trunc();
                table.get(&net.network()).map(|value| (*len, value))
            })
    }

    /// Whether no prefix was inserted.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }
}

/// A fixed set of prefixes flattened into disjoint address ranges, each carrying the value of the
/// longest prefix that covers it; `get` answers as [`PrefixMap::get`] would, by binary search.
#[derive(Debug, Clone)]
pub struct FlatPrefixMap<T> {
    v4: Vec<(u128, Option<T>)>,
    v6: Vec<(u128, Option<T>)>,
}

impl<T: Clone + PartialEq> FlatPrefixMap<T> {
    /// Flattens `prefixes`; a prefix given twice keeps its last value.
    pub fn new(prefixes: impl IntoIterator<Item = (IpNet, T)>) -> Self {
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for (net, value) in prefixes {
            let net = net.trunc();
            let span = match net {
                IpNet::V4(n) => (
                    u128::from(u32::from(n.network())),
                    u128::from(u32::from(n.broadcast())),
                ),
                IpNet::V6(n) => (u128::from(n.network()), u128::from(n.broadcast())),
            };
            let family = if net.addr().is_ipv4() {
                &mut v4
            } else {
                &mut v6
            };
            family.push((span, net.prefix_len(), value));
        }
        Self {
            v4: flatten(&v4),
            v6: flatten(&v6),
        }
    }

    /// The value of the longest prefix that contains `addr`.
    pub fn get(&self, addr: IpAddr) -> Option<&T> {
        let (ranges, key) = match addr {
            IpAddr::V4(v4) => (&self.v4, u128::from(u32::from(v4))),
            IpAddr::V6(v6) => (&self.v6, u128::from(v6)),
        };
        let at = ranges.partition_point(|(start, _)| *start <= key);
        ranges.get(at.checked_sub(1)?)?.1.as_ref()
    }
}

/// Disjoint ranges (by start) from possibly nested `((first, last), prefix length, value)` spans.
fn flatten<T: Clone + PartialEq>(spans: &[((u128, u128), u8, T)]) -> Vec<(u128, Option<T>)> {
    let mut starts: Vec<u128> = spans
        .iter()
        .flat_map(|((first, last), _, _)| [Some(*first), last.checked_add(1)])
        .flatten()
        .chain([0])
        .collect();
    starts.sort_unstable();
    starts.dedup();
    let mut ranges: Vec<(u128, Option<T>)> = Vec::with_capacity(starts.len());
    for start in starts {
        let value = spans
            .iter()
            .enumerate()
            .filter(|(_, ((first, last), _, _))| (*first..=*last).contains(&start))
            .max_by_key(|(order, (_, len, _))| (*len, *order))
            .map(|(_, (_, _, value))| value.clone());
        if ranges.last().is_none_or(|(_, last)| *last != value) {
            ranges.push((start, value));
        }
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn longest_prefix_wins() {
        let mut map = PrefixMap::default();
        map.insert(net("10.0.0.0/8"), "wide");
        map.insert(net("10.1.2.0/24"), "narrow");
        map.insert(net("::/0"), "v6");
        assert_eq!(map.get("10.1.2.3".parse().unwrap()), Some(&"narrow"));
        assert_eq!(map.get("10.9.9.9".parse().unwrap()), Some(&"wide"));
        assert_eq!(map.get("11.0.0.1".parse().unwrap()), None);
        assert_eq!(map.get("::1".parse().unwrap()), Some(&"v6"));
    }

    #[test]
    fn matches_lists_every_covering_prefix_longest_first() {
        let mut map = PrefixMap::default();
        map.insert(net("8.8.0.0/16"), "a");
        map.insert(net("8.8.8.0/24"), "b");
        map.insert(net("8.0.0.0/8"), "c");
        map.insert(net("9.0.0.0/8"), "other");
        map.insert(net("::/0"), "v6");
        let found: Vec<_> = map.matches("8.8.8.8".parse().unwrap()).collect();
        assert_eq!(found, [(24, &"b"), (16, &"a"), (8, &"c")]);
        let found: Vec<_> = map.matches("8.8.9.9".parse().unwrap()).collect();
        assert_eq!(found, [(16, &"a"), (8, &"c")]);
        assert_eq!(map.matches("7.0.0.1".parse().unwrap()).count(), 0);
    }

    #[test]
    fn flat_map_answers_like_the_hash_map() {
        let prefixes = [
            ("0.0.0.0/0", 0),
            ("10.0.0.0/8", 1),
            ("10.1.0.0/16", 2),
            ("10.1.2.0/24", 3),
            ("10.1.2.3/32", 4),
            ("255.255.255.255/32", 5),
            ("::/3", 6),
            ("2001::/23", 7),
            ("2001::/32", 8),
            ("2001:3::/32", 9),
            ("ff00::/8", 10),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", 11),
        ];
        let mut hashed = PrefixMap::default();
        for (prefix, value) in prefixes {
            hashed.insert(net(prefix), value);
        }
        let flat = FlatPrefixMap::new(prefixes.map(|(prefix, value)| (net(prefix), value)));
        // Every boundary and its neighbours, plus a deterministic spread of addresses.
        let mut probes: Vec<IpAddr> = Vec::new();
        for (prefix, _) in prefixes {
            let n = net(prefix);
            probes.extend([n.network(), n.broadcast()]);
        }
        let mut x: u128 = 0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834;
        for _ in 0..2000 {
            x = x
                .wrapping_mul(0x2545_f491_4f6c_dd1d)
                .wrapping_add(0x1405_7b7e_f767_814f);
            probes.push(IpAddr::V6((x ^ (x >> 7)).into()));
            probes.push(IpAddr::V4(((x >> 64) as u32).into()));
        }
        for probe in probes {
            let around = |addr: IpAddr, delta: i8| match addr {
                IpAddr::V4(v4) => u32::from(v4)
                    .checked_add_signed(delta.into())
                    .map(|v| IpAddr::V4(v.into())),
                IpAddr::V6(v6) => u128::from(v6)
                    .checked_add_signed(delta.into())
                    .map(|v| IpAddr::V6(v.into())),
            };
            for addr in [around(probe, -1), Some(probe), around(probe, 1)]
                .into_iter()
                .flatten()
            {
                assert_eq!(flat.get(addr), hashed.get(addr), "{addr}");
            }
        }
        assert_eq!(flat.get("11.0.0.1".parse().unwrap()), Some(&0));
        assert_eq!(flat.get("2000::1".parse().unwrap()), None);
    }

    #[test]
    fn host_bits_are_ignored_on_insert() {
        let mut map = PrefixMap::default();
        map.insert(net("192.0.2.77/24"), 1);
        assert_eq!(map.get("192.0.2.1".parse().unwrap()), Some(&1));
        *map.entry_or_insert_with(net("192.0.2.0/24"), || 0) += 1;
        assert_eq!(map.get("192.0.2.1".parse().unwrap()), Some(&2));
    }
}
