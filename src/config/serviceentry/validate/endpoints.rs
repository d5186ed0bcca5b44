//! `spec.endpoints` of STATIC, DNS and DNS_ROUND_ROBIN entries: addresses (IP, host name or unix
//! socket), per-endpoint port maps and labels.
//!
//! Owns the endpoint rules only. Must not decide whether endpoints are allowed at all for a
//! resolution (that is `check_spec` and `dynamic_dns`).

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::config::serviceentry::wire::{Resolution, ServiceEntrySpec, WorkloadEntry};
use crate::names::Hostname;

use super::hosts::all_numeric_tld;
use super::selector::check_labels;
use super::{key_path, Findings};

/// The prefix of a unix domain socket endpoint address.
const UNIX_PREFIX: &str = "unix://";

/// Endpoints of STATIC, DNS and DNS_ROUND_ROBIN entries.
pub(super) fn check_endpoints(
    spec: &ServiceEntrySpec,
    resolution: Resolution,
    declared: &BTreeSet<&str>,
    out: &mut Findings,
) {
    for (i, endpoint) in spec.endpoints.iter().enumerate() {
        let base = format!("spec.endpoints[{i}]");
        match endpoint {
            None => out.error(
                base,
                "every element of endpoints must be an endpoint object (found null); give an \
                 `address` or remove the element",
            ),
            Some(endpoint) => check_endpoint(&base, endpoint, resolution, declared, out),
        }
    }
}

fn check_endpoint(
    base: &str,
    endpoint: &WorkloadEntry,
    resolution: Resolution,
    declared: &BTreeSet<&str>,
    out: &mut Findings,
) {
    let address = endpoint.address.as_deref().unwrap_or("");
    let address_path = if endpoint.address.is_some() {
        format!("{base}.address")
    } else {
        base.to_owned()
    };
    let network = endpoint.network.as_deref().unwrap_or("");

    if address.is_empty() {
        if resolution == Resolution::Static && !network.is_empty() {
            out.warn(
                address_path,
                format!(
                    "endpoint has network {network:?} but no address: Istio reaches it through \
                     that network's gateway; the egress gateway has no address to dial and skips it"
                ),
            );
        } else {
            out.error(
                address_path,
                format!(
                    "endpoint address is required with resolution {resolution} (an IP{})",
                    if resolution == Resolution::Static {
                        " or unix:///absolute/path"
                    } else {
                        " or a resolvable host name"
                    }
                ),
            );
        }
    } else if let Some(path) = address.strip_prefix(UNIX_PREFIX) {
        if resolution != Resolution::Static {
            out.error(
                &address_path,
                format!(
                    "endpoint {address:?} is a unix socket, which only resolution STATIC can use; \
                     resolution {resolution} needs a host name or IP"
                ),
            );
        } else {
            if let Err(message) = check_unix_path(path) {
                out.error(&address_path, format!("endpoint {address:?}: {message}"));
            }
            if !endpoint.ports.is_empty() {
                out.error(
                    format!("{base}.ports"),
                    format!(
                        "unix socket endpoint {address:?} must not have a ports map: a socket has \
                         no port"
                    ),
                );
            }
            if declared.len() != 1 {
                out.error(
                    &address_path,
                    format!(
                        "a unix socket endpoint needs exactly one service port in spec.ports \
                         (found {}): every port would reach the same socket",
                        declared.len()
                    ),
                );
            }
        }
    } else if address.parse::<IpAddr>().is_err() {
        match resolution {
            Resolution::Static => out.error(
                address_path,
                format!(
                    "with resolution STATIC every endpoint address must be an IP address or \
                     unix:///absolute/path, not {address:?}; use resolution DNS to resolve host \
                     names"
                ),
            ),
            _ => {
                if let Err(message) = check_endpoint_name(address, resolution) {
                    out.error(address_path, message);
                }
            }
        }
    }

    let ports_path = format!("{base}.ports");
    for (name, number) in &endpoint.ports {
        let path = key_path(&ports_path, name);
        if !declared.contains(name.as_str()) {
            let list: Vec<&str> = declared.iter().copied().filter(|n| !n.is_empty()).collect();
            out.error(
                &path,
                format!(
                    "endpoint port name {name:?} is not declared in spec.ports (declared: {}); \
                     the ports map goes from a spec port name to this endpoint's port number",
                    if list.is_empty() {
                        "none".to_owned()
                    } else {
                        list.join(", ")
                    }
                ),
            );
        }
        if !(1..=65535).contains(number) {
            out.error(
                path,
                format!("endpoint port {number} (for {name:?}) is outside 1-65535"),
            );
        }
    }
    check_labels(
        &format!("{base}.labels"),
        &endpoint.labels,
        "endpoint label",
        out,
    );
}

/// A DNS endpoint must be a concrete, resolvable name.
fn check_endpoint_name(address: &str, resolution: Resolution) -> Result<(), String> {
    if address.contains('*') {
        return Err(format!(
            "endpoint address {address:?} is a wildcard: resolution {resolution} must resolve each \
             endpoint, so name a concrete host or IP"
        ));
    }
    let name = Hostname::parse(address).map_err(|err| {
        format!("endpoint address {address:?} is not a valid host name or IP address: {err}")
    })?;
    match all_numeric_tld(name.as_str()) {
        Some(tld) => Err(format!(
            "endpoint address {address:?} is not a valid host name or IP address: the last label \
             {tld:?} is all digits"
        )),
        None => Ok(()),
    }
}

/// Istio's `ValidateUnixAddress`: an absolute file path, or an abstract socket `@name`.
fn check_unix_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        Err("the unix socket path is empty (use unix:///path/to/socket)".to_owned())
    } else if path.starts_with('@') {
        Ok(())
    } else if !path.starts_with('/') || path.ends_with('/') {
        Err(format!(
            "unix socket path {path:?} must be an absolute path to a file (unix:///path/to/socket)"
        ))
    } else {
        Ok(())
    }
}
