//! The DYNAMIC_DNS resolution: wildcard hosts only, no endpoints, no addresses, request-level
//! protocols only, and MESH_EXTERNAL when bound to a waypoint.
//!
//! Owns the rules specific to DYNAMIC_DNS. Must not re-check host or port syntax (that is `hosts`
//! and `ports`).

use crate::config::serviceentry::wire::{
    Location, Protocol, ServiceEntry, ServiceEntrySpec, ServicePort,
};

use super::{Findings, HostKind};

/// The metadata label binding an entry to an ambient waypoint.
const USE_WAYPOINT_LABEL: &str = "istio.io/use-waypoint";

/// DYNAMIC_DNS: wildcard hosts only, no endpoints, no addresses, request-level protocols only.
pub(super) fn check_dynamic_dns(
    se: &ServiceEntry,
    spec: &ServiceEntrySpec,
    hosts: &[HostKind],
    ports: &[(usize, &ServicePort, Option<Protocol>)],
    out: &mut Findings,
) {
    for (i, host) in spec.hosts.iter().enumerate() {
        if hosts[i] == HostKind::Exact {
            out.error(
                format!("spec.hosts[{i}]"),
                format!(
                    "resolution DYNAMIC_DNS is for wildcard hosts only, but {host:?} is a plain \
                     name; use resolution DNS for it"
                ),
            );
        }
    }
    if !spec.endpoints.is_empty() {
        out.error(
            "spec.endpoints",
            "resolution DYNAMIC_DNS resolves the requested name at request time, so endpoints \
             must not be listed",
        );
    }
    if !spec.addresses.is_empty() {
        out.error(
            "spec.addresses",
            "resolution DYNAMIC_DNS cannot have addresses: the name is only known per request",
        );
    }
    for (i, port, protocol) in ports {
        let Some(protocol) = protocol else { continue };
        if !matches!(
            protocol,
            Protocol::Http | Protocol::Tls | Protocol::Grpc | Protocol::Http2
        ) {
            let path = if port.protocol.is_some() {
                format!("spec.ports[{i}].protocol")
            } else {
                format!("spec.ports[{i}]")
            };
            out.error(
                path,
                format!(
                    "resolution DYNAMIC_DNS supports only HTTP, TLS, GRPC and HTTP2 ports (the \
                     name must be known per request), but port {} is {protocol}",
                    port.number
                ),
            );
        }
    }
    if se.metadata.labels.contains_key(USE_WAYPOINT_LABEL)
        && spec.location() == Location::MeshInternal
    {
        out.error(
            "spec.location",
            format!(
                "a DYNAMIC_DNS entry bound to a waypoint (label {USE_WAYPOINT_LABEL}) must have \
                 location MESH_EXTERNAL, not MESH_INTERNAL"
            ),
        );
    }
}
