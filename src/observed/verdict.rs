//! A logged flow put to the planner again, as the listener it arrived on would put it: a
//! `CONNECT` (and the tunnel's ClientHello when one was logged), a ClientHello on the SNI
//! listener, a request with that `Host` on the HTTP listener. Replay and suggest decide through
//! here, so they agree with `run` and `explain`.

use crate::names::{Host, Namespace, Target};
use crate::plan::{self, Ask, Listener, Obligation, Tenant, Verdict};
use crate::snapshot::Snapshot;
use crate::sniff::hello_reader::HelloSummary;

use super::Flow;

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

/// Plans `flow` against `snapshot` exactly as its listener would.
pub fn replay(snapshot: &Snapshot, flow: &Flow) -> Result<Replayed, Unreplayable> {
    let namespace = Namespace::parse(&flow.namespace)
        .ok()
        .filter(|ns| ns.as_str() != Namespace::UNKNOWN)
        .ok_or(Unreplayable::Tenant)?;
    let listener: Listener = flow.listener.parse().map_err(|_| Unreplayable::Listener)?;
    let tenant = Tenant::assumed(namespace);
    let hello = HelloSummary {
        server_name: Some(flow.sni.as_deref().unwrap_or(&flow.host).to_owned()),
        server_name_count: 1,
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
    if matches!(plan.obligation, Obligation::Sni(_)) && flow.sni.is_some() {
        verdict = plan.after_hello(&hello);
    }
    Ok(Replayed {
        verdict,
        entry: plan.decision.rule.map(|rule| rule.label.to_string()),
    })
}
