//! A compiled ServiceEntry: what it allows and where allowed traffic goes.
//!
//! Built once per snapshot by `snapshot::compile`; read-only on the connection path. Turning a
//! matched rule into dial targets allocates nothing.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use crate::config::serviceentry::EntryAnnotations;

use crate::names::{Host, Hostname, Namespace, Target};

/// What the gateway inspects on an allowed port, from the port's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inspection {
    /// TLS / HTTPS: the ClientHello SNI must name the host.
    Sni,
    /// HTTP family: each request's Host must name an allowlisted host.
    HostHeader,
    /// TCP and other opaque protocols: nothing to check inside the stream.
    Opaque,
}

/// One allowed port of an entry.
#[derive(Debug, Clone)]
pub struct RulePort {
    /// Port number the tenant connects to.
    pub number: u16,
    /// Port name, used by endpoints' `ports` maps.
    pub name: Option<Box<str>>,
    /// What is checked inside the stream.
    pub inspection: Inspection,
    /// Port on the endpoint when it differs (`targetPort`).
    pub target_port: Option<u16>,
}

/// Where an endpoint lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointAddress {
    /// Written as an IP: trusted, dialled as is.
    Ip(IpAddr),
    /// Written as a name (resolution DNS): resolved and checked against the deny list.
    Name(Hostname),
}

/// One `endpoints[]` element.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Address of the endpoint.
    pub address: EndpointAddress,
    /// Port name → port on this endpoint.
    pub ports: Vec<(Box<str>, u16)>,
}

/// Where allowed connections go.
#[derive(Debug, Clone)]
pub enum Upstream {
    /// Resolution NONE / DNS without endpoints: the host the tenant asked for, resolved by the
    /// gateway and deny-list checked (an IP literal matched through `addresses` is trusted).
    AsRequested,
    /// STATIC, or DNS with endpoints: these endpoints, in order.
    Endpoints(Vec<Endpoint>),
}

/// A compiled ServiceEntry.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Owning namespace.
    pub namespace: Namespace,
    /// `metadata.name`.
    pub name: Box<str>,
    /// `namespace/name`, the `service_entry` label and log value.
    pub label: Box<str>,
    /// File the entry was read from.
    pub file: PathBuf,
    /// Allowed ports.
    pub ports: Vec<RulePort>,
    /// Where allowed connections go.
    pub upstream: Upstream,
    /// Expiry, owner and ticket (`egress-gateway.io/*`): the decision skips the rule from its
    /// expiry instant on (the compile at that instant then leaves it out); the access log and
    /// `explain` name owner and ticket.
    pub annotations: Option<Arc<EntryAnnotations>>,
}

impl Rule {
    /// When the rule stops matching, if it expires.
    pub fn expires(&self) -> Option<SystemTime> {
        self.annotations.as_ref()?.expires.as_ref().map(|e| e.at)
    }

    /// The allowed port numbered `number`, if any.
    pub fn port(&self, number: u16) -> Option<&RulePort> {
        self.ports.iter().find(|p| p.number == number)
    }

    /// Dial targets for `target` through `port`, in preference order; allocates nothing.
    pub fn dial_targets<'a>(
        &'a self,
        target: &'a Target,
        port: &'a RulePort,
    ) -> impl Iterator<Item = DialTarget> + 'a {
        let endpoints = match &self.upstream {
            Upstream::Endpoints(endpoints) => endpoints.as_slice(),
            Upstream::AsRequested => &[],
        };
        let requested = matches!(self.upstream, Upstream::AsRequested)
            .then(|| DialTarget::requested(target, true));
        requested
            .into_iter()
            .chain(endpoints.iter().map(move |endpoint| {
                let number = port
                    .name
                    .as_deref()
                    .and_then(|name| {
                        endpoint
                            .ports
                            .iter()
                            .find(|(n, _)| n.as_ref() == name)
                            .map(|(_, p)| *p)
                    })
                    .or(port.target_port)
                    .unwrap_or(port.number);
                match &endpoint.address {
                    EndpointAddress::Ip(ip) => DialTarget::Trusted(SocketAddr::new(*ip, number)),
                    EndpointAddress::Name(name) => DialTarget::Resolve(name.clone(), number),
                }
            }))
    }
}

/// One way to reach an upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialTarget {
    /// An address an operator wrote down: dialled without the deny-list check.
    Trusted(SocketAddr),
    /// An address a tenant supplied: dialled only if the deny list allows it.
    Checked(SocketAddr),
    /// A name to resolve; every answer is deny-list checked.
    Resolve(Hostname, u16),
}

impl DialTarget {
    /// The target exactly as the tenant asked for it; an IP literal is trusted only when an
    /// operator-written `addresses` entry matched it.
    pub fn requested(target: &Target, ip_is_trusted: bool) -> Self {
        match &target.host {
            Host::Ip(ip) if ip_is_trusted => Self::Trusted(SocketAddr::new(*ip, target.port)),
            Host::Ip(ip) => Self::Checked(SocketAddr::new(*ip, target.port)),
            Host::Name(name) => Self::Resolve(name.clone(), target.port),
        }
    }
}
