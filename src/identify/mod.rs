//! Who is the tenant: namespace from the source address (plaintext listeners) or from the SPIFFE
//! ID in the client certificate (mTLS listener).
//!
//! Pure lookups over tables compiled into the snapshot and parsing of certificate bytes; no
//! sockets, no logging.

use std::net::IpAddr;

use x509_parser::extensions::GeneralName;

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

/// What a connection presented to be identified by, read once when it is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    /// Nothing but its source address (plaintext listeners).
    SourceAddress(IpAddr),
    /// A verified client certificate and every URI SAN in it, in order (an X.509-SVID has
    /// exactly one; the planner refuses any other count).
    Certificate {
        /// The URI SANs as written in the certificate.
        uri_sans: Vec<String>,
    },
}

impl Presented {
    /// Reads the URI SANs from a DER end-entity certificate; an unreadable certificate presents
    /// none.
    pub fn from_certificate(der: &[u8]) -> Self {
        let uri_sans = x509_parser::parse_x509_certificate(der)
            .ok()
            .and_then(|(_, cert)| {
                let sans = cert.subject_alternative_name().ok()??;
                Some(
                    sans.value
                        .general_names
                        .iter()
                        .filter_map(|name| match name {
                            GeneralName::URI(uri) => Some(uri.to_string()),
                            _ => None,
                        })
                        .collect(),
                )
            })
            .unwrap_or_default();
        Self::Certificate { uri_sans }
    }
}

/// The namespace of a SPIFFE ID `spiffe://<trust_domain>/ns/<namespace>/sa/<account>`; any
/// other shape or trust domain names no tenant.
pub fn spiffe_namespace(spiffe: &str, trust_domain: &str) -> Option<Namespace> {
    let path = spiffe
        .strip_prefix("spiffe://")?
        .strip_prefix(trust_domain)?;
    let mut parts = path.strip_prefix('/')?.split('/');
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some("ns"), Some(namespace), Some("sa"), Some(account), None)
            if is_spiffe_segment(account) =>
        {
            Namespace::parse(namespace).ok()
        }
        _ => None,
    }
}

/// A SPIFFE path segment: letters, digits, `.`, `-`, `_` only, and not `.` or `..` (no
/// percent-encoding, query or fragment can hide another name).
fn is_spiffe_segment(segment: &str) -> bool {
    !segment.is_empty()
        && segment != "."
        && segment != ".."
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
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

    #[test]
    fn spiffe_ids_name_the_namespace_only_in_our_trust_domain() {
        let ns = |id: &str| spiffe_namespace(id, "cluster.local").map(|n| n.as_str().to_owned());
        assert_eq!(
            ns("spiffe://cluster.local/ns/app1/sa/default").as_deref(),
            Some("app1")
        );
        assert_eq!(ns("spiffe://other.domain/ns/app1/sa/default"), None);
        assert_eq!(ns("spiffe://cluster.local.evil/ns/app1/sa/default"), None);
        assert_eq!(ns("spiffe://cluster.local/ns/app1/sa/"), None);
        assert_eq!(ns("spiffe://cluster.local/ns/App1/sa/x"), None);
        assert_eq!(ns("spiffe://cluster.local/ns/app1/sa/x/extra"), None);
        assert_eq!(ns("https://cluster.local/ns/app1/sa/x"), None);
        assert_eq!(ns("spiffe://cluster.local/ns/app1/sa/x?y"), None);
        assert_eq!(ns("spiffe://cluster.local/ns/app1/sa/x#y"), None);
        assert_eq!(ns("spiffe://cluster.local/ns/app%31/sa/x"), None);
        assert_eq!(ns("spiffe://cluster.local/ns/app1/sa/%78"), None);
        assert_eq!(ns("spiffe://cluster.local/ns/app1/sa/.."), None);
        assert_eq!(ns("spiffe://cluster.local/ns//app1/sa/x"), None);
        assert_eq!(ns("spiffe://cluster.local/ns/app1/sa/x/"), None);
    }
}
