//! The SSRF guard: which resolved addresses may never be dialled.
//!
//! Applied to every address obtained through DNS, after resolution and before the dial, so a name
//! that resolves (or re-binds) to loopback, a private range or cloud metadata cannot be reached.
//! Addresses an operator wrote into a ServiceEntry are trusted and never pass through here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::prefix_map::PrefixMap;

/// Prefixes no DNS answer may lead to (SPEC §3).
const BUILT_IN_DENY: [&str; 17] = [
    "0.0.0.0/8",          // unspecified / "this network"
    "127.0.0.0/8",        // loopback
    "10.0.0.0/8",         // RFC 1918
    "172.16.0.0/12",      // RFC 1918
    "192.168.0.0/16",     // RFC 1918
    "169.254.0.0/16",     // link-local, cloud metadata
    "100.64.0.0/10",      // CGNAT
    "224.0.0.0/4",        // multicast
    "240.0.0.0/4",        // reserved, includes broadcast
    "255.255.255.255/32", // broadcast
    "::/128",             // unspecified
    "::1/128",            // loopback
    "fe80::/10",          // link-local
    "fc00::/7",           // unique-local
    "ff00::/8",           // multicast
    "64:ff9b:1::/48",     // local-use NAT64 (RFC 8215)
    "::ffff:0:0/96",      // IPv4-mapped: judged by the embedded IPv4 address instead
];

/// Whether a prefix denies or (operator-punched hole) allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Deny,
    Allow,
}

/// Classifies upstream addresses: built-in deny list, plus `deny_cidrs`, minus `allow_cidrs`.
#[derive(Debug, Clone)]
pub struct AddressGuard {
    rules: PrefixMap<Rule>,
}

impl AddressGuard {
    /// Builds the guard; the most specific prefix wins, and an `allow_cidrs` entry wins over a
    /// deny of the same prefix.
    pub fn new(deny_cidrs: &[IpNet], allow_cidrs: &[IpNet]) -> Self {
        let mut rules = PrefixMap::default();
        for net in BUILT_IN_DENY.iter().filter_map(|s| s.parse::<IpNet>().ok()) {
            rules.insert(net, Rule::Deny);
        }
        for net in deny_cidrs {
            rules.insert(*net, Rule::Deny);
        }
        for net in allow_cidrs {
            rules.insert(*net, Rule::Allow);
        }
        Self { rules }
    }

    /// True when `addr` must not be dialled after a DNS lookup.
    pub fn is_forbidden(&self, addr: IpAddr) -> bool {
        let addr = canonical(addr);
        matches!(self.rules.get(addr), Some(Rule::Deny))
    }
}

impl Default for AddressGuard {
    fn default() -> Self {
        Self::new(&[], &[])
    }
}

/// IPv4-mapped and IPv4-compatible IPv6 forms are judged as the IPv4 address they carry.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ipv4_compatible(v6).map_or(addr, IpAddr::V4),
        },
        v4 => v4,
    }
}

/// `::a.b.c.d` (deprecated IPv4-compatible form), excluding `::` and `::1`.
fn ipv4_compatible(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let octets = v6.octets();
    if octets[..12].iter().all(|b| *b == 0) && v6.segments()[6] != 0 {
        Some(Ipv4Addr::new(
            octets[12], octets[13], octets[14], octets[15],
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn built_in_classes_are_forbidden() {
        let guard = AddressGuard::default();
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
        ] {
            assert!(guard.is_forbidden(ip(bad)), "{bad} should be forbidden");
        }
        for good in [
            "192.0.2.1",
            "203.0.113.9",
            "8.8.8.8",
            "2001:db8::1",
            "::ffff:198.51.100.1",
        ] {
            assert!(!guard.is_forbidden(ip(good)), "{good} should be allowed");
        }
    }

    #[test]
    fn operators_extend_and_punch_holes() {
        let guard = AddressGuard::new(
            &["203.0.113.0/24".parse().unwrap()],
            &["10.20.0.0/16".parse().unwrap()],
        );
        assert!(guard.is_forbidden(ip("203.0.113.5")));
        assert!(!guard.is_forbidden(ip("10.20.1.1")));
        assert!(guard.is_forbidden(ip("10.21.1.1")));
    }
}
