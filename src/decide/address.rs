//! The SSRF guard: which resolved addresses may never be dialled.
//!
//! Applied to every address obtained through DNS, after resolution and before the dial, so a name
//! that resolves (or re-binds) to loopback, a private range or cloud metadata cannot be reached,
//! not even wrapped in an IPv6 form that carries the IPv4 address (NAT64, 6to4, Teredo, SIIT,
//! IPv4-mapped). Addresses an operator wrote into a ServiceEntry are trusted and never pass
//! through here; `check` warns about them with [`forbidden_ranges_within`].

mod special;
#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::prefix_map::{FlatPrefixMap, PrefixMap};
pub use special::{Embedding, SpecialRange, Treatment, SPECIAL_RANGES};

/// An operator's `upstream` rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OperatorRule {
    Deny,
    Allow,
}

/// Classifies upstream addresses: the operator's `deny_cidrs` and `allow_cidrs` first (the most
/// specific prefix wins, allow wins a tie), and where none of them matches, the built-in
/// treatment of the special-purpose registries ([`SPECIAL_RANGES`]).
#[derive(Debug, Clone)]
pub struct AddressGuard {
    operator: PrefixMap<OperatorRule>,
    built_in: FlatPrefixMap<&'static SpecialRange>,
}

impl AddressGuard {
    /// Builds the guard from the operator's `upstream.deny_cidrs` and `upstream.allow_cidrs`.
    pub fn new(deny_cidrs: &[IpNet], allow_cidrs: &[IpNet]) -> Self {
        let mut operator = PrefixMap::default();
        for net in deny_cidrs {
            operator.insert(*net, OperatorRule::Deny);
        }
        for net in allow_cidrs {
            operator.insert(*net, OperatorRule::Allow);
        }
        Self {
            operator,
            built_in: built_in_map(),
        }
    }

    /// True when `addr` must not be dialled after a DNS lookup.
    pub fn is_forbidden(&self, addr: IpAddr) -> bool {
        if let Some(rule) = self.operator.get(addr) {
            return *rule == OperatorRule::Deny;
        }
        match self.built_in.get(addr).map(|range| range.treatment) {
            None | Some(Treatment::Allow) => false,
            Some(Treatment::Deny) => true,
            Some(Treatment::Embedded(embedding)) => match addr {
                IpAddr::V6(v6) => embedded_ipv4(v6, embedding)
                    .into_iter()
                    .flatten()
                    .any(|v4| self.is_forbidden(IpAddr::V4(v4))),
                // No IPv4 row carries another address; a table mistake fails closed.
                IpAddr::V4(_) => true,
            },
        }
    }
}

impl Default for AddressGuard {
    fn default() -> Self {
        Self::new(&[], &[])
    }
}

/// The built-in rows by prefix.
fn built_in_map() -> FlatPrefixMap<&'static SpecialRange> {
    FlatPrefixMap::new(
        SPECIAL_RANGES
            .iter()
            .filter_map(|range| Some((range.prefix.parse::<IpNet>().ok()?, range))),
    )
}

/// The IPv4 addresses an IPv6 address carries in the given form (Teredo carries two).
pub fn embedded_ipv4(v6: Ipv6Addr, embedding: Embedding) -> [Option<Ipv4Addr>; 2] {
    let bits = u128::from(v6);
    // Truncation to 32 bits is the point: each shift leaves the embedded address in the low bits.
    let at = |shift: u32| Ipv4Addr::from((bits >> shift) as u32);
    match embedding {
        Embedding::Last32 => [Some(at(0)), None],
        Embedding::SixToFour => [Some(at(80)), None],
        Embedding::Teredo => [Some(at(64)), Some(Ipv4Addr::from(!(bits as u32)))],
    }
}

/// The built-in rows that an operator-written address or prefix reaches into and the guard would
/// refuse (or, for a prefix over an IPv6 form that carries IPv4, could refuse) after a lookup:
/// trusted addresses skip the guard, so `check` warns about these.
pub fn forbidden_ranges_within(net: IpNet) -> Vec<&'static SpecialRange> {
    let net = net.trunc();
    let guard = AddressGuard::default();
    if net.prefix_len() == net.max_prefix_len() {
        return match guard.is_forbidden(net.addr()) {
            true => most_specific_row(&guard, net.addr()).into_iter().collect(),
            false => Vec::new(),
        };
    }
    let containing = SPECIAL_RANGES
        .iter()
        .filter_map(|range| Some((range.prefix.parse::<IpNet>().ok()?, range)))
        .filter(|(row, _)| row.contains(&net))
        .max_by_key(|(row, _)| row.prefix_len())
        .map(|(_, range)| range)
        .filter(|range| range.treatment != Treatment::Allow);
    let inside = SPECIAL_RANGES.iter().filter(|range| {
        range.treatment != Treatment::Allow
            && range
                .prefix
                .parse::<IpNet>()
                .is_ok_and(|row| net.contains(&row) && row != net)
    });
    containing.into_iter().chain(inside).collect()
}

/// The row that decided `addr`: for an IPv6 form that carries IPv4, the row of the first
/// forbidden IPv4 address inside it.
fn most_specific_row(guard: &AddressGuard, addr: IpAddr) -> Option<&'static SpecialRange> {
    let range: &'static SpecialRange = guard.built_in.get(addr)?;
    match (range.treatment, addr) {
        (Treatment::Embedded(embedding), IpAddr::V6(v6)) => embedded_ipv4(v6, embedding)
            .into_iter()
            .flatten()
            .map(IpAddr::V4)
            .find(|v4| guard.is_forbidden(*v4))
            .and_then(|v4| most_specific_row(guard, v4)),
        _ => Some(range),
    }
}
