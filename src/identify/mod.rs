//! Who is the tenant: namespace from the source address (plaintext listeners).
//!
//! Pure lookups over tables compiled into the snapshot; no sockets, no logging.

use std::net::IpAddr;

use crate::names::Namespace;
use crate::prefix_map::PrefixMap;

/// Source prefixes → namespace, longest prefix wins (`identity.sources`).
#[derive(Debug, Clone, Default)]
pub struct SourceTenants {
    prefixes: PrefixMap<Namespace>,
}

impl SourceTenants {
    /// Adds a rule; a later rule for exactly the same prefix replaces the earlier one.
    pub fn insert(&mut self, cidr: ipnet::IpNet, namespace: Namespace) {
        self.prefixes.insert(cidr, namespace);
    }

    /// The tenant for a peer address; IPv4-mapped IPv6 peers are looked up as IPv4.
    pub fn namespace_of(&self, peer: IpAddr) -> Option<&Namespace> {
        let peer = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
            v4 => v4,
        };
        self.prefixes.get(peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_names_the_tenant() {
        let mut tenants = SourceTenants::default();
        tenants.insert(
            "127.0.0.0/8".parse().unwrap(),
            Namespace::parse("wide").unwrap(),
        );
        tenants.insert(
            "127.0.0.2/32".parse().unwrap(),
            Namespace::parse("app1").unwrap(),
        );
        let of = |s: &str| {
            tenants
                .namespace_of(s.parse().unwrap())
                .map(|n| n.as_str().to_owned())
        };
        assert_eq!(of("127.0.0.2").as_deref(), Some("app1"));
        assert_eq!(of("::ffff:127.0.0.2").as_deref(), Some("app1"));
        assert_eq!(of("127.0.0.3").as_deref(), Some("wide"));
        assert_eq!(of("192.0.2.1"), None);
    }
}
