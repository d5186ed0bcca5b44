//! Warnings about addresses an operator wrote into a ServiceEntry that reach ranges the SSRF
//! guard refuses in DNS answers: `spec.addresses` and IP endpoints are trusted and dialled without
//! the guard, so `0.0.0.0/0` would silently make every IP literal, loopback and cloud metadata
//! included, reachable. Only warns; what to trust stays the operator's call.

use std::net::IpAddr;

use ipnet::IpNet;

use super::super::wire::ServiceEntrySpec;
use super::Findings;
use crate::decide::address::{forbidden_ranges_within, SpecialRange};

/// Ranges named first in a warning: the ones an attacker wants most.
const MOST_WANTED: [&str; 4] = ["loopback", "cloud metadata", "private-use", "link-local"];
/// How many ranges a warning names before "and N more".
const NAMED: usize = 4;

/// Warns for each `spec.addresses` element and IP endpoint that covers a refused range.
pub(super) fn check_trusted_addresses(spec: &ServiceEntrySpec, out: &mut Findings) {
    for (i, address) in spec.addresses.iter().enumerate() {
        if let Some(net) = parse_net(address) {
            warn_if_covering(out, format!("spec.addresses[{i}]"), "address", address, net);
        }
    }
    for (i, endpoint) in spec.endpoints.iter().enumerate() {
        let Some(address) = endpoint.as_ref().and_then(|e| e.address.as_deref()) else {
            continue;
        };
        if let Ok(ip) = address.parse::<IpAddr>() {
            let path = format!("spec.endpoints[{i}].address");
            warn_if_covering(out, path, "endpoint", address, IpNet::from(ip));
        }
    }
}

fn parse_net(address: &str) -> Option<IpNet> {
    address
        .parse::<IpNet>()
        .ok()
        .or_else(|| address.parse::<IpAddr>().ok().map(IpNet::from))
}

fn warn_if_covering(out: &mut Findings, path: String, what: &str, written: &str, net: IpNet) {
    let mut ranges = forbidden_ranges_within(net);
    if ranges.is_empty() {
        return;
    }
    ranges.sort_by_key(|range| {
        MOST_WANTED
            .iter()
            .position(|name| *name == range.name)
            .unwrap_or(MOST_WANTED.len())
    });
    let single = net.prefix_len() == net.max_prefix_len();
    let reach = if single { "is in" } else { "covers" };
    out.warn(
        path,
        format!(
            "{what} {written:?} is trusted (dialled without the address deny list) and {reach} {}; \
             list only the service's own addresses, or keep it if reaching them is intended",
            describe(&ranges)
        ),
    );
}

/// `loopback 127.0.0.0/8, cloud metadata 169.254.169.254/32 and 12 more`.
fn describe(ranges: &[&SpecialRange]) -> String {
    let named: Vec<String> = ranges
        .iter()
        .take(NAMED)
        .map(|range| format!("{} {}", range.name, range.prefix))
        .collect();
    match ranges.len().saturating_sub(NAMED) {
        0 => named.join(", "),
        more => format!("{} and {more} more refused ranges", named.join(", ")),
    }
}
