//! The per-connection record: filled in as the connection moves through the stages, and on drop
//! (normal end, early deny, error or panic unwinding) emits the metrics and the one access-log
//! line exactly once.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use metrics::Counter;

use std::sync::Arc;

use super::access_log::{self, AccessLogLine};
use super::metrics::TenantHandles;
use super::Accounting;
use crate::decide::{DenyReason, Verdict};
use crate::names::{Namespace, Target};
use crate::splice::Transferred;

/// What is known about one connection so far.
pub struct ConnectionRecord {
    accounting: Arc<Accounting>,
    started: Instant,
    listener: &'static str,
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
    upstream: Option<SocketAddr>,
    bytes: Transferred,
    byte_counters: Option<(Counter, Counter)>,
    handed_over: bool,
}

impl ConnectionRecord {
    /// Starts the record when a connection is accepted.
    pub fn new(accounting: Arc<Accounting>, listener: &'static str, src: SocketAddr) -> Self {
        Self {
            accounting,
            started: Instant::now(),
            listener,
            src,
            namespace: None,
            identity: src.ip().to_string(),
            tenant: None,
            host: None,
            port: None,
            sni: None,
            ech: false,
            verdict: None,
            service_entry: None,
            upstream: None,
            bytes: Transferred::default(),
            byte_counters: None,
            handed_over: false,
        }
    }

    /// The tenant is known; counts the connection as active for it.
    pub fn tenant(&mut self, namespace: &Namespace, identity: Option<&str>) {
        let handles = self.accounting.metrics.tenant(namespace.as_str());
        handles.opened(self.listener);
        self.tenant = Some(handles);
        self.namespace = Some(namespace.clone());
        if let Some(identity) = identity {
            self.identity = identity.to_owned();
        }
    }

    /// The identity presented, when no tenant could be derived from it.
    pub fn identity(&mut self, identity: &str) {
        self.identity = identity.to_owned();
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

    /// The ServiceEntry that allowed (or audited) the connection.
    pub fn service_entry(&mut self, label: &str) {
        self.service_entry = Some(label.into());
    }

    /// The upstream connection is up after `took`.
    pub fn connected(&mut self, upstream: SocketAddr, took: Duration) {
        self.upstream = Some(upstream);
        if let Some(tenant) = &self.tenant {
            tenant.upstream_connect().record(took.as_secs_f64());
        }
    }

    /// The connection was handed to another front end that keeps its own records (an
    /// absolute-form request on the CONNECT listener): this record writes nothing.
    pub fn hand_over(mut self) {
        self.handed_over = true;
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
        if self.handed_over {
            return;
        }
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
            listener: self.listener,
            namespace,
            identity: &self.identity,
            src: self.src,
            host: self.host.as_deref(),
            port: self.port,
            sni: self.sni.as_deref(),
            decision: verdict.label(),
            reason: verdict.reason_label(),
            service_entry: self.service_entry.as_deref(),
            upstream: self.upstream,
            bytes_egress: self.bytes.egress,
            bytes_ingress: self.bytes.ingress,
            duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
            ech: self.ech,
        });
    }
}
