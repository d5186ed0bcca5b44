//! Turning a loaded config (wire types) into a `Snapshot` (lookup-optimised policy).
//!
//! `check`, `explain`, start-up and every reload run exactly this function, so what `check`
//! accepts is what `run` serves. Problems are collected, never returned one at a time.
//!
//! Expiry is applied here and nowhere else: an entry whose `egress-gateway.io/expires` is at or
//! before the compile's instant is left out of every allowlist, so the planner, `explain`, `plan`
//! and every front end agree on it by construction; the snapshot says when the next one expires,
//! for the reloader to compile again then.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use ipnet::IpNet;

use crate::config::gateway::GatewayFile;
use crate::config::load::EntryPositions;
use crate::config::locate::Locator;
use crate::config::serviceentry::{ExportTo, Resolution, ServiceEntry};
use crate::config::serviceentry::{Inspection as WireInspection, ServicePort};
use crate::config::{Diagnostic, LoadedConfig, SourcedEntry};
use crate::decide::{
    AddressGuard, Endpoint, EndpointAddress, Inspection, Policy, Rule, RulePort, Upstream,
    Visibility,
};
use crate::dial::pool::PoolLimits;
use crate::dial::ParentRoutes;
use crate::identify::SourceTenants;
use crate::names::{HostPattern, Hostname, Namespace};
use crate::pace::Pacer;

use super::expiry::Expiries;
use super::reuse::{CompileCache, Compiled};
use super::Snapshot;

/// Compiles `loaded` into snapshot number `generation`.
pub fn compile(loaded: &LoadedConfig, generation: u64) -> Result<Snapshot, Vec<Diagnostic>> {
    compile_reusing(loaded, generation, &mut CompileCache::default())
}

/// Like [`compile`], reusing what `cache` kept of the previous compile wherever the same parsed
/// entries come back (see [`super::reuse`]); the cache is refreshed only when this one succeeds.
pub fn compile_reusing(
    loaded: &LoadedConfig,
    generation: u64,
    cache: &mut CompileCache,
) -> Result<Snapshot, Vec<Diagnostic>> {
    compile_at(loaded, generation, cache, SystemTime::now())
}

/// Like [`compile_reusing`], judging expiry at `now` (the wall clock, except in tests).
pub fn compile_at(
    loaded: &LoadedConfig,
    generation: u64,
    cache: &mut CompileCache,
    now: SystemTime,
) -> Result<Snapshot, Vec<Diagnostic>> {
    compile_with(loaded, generation, cache, now, None)
}

/// Compiles the config `serving` was compiled from again at `now`, for an entry's expiry: the
/// parent proxies are `serving`'s, so no file is read (a credentials or CA file that went
/// missing since must not keep an expired entry allowed; it is reported by the next reload).
pub fn recompile_at_expiry(
    loaded: &LoadedConfig,
    generation: u64,
    cache: &mut CompileCache,
    now: SystemTime,
    serving: &Snapshot,
) -> Result<Snapshot, Vec<Diagnostic>> {
    compile_with(
        loaded,
        generation,
        cache,
        now,
        Some(serving.parents.clone()),
    )
}

fn compile_with(
    loaded: &LoadedConfig,
    generation: u64,
    cache: &mut CompileCache,
    now: SystemTime,
    parents: Option<ParentRoutes>,
) -> Result<Snapshot, Vec<Diagnostic>> {
    let mut problems = Vec::new();
    let gateway = &loaded.gateway;
    let gateway_file = loaded.dir.join(crate::config::load::GATEWAY_FILE);
    let tenants = compile_tenants(gateway, &gateway_file, &mut problems);
    check_namespace_keys(gateway, &gateway_file, &mut problems);
    let parents = parents.unwrap_or_else(|| {
        super::parents::compile_parents(&gateway.upstream, &gateway_file, &mut problems)
    });

    let modes = gateway
        .enforcement
        .namespaces
        .iter()
        .map(|(ns, mode)| (ns.clone(), *mode));
    let default_export_to = &gateway.serviceentries.default_export_to;
    let mut compiling = cache.start(default_export_to);
    let mut namespaces: BTreeMap<Namespace, Vec<Arc<SourcedEntry>>> = BTreeMap::new();
    let mut positions = EntryPositions::default();
    let mut pacer = Pacer::default();
    let mut expiries = Expiries::default();
    for sourced in &loaded.entries {
        pacer.step();
        if expiries.expired(sourced, now) {
            continue;
        }
        match compiling.add(sourced, |entry| compile_entry(entry, default_export_to)) {
            Ok(()) => match namespaces.get_mut(&sourced.namespace) {
                Some(owned) => owned.push(sourced.clone()),
                None => {
                    namespaces.insert(sourced.namespace.clone(), vec![sourced.clone()]);
                }
            },
            Err(message) => problems.push(Diagnostic::error(
                &sourced.file,
                positions.of(sourced),
                format!(
                    "ServiceEntry {}/{}: {message}",
                    sourced.namespace, sourced.name
                ),
            )),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let (allowlists, everyone) = compiling.finish();
    let policy =
        Policy::new(gateway.enforcement.default, modes).with_allowlists(allowlists, everyone);
    Ok(Snapshot {
        generation,
        policy,
        tenants,
        trust_domain: gateway.identity.trust_domain.clone(),
        guard: AddressGuard::new(&gateway.upstream.deny_cidrs, &gateway.upstream.allow_cidrs),
        parents,
        pool: PoolLimits {
            per_upstream: gateway.upstream.pool.max_idle_per_upstream,
            total: gateway.upstream.pool.max_idle,
            idle: gateway.upstream.pool.idle_timeout,
        },
        limits: gateway.limits.clone(),
        timeouts: gateway.timeouts.clone(),
        require_sni_match: gateway.enforcement.require_sni_match,
        zero_copy: gateway.runtime.zero_copy,
        files: loaded.files.clone(),
        namespaces,
        expired: expiries.expired,
        next_expiry: expiries.next,
        loaded_at: now,
    })
}

/// Position of a `gateway.yaml` field, re-reading the file (error paths only).
pub(super) fn gateway_position(
    file: &Path,
    field: &str,
) -> Option<crate::config::locate::Position> {
    let text = std::fs::read_to_string(file).ok()?;
    Locator::new(&text).find(0, field)
}

fn compile_tenants(
    gateway: &GatewayFile,
    file: &Path,
    problems: &mut Vec<Diagnostic>,
) -> SourceTenants {
    let mut tenants = SourceTenants::default();
    for (i, source) in gateway.identity.sources.iter().enumerate() {
        match Namespace::parse(&source.namespace) {
            Ok(namespace) => tenants.insert(source.cidr, namespace),
            Err(message) => problems.push(Diagnostic::error(
                file,
                gateway_position(file, &format!("identity.sources[{i}].namespace")),
                format!("identity.sources[{i}].namespace: {message}"),
            )),
        }
    }
    tenants
}

/// Per-namespace override maps must name valid namespaces (a typo would silently not apply).
fn check_namespace_keys(gateway: &GatewayFile, file: &Path, problems: &mut Vec<Diagnostic>) {
    let keys = gateway
        .enforcement
        .namespaces
        .keys()
        .map(|k| ("enforcement.namespaces", k))
        .chain(
            gateway
                .limits
                .namespaces
                .keys()
                .map(|k| ("limits.namespaces", k)),
        );
    for (section, key) in keys {
        if let Err(message) = Namespace::parse(key) {
            problems.push(Diagnostic::error(
                file,
                gateway_position(file, &format!("{section}.{key}")),
                format!("{section}: {message}"),
            ));
        }
    }
}

fn compile_entry(sourced: &SourcedEntry, default_export_to: &[String]) -> Result<Compiled, String> {
    let entry: &ServiceEntry = &sourced.entry;
    let spec = entry.spec.as_ref().ok_or("the object must have a spec")?;
    let hosts = spec
        .hosts
        .iter()
        .map(|h| HostPattern::parse(h).map_err(|e| format!("host {h:?}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let addresses = spec
        .addresses
        .iter()
        .map(|a| parse_net(a).ok_or_else(|| format!("address {a:?} is not an IP or CIDR")))
        .collect::<Result<Vec<_>, _>>()?;
    let ports = spec
        .ports
        .iter()
        .flatten()
        .map(compile_port)
        .collect::<Result<Vec<_>, _>>()?;
    let upstream = match spec.resolution() {
        Resolution::None | Resolution::DynamicDns => Upstream::AsRequested,
        Resolution::Dns | Resolution::DnsRoundRobin | Resolution::Static
            if spec.endpoints.is_empty() =>
        {
            Upstream::AsRequested
        }
        Resolution::Dns | Resolution::DnsRoundRobin | Resolution::Static => Upstream::Endpoints(
            spec.endpoints
                .iter()
                .flatten()
                .filter_map(|e| compile_endpoint(e.address.as_deref()?, &e.ports))
                .collect(),
        ),
    };
    let export = if spec.export_to.is_empty() {
        default_export_to
    } else {
        &spec.export_to
    };
    let visibility = compile_visibility(export, &sourced.namespace)?;
    let rule = Rule {
        namespace: sourced.namespace.clone(),
        name: sourced.name.as_str().into(),
        label: format!("{}/{}", sourced.namespace, sourced.name).into(),
        file: sourced.file.clone(),
        ports,
        upstream,
        annotations: sourced.annotations.clone(),
    };
    Ok((rule, visibility, hosts, addresses))
}

fn compile_port(port: &ServicePort) -> Result<RulePort, String> {
    let number = u16::try_from(port.number)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("port {} is outside 1-65535", port.number))?;
    let inspection = match port.protocol() {
        Ok(protocol) => match protocol.inspection() {
            WireInspection::Sni => Inspection::Sni,
            WireInspection::HostHeader => Inspection::HostHeader,
            WireInspection::None => Inspection::Opaque,
        },
        Err(raw) => return Err(format!("port {number}: unrecognized protocol {raw:?}")),
    };
    Ok(RulePort {
        number,
        name: port.name.as_deref().map(Into::into),
        inspection,
        target_port: port.target_port.and_then(|p| u16::try_from(p).ok()),
    })
}

/// An endpoint we can dial; unix-socket endpoints are not egress destinations and are skipped.
fn compile_endpoint(
    address: &str,
    ports: &std::collections::BTreeMap<String, u32>,
) -> Option<Endpoint> {
    let address = if let Ok(ip) = address.parse::<IpAddr>() {
        EndpointAddress::Ip(ip)
    } else {
        EndpointAddress::Name(Hostname::parse(address).ok()?)
    };
    let ports = ports
        .iter()
        .filter_map(|(name, port)| Some((name.as_str().into(), u16::try_from(*port).ok()?)))
        .collect();
    Some(Endpoint { address, ports })
}

fn compile_visibility(export: &[String], owner: &Namespace) -> Result<Visibility, String> {
    let mut namespaces = Vec::new();
    for raw in export {
        match ExportTo::parse(raw)? {
            ExportTo::All => return Ok(Visibility::Everyone),
            ExportTo::OwnNamespace => namespaces.push(owner.clone()),
            ExportTo::Namespace(ns) => namespaces.push(ns),
            ExportTo::Nobody => {}
        }
    }
    namespaces.sort();
    namespaces.dedup();
    Ok(Visibility::Namespaces(namespaces))
}

/// An IP (as a host prefix) or a CIDR.
fn parse_net(raw: &str) -> Option<IpNet> {
    raw.parse::<IpNet>()
        .ok()
        .or_else(|| raw.parse::<IpAddr>().ok().map(IpNet::from))
}
