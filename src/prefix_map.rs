//! Longest-prefix lookup over IP prefixes, used for source-address tenants, `addresses` entries
//! and the upstream deny list.
//!
//! One hash map per prefix length, probed from longest to shortest: a lookup costs at most one
//! probe per distinct prefix length in use, whatever the number of prefixes.

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
    fn host_bits_are_ignored_on_insert() {
        let mut map = PrefixMap::default();
        map.insert(net("192.0.2.77/24"), 1);
        assert_eq!(map.get("192.0.2.1".parse().unwrap()), Some(&1));
        *map.entry_or_insert_with(net("192.0.2.0/24"), || 0) += 1;
        assert_eq!(map.get("192.0.2.1".parse().unwrap()), Some(&2));
    }
}
