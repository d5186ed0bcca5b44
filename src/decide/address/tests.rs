//! The SSRF guard, row by row: every row of the IANA IPv4 and IPv6 special-purpose address
//! registries with the decision taken for it and why, probed with real addresses.

use super::*;

/// What the guard does with a row, as this table expects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Deny,
    Allow,
    /// Judged by the IPv4 address(es) it carries.
    Embedded,
}
use Expect::{Allow, Deny, Embedded};

/// One registry row: prefix, registry name, RFC, decision, why, and probes (address, forbidden).
type Row = (
    &'static str,
    &'static str,
    &'static str,
    Expect,
    &'static str,
    &'static [(&'static str, bool)],
);

const NOT_GLOBAL: &str = "not globally reachable: an internal host if anything answers";
const LOCAL_ANYCAST: &str = "anycast answered by the nearest local box (NAT, relay), not a service";
const DOCS: &str = "documentation only; networks that misuse it internally make it an SSRF path";
const PUBLIC_ANYCAST: &str = "globally reachable public anycast service, reaches nothing internal";
const IDENTIFIERS: &str = "cryptographic identifiers, not routable locators";
const RESERVED6: &str = "IANA IPv6 address space: only 2000::/3 is global unicast";

#[rustfmt::skip]
const REGISTRY: &[Row] = &[
    // IPv4 special-purpose registry.
    ("0.0.0.0/8", "this network", "RFC 791", Deny, "the kernel dials it as this host", &[("0.1.2.3", true)]),
    ("0.0.0.0/32", "this host on this network", "RFC 1122", Deny, "connects to the gateway's own host", &[("0.0.0.0", true)]),
    ("10.0.0.0/8", "private-use", "RFC 1918", Deny, NOT_GLOBAL, &[("10.1.2.3", true)]),
    ("100.64.0.0/10", "shared address space", "RFC 6598", Deny, "CGNAT: the provider's internal side", &[("100.127.255.254", true)]),
    ("127.0.0.0/8", "loopback", "RFC 1122", Deny, "the gateway host itself", &[("127.0.0.1", true), ("127.255.0.9", true)]),
    ("169.254.0.0/16", "link-local", "RFC 3927", Deny, "the local link, including cloud metadata", &[("169.254.1.1", true)]),
    ("169.254.169.254/32", "cloud metadata", "(cloud providers)", Deny, "instance credentials; named for check warnings", &[("169.254.169.254", true)]),
    ("172.16.0.0/12", "private-use", "RFC 1918", Deny, NOT_GLOBAL, &[("172.31.0.1", true)]),
    ("192.0.0.0/24", "IETF protocol assignments", "RFC 6890", Deny, "every assignment in it is local infrastructure", &[("192.0.0.200", true)]),
    ("192.0.0.0/29", "IPv4 service continuity prefix", "RFC 7335", Deny, "DS-Lite B4/AFTR interface addresses", &[("192.0.0.1", true)]),
    ("192.0.0.8/32", "IPv4 dummy address", "RFC 7600", Deny, NOT_GLOBAL, &[("192.0.0.8", true)]),
    ("192.0.0.9/32", "Port Control Protocol anycast", "RFC 7723", Deny, LOCAL_ANYCAST, &[("192.0.0.9", true)]),
    ("192.0.0.10/32", "TURN anycast", "RFC 8155", Deny, LOCAL_ANYCAST, &[("192.0.0.10", true)]),
    ("192.0.0.170/32", "NAT64/DNS64 discovery", "RFC 8880", Deny, "answered by the local DNS64, not a service", &[("192.0.0.170", true)]),
    ("192.0.0.171/32", "NAT64/DNS64 discovery", "RFC 8880", Deny, "answered by the local DNS64, not a service", &[("192.0.0.171", true)]),
    ("192.0.2.0/24", "documentation (TEST-NET-1)", "RFC 5737", Deny, DOCS, &[("192.0.2.1", true)]),
    ("192.31.196.0/24", "AS112-v4", "RFC 7535", Allow, PUBLIC_ANYCAST, &[("192.31.196.1", false)]),
    ("192.52.193.0/24", "AMT", "RFC 7450", Allow, PUBLIC_ANYCAST, &[("192.52.193.1", false)]),
    ("192.88.99.0/24", "deprecated 6to4 relay anycast", "RFC 7526", Deny, LOCAL_ANYCAST, &[("192.88.99.1", true)]),
    ("192.88.99.2/32", "6a44 relay anycast", "RFC 6751", Deny, LOCAL_ANYCAST, &[("192.88.99.2", true)]),
    ("192.168.0.0/16", "private-use", "RFC 1918", Deny, NOT_GLOBAL, &[("192.168.1.1", true)]),
    ("192.175.48.0/24", "direct delegation AS112 service", "RFC 7534", Allow, PUBLIC_ANYCAST, &[("192.175.48.6", false)]),
    ("198.18.0.0/15", "benchmarking", "RFC 2544", Deny, "lab interconnects, often internal", &[("198.18.0.1", true), ("198.19.255.254", true)]),
    ("198.51.100.0/24", "documentation (TEST-NET-2)", "RFC 5737", Deny, DOCS, &[("198.51.100.7", true)]),
    ("203.0.113.0/24", "documentation (TEST-NET-3)", "RFC 5737", Deny, DOCS, &[("203.0.113.9", true)]),
    ("224.0.0.0/4", "multicast", "RFC 5771", Deny, "not a unicast destination", &[("224.0.0.1", true), ("239.255.255.250", true)]),
    ("240.0.0.0/4", "reserved", "RFC 1112", Deny, "not routable", &[("240.0.0.1", true)]),
    ("255.255.255.255/32", "limited broadcast", "RFC 919", Deny, "every host on the local link", &[("255.255.255.255", true)]),
    // IPv6 space outside global unicast.
    ("::/3", "reserved by IETF", "RFC 4291", Deny, RESERVED6, &[("1000::1", true)]),
    ("4000::/2", "reserved by IETF", "RFC 4291", Deny, RESERVED6, &[("4000::1", true)]),
    ("8000::/1", "reserved by IETF", "RFC 4291", Deny, RESERVED6, &[("8000::1", true), ("fe00::1", true)]),
    // IPv6 special-purpose registry, and the RFC 4291 forms.
    ("::/128", "unspecified", "RFC 4291", Deny, "connects to the gateway's own host", &[("::", true)]),
    ("::1/128", "loopback", "RFC 4291", Deny, "the gateway host itself", &[("::1", true)]),
    ("::/96", "IPv4-compatible (deprecated)", "RFC 4291", Deny, "deprecated; a tunnel would carry it to any IPv4 address", &[("::8.8.8.8", true), ("::127.0.0.1", true)]),
    ("::ffff:0:0/96", "IPv4-mapped", "RFC 4291", Embedded, "the IPv4 address it carries is what gets dialled", &[("::ffff:127.0.0.1", true), ("::ffff:169.254.169.254", true), ("::ffff:8.8.8.8", false)]),
    ("::ffff:0:0:0/96", "SIIT IPv4-translated", "RFC 7915", Embedded, "a SIIT translator dials the IPv4 address it carries", &[("::ffff:0:10.0.0.1", true), ("::ffff:0:8.8.8.8", false)]),
    ("64:ff9b::/96", "NAT64 well-known prefix", "RFC 6052", Embedded, "NAT64 dials the IPv4 address it carries", &[("64:ff9b::a9fe:a9fe", true), ("64:ff9b::7f00:1", true), ("64:ff9b::808:808", false)]),
    ("64:ff9b:1::/48", "local-use IPv4/IPv6 translation", "RFC 8215", Deny, "where the IPv4 address sits depends on local setup", &[("64:ff9b:1::808:808", true)]),
    ("100::/64", "discard-only", "RFC 6666", Deny, "a blackhole by definition", &[("100::1", true)]),
    ("100:0:0:1::/64", "dummy IPv6 prefix", "RFC 9780", Deny, NOT_GLOBAL, &[("100:0:0:1::1", true)]),
    ("2001::/23", "IETF protocol assignments", "RFC 2928", Deny, "unassigned rows of it are reserved", &[("2001:5::1", true), ("2001:1ff::1", true)]),
    ("2001::/32", "Teredo", "RFC 4380", Embedded, "the relay dials the client IPv4 (inverted) and contacts the server IPv4", &[("2001:0:4136:e378:8000:63bf:f5ff:fffe", true), ("2001:0:a00:1::f7f7:f7f7", true), ("2001:0:808:808::f7f7:f7f7", false)]),
    ("2001:1::1/128", "Port Control Protocol anycast", "RFC 7723", Deny, LOCAL_ANYCAST, &[("2001:1::1", true)]),
    ("2001:1::2/128", "TURN anycast", "RFC 8155", Deny, LOCAL_ANYCAST, &[("2001:1::2", true)]),
    ("2001:1::3/128", "DNS-SD service registration anycast", "RFC 9665", Deny, LOCAL_ANYCAST, &[("2001:1::3", true)]),
    ("2001:2::/48", "benchmarking", "RFC 5180", Deny, "lab interconnects, often internal", &[("2001:2::1", true)]),
    ("2001:3::/32", "AMT", "RFC 7450", Allow, PUBLIC_ANYCAST, &[("2001:3::1", false)]),
    ("2001:4:112::/48", "AS112-v6", "RFC 7535", Allow, PUBLIC_ANYCAST, &[("2001:4:112::1", false)]),
    ("2001:10::/28", "deprecated ORCHID", "RFC 4843", Deny, IDENTIFIERS, &[("2001:10::1", true)]),
    ("2001:20::/28", "ORCHIDv2", "RFC 7343", Deny, IDENTIFIERS, &[("2001:20::1", true)]),
    ("2001:30::/28", "drone remote ID entity tags", "RFC 9374", Deny, IDENTIFIERS, &[("2001:30::1", true)]),
    ("2001:db8::/32", "documentation", "RFC 3849", Deny, DOCS, &[("2001:db8::1", true)]),
    ("2002::/16", "6to4", "RFC 3056", Embedded, "the relay dials the IPv4 address in bits 16..48", &[("2002:7f00:1::1", true), ("2002:c0a8:101::1", true), ("2002:808:808::1", false)]),
    ("2620:4f:8000::/48", "direct delegation AS112 service", "RFC 7534", Allow, PUBLIC_ANYCAST, &[("2620:4f:8000::6", false)]),
    ("3fff::/20", "documentation", "RFC 9637", Deny, DOCS, &[("3fff::1", true)]),
    ("5f00::/16", "segment routing (SRv6) SIDs", "RFC 9602", Deny, "inside an operator's SR domain", &[("5f00::1", true)]),
    ("fc00::/7", "unique-local", "RFC 4193", Deny, NOT_GLOBAL, &[("fd00::1", true), ("fc00::1", true)]),
    ("fd00:ec2::254/128", "cloud metadata", "(AWS IPv6)", Deny, "instance credentials; named for check warnings", &[("fd00:ec2::254", true)]),
    ("fe80::/10", "link-local", "RFC 4291", Deny, "the local link", &[("fe80::1", true)]),
    ("fec0::/10", "site-local (deprecated)", "RFC 3879", Deny, "deprecated, internal by design", &[("fec0::1", true)]),
    ("ff00::/8", "multicast", "RFC 4291", Deny, "not a unicast destination", &[("ff02::1", true)]),
];

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn every_registry_row_is_decided_on_purpose() {
    let guard = AddressGuard::default();
    for (prefix, name, rfc, expect, why, probes) in REGISTRY {
        let net: IpNet = prefix.parse().unwrap();
        let row = SPECIAL_RANGES
            .iter()
            .find(|r| r.prefix == *prefix)
            .unwrap_or_else(|| panic!("{prefix} ({name}, {rfc}) is missing from SPECIAL_RANGES"));
        let treatment = match row.treatment {
            Treatment::Deny => Deny,
            Treatment::Allow => Allow,
            Treatment::Embedded(_) => Embedded,
        };
        assert_eq!(treatment, *expect, "{prefix} {name} ({rfc}): {why}");
        assert!(!probes.is_empty(), "{prefix} needs a probe");
        for (probe, forbidden) in *probes {
            assert!(
                net.contains(&ip(probe)),
                "probe {probe} is outside {prefix}"
            );
            assert_eq!(
                guard.is_forbidden(ip(probe)),
                *forbidden,
                "{probe} in {prefix} {name} ({rfc}): {why}"
            );
        }
    }
    for range in SPECIAL_RANGES {
        assert!(
            REGISTRY.iter().any(|row| row.0 == range.prefix),
            "{} has no line in the registry table",
            range.prefix
        );
    }
}

#[test]
fn global_unicast_is_dialled() {
    let guard = AddressGuard::default();
    for good in [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.215.14",
        "2606:4700::1111",
        "2a00:1450::1",
    ] {
        assert!(!guard.is_forbidden(ip(good)), "{good} should be allowed");
    }
}

#[test]
fn teredo_is_judged_by_server_and_client() {
    // RFC 4380 §4 example: server 65.54.227.120, client 192.0.2.45 (inverted: 3fff:fdd2).
    let teredo: Ipv6Addr = "2001:0:4136:e378:8000:63bf:3fff:fdd2".parse().unwrap();
    assert_eq!(
        embedded_ipv4(teredo, Embedding::Teredo),
        [
            Some(Ipv4Addr::new(65, 54, 227, 120)),
            Some(Ipv4Addr::new(192, 0, 2, 45))
        ]
    );
    let guard = AddressGuard::default();
    assert!(
        guard.is_forbidden(IpAddr::V6(teredo)),
        "client 192.0.2.45 is documentation"
    );
    // A public server and a private client, and a private server and a public client.
    assert!(guard.is_forbidden(ip("2001:0:808:808::3fff:fffe")));
    assert!(guard.is_forbidden(ip("2001:0:c0a8:101::f7f7:f7f7")));
}

#[test]
fn six_to_four_carries_bits_16_to_48() {
    let v6: Ipv6Addr = "2002:a9fe:a9fe:1::1".parse().unwrap();
    assert_eq!(
        embedded_ipv4(v6, Embedding::SixToFour),
        [Some(Ipv4Addr::new(169, 254, 169, 254)), None]
    );
}

#[test]
fn operators_extend_and_punch_holes_through_wrappers_too() {
    let guard = AddressGuard::new(
        &[
            "8.8.4.0/24".parse().unwrap(),
            "2a00:1450::/32".parse().unwrap(),
        ],
        &[
            "10.20.0.0/16".parse().unwrap(),
            "203.0.113.0/24".parse().unwrap(),
        ],
    );
    assert!(guard.is_forbidden(ip("8.8.4.4")));
    assert!(
        guard.is_forbidden(ip("64:ff9b::808:404")),
        "NAT64 of a denied IPv4"
    );
    assert!(guard.is_forbidden(ip("2a00:1450::1")));
    assert!(!guard.is_forbidden(ip("10.20.1.1")));
    assert!(
        !guard.is_forbidden(ip("64:ff9b::a14:101")),
        "NAT64 of a punched hole"
    );
    assert!(guard.is_forbidden(ip("10.21.1.1")));
    assert!(!guard.is_forbidden(ip("203.0.113.5")));
    assert!(guard.is_forbidden(ip("198.51.100.5")));
}

#[test]
fn operator_written_prefixes_name_what_they_cover() {
    let names = |net: &str| -> Vec<&str> {
        forbidden_ranges_within(net.parse().unwrap())
            .iter()
            .map(|r| r.prefix)
            .collect()
    };
    assert_eq!(names("127.0.0.1/32"), ["127.0.0.0/8"]);
    assert_eq!(names("169.254.169.254/32"), ["169.254.169.254/32"]);
    assert_eq!(names("10.1.0.0/16"), ["10.0.0.0/8"]);
    assert_eq!(names("64:ff9b::a9fe:a9fe/128"), ["169.254.169.254/32"]);
    assert!(names("8.8.8.8/32").is_empty());
    assert!(names("8.8.0.0/16").is_empty());
    assert!(names("192.31.196.0/24").is_empty());
    let everything = names("0.0.0.0/0");
    for must in [
        "127.0.0.0/8",
        "10.0.0.0/8",
        "169.254.169.254/32",
        "100.64.0.0/10",
    ] {
        assert!(everything.contains(&must), "0.0.0.0/0 covers {must}");
    }
    assert!(names("::/0").contains(&"64:ff9b::/96"));
    assert_eq!(
        names("169.254.0.0/16"),
        ["169.254.0.0/16", "169.254.169.254/32"]
    );
}
