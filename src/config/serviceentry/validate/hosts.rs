//! What an entry names: `spec.hosts` (DNS names or `*.suffix`) and `spec.addresses` (IPs or
//! CIDRs).
//!
//! Owns the host and address syntax rules and reports what each host turned out to be, so later
//! rules do not re-report a broken host. Must not apply resolution-specific host rules (those run
//! in `check_spec` and `dynamic_dns`).

use std::net::IpAddr;

use crate::config::serviceentry::wire::{Resolution, ServiceEntrySpec};
use crate::names::{HostPattern, NameError};

use super::{Findings, HostKind};

/// `spec.hosts`: required, DNS names or `*.suffix`, no bare `*`, no partial wildcards, no IPs.
pub(super) fn check_hosts(spec: &ServiceEntrySpec, out: &mut Findings) -> Vec<HostKind> {
    if spec.hosts.is_empty() {
        out.error(
            "spec.hosts",
            "spec.hosts is required: list at least one host name (e.g. `api.example.com` or \
             `*.example.com`)",
        );
    }
    spec.hosts
        .iter()
        .enumerate()
        .map(|(i, host)| match parse_host(host) {
            Ok(pattern) if pattern.is_wildcard() => HostKind::Wildcard,
            Ok(_) => HostKind::Exact,
            Err(message) => {
                out.error(format!("spec.hosts[{i}]"), message);
                HostKind::Invalid
            }
        })
        .collect()
}

/// One host, with a message naming the rule it breaks.
fn parse_host(raw: &str) -> Result<HostPattern, String> {
    let unbracketed = raw
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(raw);
    if unbracketed.parse::<IpAddr>().is_ok() {
        return Err(format!(
            "host {raw:?} is an IP address: hosts must be DNS names; put IP addresses in \
             spec.addresses"
        ));
    }
    match HostPattern::parse(raw) {
        Ok(pattern) => {
            let name = match &pattern {
                HostPattern::Exact(name) | HostPattern::Wildcard(name) => name.as_str(),
            };
            match all_numeric_tld(name) {
                Some(tld) => Err(format!(
                    "host {raw:?}: the last label {tld:?} is all digits, which is not a valid \
                     top-level domain"
                )),
                None => Ok(pattern),
            }
        }
        Err(NameError::BareWildcard) => Err(format!(
            "host {raw:?} would allow every destination: a bare `*` is not allowed; list the \
             domains instead (e.g. `*.example.com`)"
        )),
        Err(NameError::PartialWildcard(_)) => Err(partial_wildcard_message(raw)),
        Err(err) => Err(format!("host {raw:?} is not a valid DNS name: {err}")),
    }
}

fn partial_wildcard_message(raw: &str) -> String {
    match raw.strip_prefix('*') {
        Some(rest) if !rest.contains('*') => {
            let suffix = rest.trim_start_matches('.');
            format!(
                "host {raw:?}: wildcards are allowed only as the whole leftmost label (did you \
                 mean `*.{suffix}`?); Istio only warns about this partial wildcard, but the gateway \
                 refuses it because it cannot tell which names it is meant to allow"
            )
        }
        _ => format!(
            "host {raw:?}: wildcards are allowed only as the whole leftmost label, as in \
             `*.example.com`"
        ),
    }
}

/// Istio refuses names whose top-level label is all digits (it would look like an IP).
pub(super) fn all_numeric_tld(name: &str) -> Option<&str> {
    let tld = name.rsplit('.').next().unwrap_or(name);
    (!tld.is_empty() && tld.bytes().all(|b| b.is_ascii_digit())).then_some(tld)
}

/// `spec.addresses`: IPs or CIDRs; CIDRs only with NONE/STATIC.
pub(super) fn check_addresses(spec: &ServiceEntrySpec, resolution: Resolution, out: &mut Findings) {
    let mut cidr_reported = false;
    for (i, address) in spec.addresses.iter().enumerate() {
        let path = format!("spec.addresses[{i}]");
        if address.contains('/') {
            if address.parse::<ipnet::IpNet>().is_err() {
                out.error(
                    &path,
                    format!(
                        "address {address:?} is not a valid CIDR block (e.g. `10.0.0.0/24` or \
                         `2001:db8::/64`)"
                    ),
                );
            } else if !cidr_reported && !matches!(resolution, Resolution::None | Resolution::Static)
            {
                cidr_reported = true;
                out.error(
                    &path,
                    format!(
                        "CIDR addresses are allowed only for NONE/STATIC resolution types, but \
                         {address:?} is used with resolution {resolution}; list single IPs or \
                         change the resolution"
                    ),
                );
            }
        } else if address.parse::<IpAddr>().is_err() {
            out.error(
                path,
                format!(
                    "address {address:?} is not an IP address or CIDR block; host names belong in \
                     spec.hosts"
                ),
            );
        }
    }
}
