//! The per-connection record: filled in as the connection moves through the stages, and on drop
//! (normal end, early deny, error or panic unwinding) emits the metrics and the one access-log
//! line exactly once. It is made only once the tenant is known and has no way to be dropped
//! unrecorded, so the active-connections gauge it raised is always lowered again.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use metrics::Counter;

use std::sync::Arc;

use super::access_log::{self, AccessLogLine};
use super::metrics::TenantHandles;
use super::Accounting;
use crate::config::serviceentry::EntryAnnotations;
use crate::decide::{DenyReason, Verdict};
use crate::names::{Namespace, Target};
use crate::plan::{Listener, Plan, Tenant};
use crate::splice::Transferred;

/// What is known about one connection so far.
pub struct ConnectionRecord {
    accounting: Arc<Accounting>,
    started: Instant,
    listener: Listener,
    src: SocketAddr,
    namespace: Option<Namespace>,
    identity: String,
    tenant: Option<Arc<TenantHandles>>,
    host: Option<String>,
    port: Option<u16>,
    sni: Option<String>,
    ech: bool,
    verdict: Option<Verdict>,
    service_entry: Option<Box<str>>,
    /// The matched entry's owner and ticket; a pointer, so a record of an entry without them
    /// grows by nothing else.
    annotations: Option<Arc<EntryAnnotations>>,
    upstream: Option<SocketAddr>,
    parent: Option<Box<str>>,
    bytes: Transferred,
    byte_counters: Option<(Counter, Counter)>,
}

impl ConnectionRecord {
    /// Starts the record of a connection (or request, or stream) of `tenant`; counts it as
    /// active for the tenant until the record is dropped.
    pub fn new(
        accounting: Arc<Accounting>,
        listener: Listener,
        src: SocketAddr,
        tenant: &Tenant,
    ) -> Self {
        let handles = tenant.namespace().map(|namespace| {
            let handles = accounting.metrics.tenant(namespace.as_str());
            handles.opened(listener);
            handles
        });
        Self {
            accounting,
            started: Instant::now(),
            listener,
            src,
            namespace: tenant.namespace().cloned(),
            identity: tenant.identity().to_owned(),
            tenant: handles,
            host: None,
            port: None,
            sni: None,
            ech: false,
            verdict: None,
            service_entry: None,
            annotations: None,
            upstream: None,
            parent: None,
            bytes: Transferred::default(),
            byte_counters: None,
        }
    }

    /// The plan: its target, verdict and the entry that allowed (or audited) it.
    pub fn plan(&mut self, plan: &Plan<'_>) {
        if let Some(target) = &plan.target {
            self.target(target);
        }
        self.verdict(plan.decision.verdict);
        if let Some(rule) = plan.decision.rule {
            self.service_entry = Some(rule.label.clone());
            self.annotations = rule.annotations.clone();
        }
    }

    /// The destination the tenant asked for.
    pub fn target(&mut self, target: &Target) {
        self.host = Some(target.host.to_string());
        self.port = Some(target.port);
    }

    /// The SNI (and ECH flag) of the tenant's ClientHello.
    pub fn sni(&mut self, sni: Option<&str>, ech: bool) {
        self.sni = sni.map(str::to_owned);
        self.ech = ech;
    }

    /// The decision; a later call (a deny after an allow, say) replaces it.
    pub fn verdict(&mut self, verdict: Verdict) {
        self.verdict = Some(verdict);
    }

    /// A deny for `reason`.
    pub fn deny(&mut self, reason: DenyReason) {
        self.verdict(Verdict::Deny(reason));
    }

    /// The destination is reached through this parent proxy (`upstream.proxy`).
    pub fn parent(&mut self, name: &str) {
        self.parent = Some(name.into());
    }

    /// An idle upstream connection to `upstream` is reused: no connect, no latency sample.
    pub fn reused(&mut self, upstream: SocketAddr) {
        self.upstream = Some(upstream);
    }

    /// The upstream connection is up after `took`.
    pub fn connected(&mut self, upstream: SocketAddr, took: Duration) {
        self.upstream = Some(upstream);
        if let Some(tenant) = &self.tenant {
            tenant.upstream_connect().record(took.as_secs_f64());
        }
    }

    /// Bytes moved since the last call; advances `egress_bytes_total` while the tunnel is open.
    pub fn progress(&mut self, delta: Transferred) {
        self.bytes.egress += delta.egress;
        self.bytes.ingress += delta.ingress;
        if self.byte_counters.is_none() {
            if let Some(tenant) = &self.tenant {
                let entry = self.service_entry.as_deref().unwrap_or("-");
                self.byte_counters = Some(tenant.bytes(entry));
            }
        }
        if let Some((egress, ingress)) = &self.byte_counters {
            egress.increment(delta.egress);
            ingress.increment(delta.ingress);
        }
    }
}

impl Drop for ConnectionRecord {
    fn drop(&mut self) {
        let verdict = self
            .verdict
            .unwrap_or(Verdict::Deny(DenyReason::MalformedRequest));
        let namespace = self
            .namespace
            .as_ref()
            .map_or(Namespace::UNKNOWN, Namespace::as_str);
        let duration = self.started.elapsed();
        match &self.tenant {
            Some(tenant) => {
                tenant.decided(self.listener, verdict);
                tenant.duration().record(duration.as_secs_f64());
                tenant.closed(self.listener);
            }
            None => self
                .accounting
                .metrics
                .tenant(namespace)
                .decided(self.listener, verdict),
        }
        self.accounting.log.write(&AccessLogLine {
            ts: access_log::rfc3339(SystemTime::now()),
            listener: self.listener.as_str(),
            namespace,
            identity: &self.identity,
            src: self.src,
            host: self.host.as_deref(),
            port: self.port,
            sni: self.sni.as_deref(),
            decision: verdict.label(),
            reason: verdict.reason_label(),
            service_entry: self.service_entry.as_deref(),
            owner: self.annotations.as_deref().and_then(|a| a.owner.as_deref()),
            ticket: self
                .annotations
                .as_deref()
                .and_then(|a| a.ticket.as_deref()),
            upstream: self.upstream,
            parent: self.parent.as_deref(),
            bytes_egress: self.bytes.egress,
            bytes_ingress: self.bytes.ingress,
            duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
            ech: self.ech,
        });
    }
}
