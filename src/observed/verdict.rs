//! A logged flow put to the planner again, as the listener it arrived on would put it: a
//! `CONNECT` (and the tunnel's ClientHello when one was logged), a ClientHello on the SNI
//! listener, a request with that `Host` on the HTTP listener. Replay and suggest decide through
//! here, so they agree with `run` and `explain`.

use crate::names::{Host, Namespace, Target};
use crate::plan::{self, Ask, DenyReason, Listener, Obligation, Tenant, Verdict};
use crate::snapshot::Snapshot;
use crate::sniff::hello_reader::HelloSummary;

use super::{Flow, Seen};

/// What the planner says about one flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// The verdict, after the tunnel's SNI when one was logged.
    pub verdict: Verdict,
    /// `namespace/name` of the entry that matched.
    pub entry: Option<String>,
}

/// Why a flow cannot be put to the planner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreplayable {
    /// The namespace is `unknown` or not a namespace name.
    Tenant,
    /// The listener is none the gateway has.
    Listener,
}

/// Plans `flow` against `snapshot` exactly as its listener would. A tunnel that must show its
/// SNI is judged after the ClientHello too: with the SNI logged; without one when the log says
/// the hello had none (`missing_sni`); else (the hello was never read, the flow having been
/// refused before) with the host as SNI, as a well-behaved client sends it.
pub fn replay(snapshot: &Snapshot, flow: &Flow, seen: &Seen) -> Result<Replayed, Unreplayable> {
    let namespace = Namespace::parse(&flow.namespace)
        .ok()
        .filter(|ns| ns.as_str() != Namespace::UNKNOWN)
        .ok_or(Unreplayable::Tenant)?;
    let listener: Listener = flow.listener.parse().map_err(|_| Unreplayable::Listener)?;
    let tenant = Tenant::assumed(namespace);
    let hello_had_none = flow.sni.is_none() && *seen.reason == *DenyReason::MissingSni.as_str();
    let server_name = match &flow.sni {
        Some(sni) => Some(sni.to_string()),
        None if hello_had_none => None,
        None => Some(flow.host.to_string()),
    };
    let hello = HelloSummary {
        server_name_count: usize::from(server_name.is_some()),
        server_name,
        ..HelloSummary::default()
    };
    let authority = match flow.host.parse::<std::net::Ipv6Addr>() {
        Ok(_) => format!("[{}]:{}", flow.host, flow.port),
        Err(_) => format!("{}:{}", flow.host, flow.port),
    };
    let target = Host::parse(&flow.host).ok().map(|host| Target {
        host,
        port: flow.port,
    });
    let Some(ask) =
        Ask::as_listener_would(listener, target.as_ref(), &hello, &authority, flow.port)
    else {
        return Ok(Replayed {
            verdict: Verdict::Deny(plan::DenyReason::MalformedRequest),
            entry: None,
        });
    };
    let plan = plan::plan(snapshot, &tenant, listener, &ask);
    let mut verdict = plan.decision.verdict;
    if matches!(plan.obligation, Obligation::Sni(_)) {
        verdict = plan.after_hello(&hello);
    }
    Ok(Replayed {
        verdict,
        entry: plan.decision.rule.map(|rule| rule.label.to_string()),
    })
}
