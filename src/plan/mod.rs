//! The one decision path. Every front end turns what arrived into an [`Ask`], and [`plan`] turns
//! the connection's [`Tenant`], the listener and that ask into the whole [`Plan`]: target,
//! verdict with its rule, dial targets, what later bytes must still show ([`Obligation`]), and the
//! refusal to send. `explain` prints the same plan.
//!
//! Pure and synchronous: no sockets, clocks, metrics or logs. Front ends do the I/O a plan says
//! and record its outcome; they never decide, identify a tenant or check an SNI themselves.

pub mod answer;
pub mod listener;
pub mod request;
pub mod sni;
pub mod tenant;

#[cfg(test)]
mod tests;

/// The words of a plan, re-exported so that front ends name only the planner.
pub use crate::decide::{DenyReason, DialTarget, Verdict};
/// What a client presented, the planner's input for the tenant.
pub use crate::identify::Presented;
pub use answer::{Alert, Refusal};
pub use listener::Listener;
pub use request::{RequestHead, RequestTarget};
pub use tenant::{identify, Tenant};

use std::sync::Arc;

use crate::config::gateway::Mode;
use crate::decide::{Decision, Inspection};
use crate::dial::Parent;
use crate::names::{Host, Hostname, Target};
use crate::snapshot::Snapshot;
use crate::sniff::hello_reader::HelloSummary;

/// What a tenant asked for on one connection, stream or request.
#[derive(Debug, Clone, Copy)]
pub enum Ask<'a> {
    /// A `CONNECT` (HTTP/1.1 or HTTP/2) to this authority.
    Connect(&'a Target),
    /// A ClientHello on the SNI listener; `port` is the original destination port.
    ClientHello {
        /// What the hello says.
        hello: &'a HelloSummary,
        /// The port the tenant dialled.
        port: u16,
    },
    /// An HTTP request to forward (http listener, absolute-form on the CONNECT listeners).
    Request {
        /// What the request head says.
        head: RequestHead<'a>,
        /// The port a request without one goes to.
        default_port: u16,
    },
}

impl<'a> Ask<'a> {
    /// What `listener` asks when a tenant wants `port` on the host of `authority`: the hello on
    /// the SNI listener, a request with that `Host` on the HTTP listener, a `CONNECT` to
    /// `target` elsewhere (`None` when the host is no valid name or IP literal). `explain` and
    /// the access-log replay build their asks here, so they put them as the listeners do.
    pub fn as_listener_would(
        listener: Listener,
        target: Option<&'a Target>,
        hello: &'a HelloSummary,
        authority: &'a str,
        port: u16,
    ) -> Option<Self> {
        match (listener, target) {
            (Listener::Sni, _) => Some(Ask::ClientHello { hello, port }),
            (Listener::Http, _) => Some(Ask::Request {
                head: RequestHead {
                    host: Some(authority),
                    host_count: 1,
                    ..RequestHead::default()
                },
                default_port: port,
            }),
            (_, target) => target.map(Ask::Connect),
        }
    }
}

/// What a tunnel's first bytes must still show once the plan has let it open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Obligation {
    /// Nothing: the bytes are opaque.
    None,
    /// A TLS port: the ClientHello's SNI must name this host.
    Sni(Hostname),
    /// An HTTP port: every request in the tunnel must name this target's host.
    Host(Target),
}

/// The whole answer to one ask.
#[derive(Debug, Clone)]
pub struct Plan<'s> {
    /// The listener the ask arrived on.
    pub listener: Listener,
    /// The destination, once the ask named a valid one.
    pub target: Option<Target>,
    /// Verdict, matched entry and port, and the tenant's enforcement mode.
    pub decision: Decision<'s>,
    /// What the tunnel's bytes must still show.
    pub obligation: Obligation,
    /// `Host` for a forwarded request's upstream.
    pub host_header: Option<String>,
    /// The tenant's concurrent connection limit.
    pub connection_limit: usize,
    /// The parent proxy the destination is reached through (`upstream.proxy`), if any.
    pub parent: Option<&'s Arc<Parent>>,
    refuse_ech: bool,
}

impl<'s> Plan<'s> {
    /// The deny reason and how to tell the tenant, when the plan refuses.
    pub fn refusal(&self) -> Option<(DenyReason, Refusal)> {
        match self.decision.verdict {
            Verdict::Deny(reason) => Some((
                reason,
                Refusal::of(reason, self.listener.answers_with_alerts()),
            )),
            _ => None,
        }
    }

    /// Where to dial, in preference order (empty when refused).
    pub fn dial_targets(&self) -> impl Iterator<Item = DialTarget> + '_ {
        self.target
            .as_ref()
            .filter(|_| self.decision.verdict.lets_through())
            .into_iter()
            .flat_map(|target| self.decision.dial_targets(target))
    }

    /// The verdict once the tunnel's ClientHello is known (the SNI obligation); a refusal is a
    /// TLS alert, since the tenant is talking TLS by then.
    pub fn after_hello(&self, hello: &HelloSummary) -> Verdict {
        match &self.obligation {
            Obligation::Sni(expected) => match sni::judge(hello, Some(expected), self.refuse_ech) {
                Ok(_) => self.decision.verdict,
                Err(reason) => Verdict::deny_in(reason, self.decision.mode),
            },
            _ => self.decision.verdict,
        }
    }

    /// The verdict for one request inside the tunnel (the Host obligation); a refusal is an HTTP
    /// answer inside the tunnel.
    pub fn within_tunnel(&self, head: &RequestHead<'_>) -> Verdict {
        match &self.obligation {
            Obligation::Host(tunnel) => match request::within_tunnel(head, tunnel) {
                Ok(()) => self.decision.verdict,
                Err(reason) => Verdict::deny_in(reason, self.decision.mode),
            },
            _ => self.decision.verdict,
        }
    }
}

/// Plans `ask` from `tenant` on `listener` against `snapshot`.
pub fn plan<'s>(
    snapshot: &'s Snapshot,
    tenant: &Tenant,
    listener: Listener,
    ask: &Ask<'_>,
) -> Plan<'s> {
    let mode = tenant
        .namespace()
        .map_or(Mode::Enforce, |ns| snapshot.policy.mode(ns.as_str()));
    let mut plan = Plan {
        listener,
        target: None,
        decision: refused(DenyReason::MalformedRequest, mode),
        obligation: Obligation::None,
        host_header: None,
        connection_limit: tenant
            .namespace()
            .map_or(0, |ns| snapshot.connection_limit(ns.as_str())),
        parent: snapshot
            .parents
            .for_namespace(tenant.namespace().map(|ns| ns.as_str())),
        refuse_ech: snapshot.require_sni_match,
    };
    let (target, hello) = match ask {
        // Port 0 names no destination: a CONNECT head saying so is malformed before its tenant
        // is looked at, and `explain`, which takes the port apart from the host, must agree.
        Ask::Connect(target) if target.port == 0 => return plan,
        Ask::Connect(target) => ((*target).clone(), None),
        Ask::ClientHello { hello, port } => match sni::judge(hello, None, false) {
            Ok(name) => (
                Target {
                    host: Host::Name(name),
                    port: *port,
                },
                Some(*hello),
            ),
            Err(reason) => {
                plan.decision = refused(reason, mode);
                return refuse_unknown(plan, tenant);
            }
        },
        Ask::Request { head, default_port } => match request::target(head, *default_port) {
            Ok(RequestTarget {
                target,
                host_header,
            }) => {
                plan.host_header = Some(host_header);
                (target, None)
            }
            Err(reason) => {
                plan.decision = refused(reason, mode);
                return refuse_unknown(plan, tenant);
            }
        },
    };
    plan.target = Some(target);
    let Some(namespace) = tenant.namespace() else {
        plan.decision = refused(DenyReason::UnknownTenant, mode);
        return plan;
    };
    let Some(target) = plan.target.as_ref() else {
        return plan;
    };
    plan.decision = snapshot.policy.decide(namespace.as_str(), target);
    if !plan.decision.verdict.lets_through() {
        return plan;
    }
    if let Some(hello) = hello {
        // The SNI listener: the hello was the ask, so its ECH rule applies now.
        if hello.ech && plan.refuse_ech {
            plan.decision.verdict = Verdict::deny_in(DenyReason::EncryptedClientHello, mode);
        }
        return plan;
    }
    plan.obligation = match (plan.decision.inspection(), &target.host, ask) {
        (Inspection::Sni, Host::Name(name), Ask::Connect(_)) if snapshot.require_sni_match => {
            Obligation::Sni(name.clone())
        }
        (Inspection::HostHeader, _, Ask::Connect(_)) => Obligation::Host(target.clone()),
        _ => Obligation::None,
    };
    plan
}

/// A tenant that is unknown is told so before anything about its ask.
fn refuse_unknown<'s>(mut plan: Plan<'s>, tenant: &Tenant) -> Plan<'s> {
    if tenant.namespace().is_none() {
        plan.decision = refused(DenyReason::UnknownTenant, plan.decision.mode);
    }
    plan
}

fn refused<'s>(reason: DenyReason, mode: Mode) -> Decision<'s> {
    Decision {
        verdict: Verdict::Deny(reason),
        rule: None,
        port: None,
        mode,
    }
}
