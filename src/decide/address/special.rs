//! The built-in treatment of every row of the IANA IPv4 and IPv6 special-purpose address
//! registries (RFC 6890 and successors), plus the IPv6 space outside global unicast.
//!
//! The rule behind each row: an answer a public name may legitimately resolve to is dialled; an
//! address that is not globally reachable, or that the nearest local box answers (NAT, relay or
//! discovery anycast), is denied; an IPv6 form that carries an IPv4 address is judged by the IPv4
//! address it carries. This file only lists rows; `super` applies them.

/// Where an IPv6 form carries an IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Embedding {
    /// In the last 32 bits: IPv4-mapped, SIIT IPv4-translated, NAT64 well-known prefix.
    Last32,
    /// In bits 16..48: 6to4 (RFC 3056).
    SixToFour,
    /// Teredo (RFC 4380): the server in bits 32..64, the client inverted in the last 32 bits.
    Teredo,
}

/// What the guard does with an address inside a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Treatment {
    /// Never dialled after a DNS lookup.
    Deny,
    /// Dialled: globally reachable and answered by the service itself.
    Allow,
    /// Dialled only when every IPv4 address it carries may be dialled.
    Embedded(Embedding),
}

/// One registry row and what the gateway decided for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialRange {
    /// The prefix, as the registry writes it.
    pub prefix: &'static str,
    /// The registry's name for it, as `check` warnings quote it.
    pub name: &'static str,
    /// The treatment.
    pub treatment: Treatment,
}

const fn row(prefix: &'static str, name: &'static str, treatment: Treatment) -> SpecialRange {
    SpecialRange {
        prefix,
        name,
        treatment,
    }
}

use Embedding::{Last32, SixToFour, Teredo};
use Treatment::{Allow, Deny, Embedded};

/// Every special-purpose row, with its treatment; the most specific row containing an address
/// decides. The reasons for each decision are in the table test (`tests.rs`), one line per row.
pub const SPECIAL_RANGES: &[SpecialRange] = &[
    // IANA IPv4 Special-Purpose Address Registry.
    row("0.0.0.0/8", "this network", Deny),
    row("0.0.0.0/32", "this host on this network", Deny),
    row("10.0.0.0/8", "private-use", Deny),
    row("100.64.0.0/10", "shared address space (CGNAT)", Deny),
    row("127.0.0.0/8", "loopback", Deny),
    row("169.254.0.0/16", "link-local", Deny),
    row("169.254.169.254/32", "cloud metadata", Deny),
    row("172.16.0.0/12", "private-use", Deny),
    row("192.0.0.0/24", "IETF protocol assignments", Deny),
    row("192.0.0.0/29", "IPv4 service continuity prefix", Deny),
    row("192.0.0.8/32", "IPv4 dummy address", Deny),
    row("192.0.0.9/32", "Port Control Protocol anycast", Deny),
    row("192.0.0.10/32", "TURN anycast", Deny),
    row("192.0.0.170/32", "NAT64/DNS64 discovery", Deny),
    row("192.0.0.171/32", "NAT64/DNS64 discovery", Deny),
    row("192.0.2.0/24", "documentation (TEST-NET-1)", Deny),
    row("192.31.196.0/24", "AS112-v4", Allow),
    row("192.52.193.0/24", "AMT", Allow),
    row("192.88.99.0/24", "deprecated 6to4 relay anycast", Deny),
    row("192.88.99.2/32", "6a44 relay anycast", Deny),
    row("192.168.0.0/16", "private-use", Deny),
    row("192.175.48.0/24", "direct delegation AS112 service", Allow),
    row("198.18.0.0/15", "benchmarking", Deny),
    row("198.51.100.0/24", "documentation (TEST-NET-2)", Deny),
    row("203.0.113.0/24", "documentation (TEST-NET-3)", Deny),
    row("224.0.0.0/4", "multicast", Deny),
    row("240.0.0.0/4", "reserved", Deny),
    row("255.255.255.255/32", "limited broadcast", Deny),
    // IANA IPv6 Address Space: nothing outside 2000::/3 is global unicast.
    row("::/3", "reserved by IETF (outside global unicast)", Deny),
    row(
        "4000::/2",
        "reserved by IETF (outside global unicast)",
        Deny,
    ),
    row(
        "8000::/1",
        "reserved by IETF (outside global unicast)",
        Deny,
    ),
    // IANA IPv6 Special-Purpose Address Registry (and RFC 4291 forms).
    row("::/128", "unspecified", Deny),
    row("::1/128", "loopback", Deny),
    row("::/96", "IPv4-compatible (deprecated)", Deny),
    row("::ffff:0:0/96", "IPv4-mapped", Embedded(Last32)),
    row("::ffff:0:0:0/96", "SIIT IPv4-translated", Embedded(Last32)),
    row("64:ff9b::/96", "NAT64 well-known prefix", Embedded(Last32)),
    row("64:ff9b:1::/48", "local-use IPv4/IPv6 translation", Deny),
    row("100::/64", "discard-only", Deny),
    row("100:0:0:1::/64", "dummy IPv6 prefix", Deny),
    row("2001::/23", "IETF protocol assignments", Deny),
    row("2001::/32", "Teredo", Embedded(Teredo)),
    row("2001:1::1/128", "Port Control Protocol anycast", Deny),
    row("2001:1::2/128", "TURN anycast", Deny),
    row("2001:1::3/128", "DNS-SD service registration anycast", Deny),
    row("2001:2::/48", "benchmarking", Deny),
    row("2001:3::/32", "AMT", Allow),
    row("2001:4:112::/48", "AS112-v6", Allow),
    row("2001:10::/28", "deprecated ORCHID", Deny),
    row("2001:20::/28", "ORCHIDv2", Deny),
    row("2001:30::/28", "drone remote ID entity tags", Deny),
    row("2001:db8::/32", "documentation", Deny),
    row("2002::/16", "6to4", Embedded(SixToFour)),
    row(
        "2620:4f:8000::/48",
        "direct delegation AS112 service",
        Allow,
    ),
    row("3fff::/20", "documentation", Deny),
    row("5f00::/16", "segment routing (SRv6) SIDs", Deny),
    row("fc00::/7", "unique-local", Deny),
    row("fd00:ec2::254/128", "cloud metadata", Deny),
    row("fe80::/10", "link-local", Deny),
    row("fec0::/10", "site-local (deprecated)", Deny),
    row("ff00::/8", "multicast", Deny),
];
