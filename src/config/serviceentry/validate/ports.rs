//! `spec.ports`: names, numbers, target ports and protocols, and which protocols can share several
//! hosts.
//!
//! Owns the per-port rules and hands the parsed ports back to `check_spec`. Must not check
//! endpoint port maps (that is `endpoints`).

use std::collections::HashMap;

use crate::config::serviceentry::wire::{Protocol, Resolution, ServiceEntrySpec, ServicePort};

use super::{is_dns1123_label, Findings, MAX_LABEL_LEN};

/// `spec.ports`: no nulls, names required and unique, numbers unique and in range, known
/// protocols. Returns the non-null ports with their index and parsed protocol.
pub(super) fn check_ports<'a>(
    spec: &'a ServiceEntrySpec,
    resolution: Resolution,
    out: &mut Findings,
) -> Vec<(usize, &'a ServicePort, Option<Protocol>)> {
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut numbers: HashMap<u32, usize> = HashMap::new();
    let mut ports = Vec::with_capacity(spec.ports.len());
    for (i, port) in spec.ports.iter().enumerate() {
        let base = format!("spec.ports[{i}]");
        let Some(port) = port else {
            out.error(
                base,
                "every element of ports must be a port object (found null); give `number`, \
                 `name` and `protocol` or remove the element",
            );
            continue;
        };
        let number = port.number;

        match port.name.as_deref() {
            None | Some("") => out.error(
                &base,
                format!(
                    "port {number} has no name: every port needs a name (a DNS label such as \
                     `http` or `https`)"
                ),
            ),
            Some(name) if !is_dns1123_label(name) => out.error(
                format!("{base}.name"),
                format!(
                    "port name {name:?} is not a DNS label: use letters, digits and '-', at most \
                     {MAX_LABEL_LEN}, starting and ending with a letter or digit"
                ),
            ),
            Some(name) => {
                if let Some(first) = names.insert(name, i) {
                    names.insert(name, first);
                    out.error(
                        format!("{base}.name"),
                        format!(
                            "port name {name:?} is already used by spec.ports[{first}]: port \
                             names must be unique"
                        ),
                    );
                }
            }
        }

        if !(1..=65535).contains(&number) {
            out.error(
                format!("{base}.number"),
                format!("port {number} is outside 1-65535"),
            );
        } else if let Some(first) = numbers.insert(number, i) {
            numbers.insert(number, first);
            out.error(
                format!("{base}.number"),
                format!(
                    "port {number} is already declared by spec.ports[{first}]: port numbers must \
                     be unique"
                ),
            );
        }

        if let Some(target) = port.target_port {
            if !(1..=65535).contains(&target) {
                out.error(
                    format!("{base}.targetPort"),
                    format!("targetPort {target} is outside 1-65535"),
                );
            } else if resolution == Resolution::None {
                out.warn(
                    format!("{base}.targetPort"),
                    format!(
                        "targetPort {target} has no effect with resolution NONE: the gateway dials \
                         the port the client asked for"
                    ),
                );
            }
        }

        let protocol = match port.protocol() {
            Ok(protocol) => Some(protocol),
            Err(raw) => {
                let known: Vec<&str> = Protocol::ALL.iter().map(|p| p.as_str()).collect();
                out.error(
                    format!("{base}.protocol"),
                    format!(
                        "unrecognized protocol {raw:?} on port {number}; use one of {} (any case), \
                         or leave it out for TCP",
                        known.join(", ")
                    ),
                );
                None
            }
        };
        let protocol_path = if port.protocol.is_some() {
            format!("{base}.protocol")
        } else {
            base.clone()
        };
        let number_valid = (1..=65535).contains(&number);
        if number_valid && protocol == Some(Protocol::Tcp) && spec.addresses.is_empty() {
            out.warn(
                &protocol_path,
                format!(
                    "port {number} is TCP (protocol {}) and the entry has no addresses: Istio \
                     matches such a port by number alone, which may capture all traffic on port \
                     {number}; the gateway checks only the CONNECT target on it, not the bytes",
                    port.protocol
                        .as_deref()
                        .filter(|p| !p.is_empty())
                        .unwrap_or("unset")
                ),
            );
        }
        if protocol == Some(Protocol::Udp) {
            out.warn(
                protocol_path,
                format!(
                    "port {number} is UDP, which the egress gateway does not proxy; it is ignored"
                ),
            );
        }
        ports.push((i, port, protocol));
    }
    ports
}

/// Several hosts with a port that carries no host name: only NONE can tell them apart.
pub(super) fn check_multi_host_ports(
    spec: &ServiceEntrySpec,
    resolution: Resolution,
    ports: &[(usize, &ServicePort, Option<Protocol>)],
    out: &mut Findings,
) {
    if resolution == Resolution::None || spec.hosts.len() < 2 {
        return;
    }
    let offending = ports
        .iter()
        .find(|(_, _, p)| p.is_some_and(|p| !p.is_http() && !p.is_tls()));
    if let Some((i, port, protocol)) = offending {
        let path = if port.protocol.is_some() {
            format!("spec.ports[{i}].protocol")
        } else {
            format!("spec.ports[{i}]")
        };
        out.error(
            path,
            format!(
                "multiple hosts provided with non-HTTP, non-TLS ports: port {} ({}) carries no \
                 host name, so the {} hosts cannot be told apart with resolution {resolution}; use \
                 one host per ServiceEntry or resolution NONE",
                port.number,
                protocol.map_or("TCP", Protocol::as_str),
                spec.hosts.len()
            ),
        );
    }
}
