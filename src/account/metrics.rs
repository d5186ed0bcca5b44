//! The metrics catalog (docs/metrics.md): every name, unit and help text described once, and typed
//! recording functions, so no other module spells a metric name or a label.
//!
//! Label values come only from configuration and fixed sets: a host a client merely asked for
//! never becomes a label value.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics::{Counter, Gauge, Histogram, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::decide::Verdict;
use crate::plan::Listener;
use crate::snapshot::Snapshot;

/// Connections by outcome.
pub const CONNECTIONS_TOTAL: &str = "egress_connections_total";
/// Connections currently open.
pub const ACTIVE_CONNECTIONS: &str = "egress_active_connections";
/// Bytes through tunnels.
pub const BYTES_TOTAL: &str = "egress_bytes_total";
/// Connection lifetime.
pub const CONNECTION_DURATION: &str = "egress_connection_duration_seconds";
/// Upstream connect latency.
pub const UPSTREAM_CONNECT_DURATION: &str = "egress_upstream_connect_duration_seconds";
/// TLS handshake failures on tenant listeners.
pub const TLS_HANDSHAKE_ERRORS: &str = "egress_tls_handshake_errors_total";
/// Reload attempts by result.
pub const CONFIG_RELOADS: &str = "egress_config_reloads_total";
/// Generation of the serving snapshot.
pub const CONFIG_GENERATION: &str = "egress_config_generation";
/// Time of the last successful load.
pub const CONFIG_LAST_SUCCESS: &str = "egress_config_last_reload_success_timestamp_seconds";
/// 1 while the last reload attempt (config and TLS files) succeeded, 0 from a failed one until
/// the next success: what a "config is broken" alert reads, so it keeps firing while the broken
/// config stays merged.
pub const CONFIG_LAST_RELOAD_SUCCESSFUL: &str = "egress_config_last_reload_successful";
/// 1 while the gateway serves the last good copy from `state_dir` because the config was invalid
/// at start-up; 0 once a reload of the config itself succeeds.
pub const CONFIG_LAST_GOOD_IN_USE: &str = "egress_config_last_good_in_use";
/// Entries per namespace in the serving snapshot.
pub const SERVICE_ENTRIES: &str = "egress_service_entries";
/// Snapshots compiled again because an entry's `egress-gateway.io/expires` came: no file was
/// read, so `egress_config_reloads_total` does not move.
pub const CONFIG_EXPIRY_RECOMPILES: &str = "egress_config_expiry_recompiles_total";
/// When each serving entry with `egress-gateway.io/expires` expires (Unix seconds). Rendered
/// from the serving snapshot at every scrape, not kept in the registry, so an entry's series
/// is gone the moment the entry expires or is removed.
pub const SERVICE_ENTRY_EXPIRY: &str = "egress_serviceentry_expiry_timestamp_seconds";
/// Tunnels asked of a parent proxy, by parent and outcome.
pub const PARENT_CONNECTS: &str = "egress_parent_connects_total";
/// Access-log lines dropped because stdout did not take them and the buffer was full.
pub const ACCESS_LOG_DROPPED: &str = "egress_access_log_dropped_total";
/// Idle upstream connections kept for forwarded HTTP/1.1.
pub const UPSTREAM_POOL_IDLE: &str = "egress_upstream_pool_idle_connections";
/// Build information.
pub const BUILD_INFO: &str = "egress_build_info";

/// Installs the Prometheus recorder and describes every metric; returns the handle `/metrics`
/// renders from.
pub fn install() -> Result<PrometheusHandle, String> {
    let connection_buckets = [
        0.001, 0.01, 0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 1800.0, 3600.0,
    ];
    let connect_buckets = [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    ];
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(CONNECTION_DURATION.to_owned()),
            &connection_buckets,
        )
        .and_then(|b| {
            b.set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full(UPSTREAM_CONNECT_DURATION.to_owned()),
                &connect_buckets,
            )
        })
        .map_err(|e| format!("metrics buckets: {e}"))?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|e| format!("metrics recorder: {e}"))?;
    describe();
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    for result in ["success", "failure"] {
        counter!(CONFIG_RELOADS, "result" => result).absolute(0);
    }
    counter!(ACCESS_LOG_DROPPED).absolute(0);
    counter!(CONFIG_EXPIRY_RECOMPILES).absolute(0);
    Ok(handle)
}

/// How often histogram samples are folded into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Starts the thread that folds histogram samples into their buckets every second. The recorder
/// queues each sample until then (or until a scrape), so without it a gateway nobody scrapes
/// grows by every connection's samples. The thread runs at normal priority: upkeep holds the
/// recorder's locks, and a preempted holder would stall a worker rendering `/metrics`.
pub fn spawn_upkeep(handle: PrometheusHandle) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || loop {
            std::thread::sleep(UPKEEP_EVERY);
            handle.run_upkeep();
        })
        .map(drop)
}

fn describe() {
    describe_counter!(
        CONNECTIONS_TOTAL,
        "Tenant connections (and HTTP/2 streams) by decision and reason."
    );
    describe_gauge!(ACTIVE_CONNECTIONS, "Tenant connections currently open.");
    describe_counter!(
        BYTES_TOTAL,
        Unit::Bytes,
        "Bytes carried, by service entry and direction (egress = tenant to world)."
    );
    describe_histogram!(
        CONNECTION_DURATION,
        Unit::Seconds,
        "Lifetime of tenant connections."
    );
    describe_histogram!(
        UPSTREAM_CONNECT_DURATION,
        Unit::Seconds,
        "Time to resolve and connect to the upstream."
    );
    describe_counter!(
        TLS_HANDSHAKE_ERRORS,
        "Failed TLS handshakes on tenant listeners."
    );
    describe_counter!(CONFIG_RELOADS, "Config load attempts by result.");
    describe_counter!(
        CONFIG_EXPIRY_RECOMPILES,
        "Snapshots compiled again, without reading a file, because a ServiceEntry expired."
    );
    describe_gauge!(
        CONFIG_GENERATION,
        "Generation of the serving config snapshot."
    );
    describe_gauge!(
        CONFIG_LAST_SUCCESS,
        Unit::Seconds,
        "Unix time of the last successful config load."
    );
    describe_gauge!(
        CONFIG_LAST_RELOAD_SUCCESSFUL,
        "1 if the last config reload attempt succeeded, 0 from a failed one until a success."
    );
    describe_gauge!(
        CONFIG_LAST_GOOD_IN_USE,
        "1 while serving the last good config from state_dir because the config was invalid at start-up."
    );
    describe_gauge!(
        SERVICE_ENTRIES,
        "ServiceEntries per namespace in the serving snapshot."
    );
    describe_gauge!(BUILD_INFO, "Build information; the value is always 1.");
    describe_gauge!(
        UPSTREAM_POOL_IDLE,
        "Idle upstream connections kept for forwarded HTTP/1.1 (upstream.pool), all tenants."
    );
    describe_counter!(
        ACCESS_LOG_DROPPED,
        "Access-log lines dropped because stdout blocked and access_log.buffer_lines were queued."
    );
    describe_counter!(
        PARENT_CONNECTS,
        "Tunnels asked of a parent proxy (upstream.proxy), by parent and outcome (connected, or the deny reason)."
    );
}

/// Every metric handle of one tenant, resolved once and shared by all its connections, so the
/// connection path never hashes label sets.
pub struct TenantHandles {
    namespace: Box<str>,
    active: [OnceLock<Gauge>; Listener::ALL.len()],
    verdicts: [[OnceLock<Counter>; Verdict::COUNT]; Listener::ALL.len()],
    duration: Histogram,
    upstream_connect: Histogram,
    bytes: RwLock<HashMap<Box<str>, (Counter, Counter)>>,
}

impl TenantHandles {
    fn new(namespace: &str) -> Self {
        Self {
            namespace: namespace.into(),
            active: std::array::from_fn(|_| OnceLock::new()),
            verdicts: std::array::from_fn(|_| std::array::from_fn(|_| OnceLock::new())),
            duration: histogram!(CONNECTION_DURATION, "namespace" => namespace.to_owned()),
            upstream_connect: histogram!(UPSTREAM_CONNECT_DURATION, "namespace" => namespace.to_owned()),
            bytes: RwLock::new(HashMap::new()),
        }
    }

    fn active(&self, listener: Listener) -> &Gauge {
        self.active[listener.index()].get_or_init(|| {
            gauge!(ACTIVE_CONNECTIONS, "namespace" => self.namespace.to_string(), "listener" => listener.as_str())
        })
    }

    /// A connection opened on `listener`.
    pub fn opened(&self, listener: Listener) {
        self.active(listener).increment(1.0);
    }

    /// A connection closed on `listener`.
    pub fn closed(&self, listener: Listener) {
        self.active(listener).decrement(1.0);
    }

    /// Counts the decision a connection ended with.
    pub fn decided(&self, listener: Listener, verdict: Verdict) {
        self.verdicts[listener.index()][verdict.index()]
            .get_or_init(|| {
                counter!(
                    CONNECTIONS_TOTAL,
                    "namespace" => self.namespace.to_string(),
                    "listener" => listener.as_str(),
                    "decision" => verdict.label(),
                    "reason" => verdict.reason_label(),
                )
            })
            .increment(1);
    }

    /// Connection lifetimes.
    pub fn duration(&self) -> &Histogram {
        &self.duration
    }

    /// Upstream connect latencies.
    pub fn upstream_connect(&self) -> &Histogram {
        &self.upstream_connect
    }

    /// Byte counters (egress, ingress) for tunnels allowed by `service_entry`.
    pub fn bytes(&self, service_entry: &str) -> (Counter, Counter) {
        if let Some(pair) = self
            .bytes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(service_entry)
        {
            return pair.clone();
        }
        let make = |direction: &'static str| {
            counter!(
                BYTES_TOTAL,
                "namespace" => self.namespace.to_string(),
                "service_entry" => service_entry.to_owned(),
                "direction" => direction,
            )
        };
        self.bytes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(service_entry.into())
            .or_insert_with(|| (make("egress"), make("ingress")))
            .clone()
    }
}

/// Tenant handles by namespace; outlives reloads (namespaces come and go rarely).
#[derive(Default)]
pub struct MetricsCache {
    tenants: RwLock<HashMap<Box<str>, Arc<TenantHandles>>>,
}

impl MetricsCache {
    /// The handles of `namespace`, created on first use.
    pub fn tenant(&self, namespace: &str) -> Arc<TenantHandles> {
        if let Some(handles) = self
            .tenants
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(namespace)
        {
            return handles.clone();
        }
        self.tenants
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(namespace.into())
            .or_insert_with(|| Arc::new(TenantHandles::new(namespace)))
            .clone()
    }
}

/// Pre-creates the zero series a dashboard expects for each configured namespace.
pub fn touch_namespace(namespace: &str, listeners: &[Listener]) {
    for listener in listeners {
        counter!(
            CONNECTIONS_TOTAL,
            "namespace" => namespace.to_owned(),
            "listener" => listener.as_str(),
            "decision" => "allow",
            "reason" => "none",
        )
        .absolute(0);
        gauge!(ACTIVE_CONNECTIONS, "namespace" => namespace.to_owned(), "listener" => listener.as_str())
            .increment(0.0);
    }
}

/// Handshake failure reasons pre-created at zero, so alerts (and the availability SLI, which
/// counts the gateway-side ones) see a series before the first failure.
const COMMON_TLS_ERRORS: [&str; 7] = [
    "no_client_cert",
    "unknown_ca",
    "expired",
    "timeout",
    "alert_received",
    "handshake_failed",
    "io",
];

/// Pre-creates `egress_tls_handshake_errors_total` series for a TLS listener.
pub fn touch_tls_errors(listener: Listener) {
    for reason in COMMON_TLS_ERRORS {
        counter!(TLS_HANDSHAKE_ERRORS, "listener" => listener.as_str(), "reason" => reason)
            .absolute(0);
    }
}

/// Pre-creates a configured parent proxy's `connected` series at zero, so the failure share the
/// alert computes has a denominator before the first tunnel.
pub fn touch_parent(parent: &str) {
    counter!(PARENT_CONNECTS, "parent" => parent.to_owned(), "outcome" => "connected").absolute(0);
}

/// Counts a failed TLS handshake.
pub fn tls_handshake_error(listener: Listener, reason: &'static str) {
    counter!(TLS_HANDSHAKE_ERRORS, "listener" => listener.as_str(), "reason" => reason)
        .increment(1);
}

/// A config snapshot that started serving.
pub struct LoadedSnapshot<'a> {
    /// Its generation.
    pub generation: u64,
    /// Unix time it was loaded.
    pub timestamp: f64,
    /// Entries per namespace.
    pub entries: &'a [(String, usize)],
}

/// Records a successful load: the new generation and entry counts.
pub fn config_loaded(loaded: &LoadedSnapshot<'_>) {
    counter!(CONFIG_RELOADS, "result" => "success").increment(1);
    gauge!(CONFIG_LAST_SUCCESS).set(loaded.timestamp);
    serving(loaded);
}

/// Records a snapshot compiled again at an expiry: the new generation and entry counts, but no
/// reload and no new load time.
pub fn expiry_recompiled(recompiled: &LoadedSnapshot<'_>) {
    counter!(CONFIG_EXPIRY_RECOMPILES).increment(1);
    serving(recompiled);
}

fn serving(snapshot: &LoadedSnapshot<'_>) {
    gauge!(CONFIG_GENERATION).set(snapshot.generation as f64);
    for (namespace, count) in snapshot.entries {
        gauge!(SERVICE_ENTRIES, "namespace" => namespace.clone()).set(*count as f64);
    }
}

/// `egress_serviceentry_expiry_timestamp_seconds` of `snapshot`, in the Prometheus text format,
/// for `/metrics` to append: one series per serving entry that has an expiry, labelled with its
/// namespace, `namespace/name` and owner (empty when none). Empty when no entry expires.
pub fn render_expiries(snapshot: &Snapshot) -> String {
    let mut out = String::new();
    let expiring = snapshot.namespaces.values().flatten().filter_map(|entry| {
        let annotations = entry.annotations.as_deref()?;
        Some((entry, annotations, annotations.expires.as_ref()?))
    });
    for (entry, annotations, expiry) in expiring {
        if out.is_empty() {
            out.push_str(&format!(
                "# HELP {SERVICE_ENTRY_EXPIRY} Unix time at which the ServiceEntry stops matching (egress-gateway.io/expires).\n# TYPE {SERVICE_ENTRY_EXPIRY} gauge\n"
            ));
        }
        let owner = annotations.owner.as_deref().unwrap_or_default();
        out.push_str(&format!(
            "{SERVICE_ENTRY_EXPIRY}{{namespace=\"{}\",service_entry=\"{}/{}\",owner=\"{}\"}} {}\n",
            entry.namespace,
            entry.namespace,
            label_value(&entry.name),
            label_value(owner),
            expiry.unix_seconds
        ));
    }
    out
}

/// A label value escaped as the text format requires (`\\`, `\"`, `\n`).
fn label_value(raw: &str) -> String {
    raw.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Records a failed load; the serving generation is unchanged.
pub fn config_failed() {
    counter!(CONFIG_RELOADS, "result" => "failure").increment(1);
}

/// Records whether the latest reload attempt as a whole (config and TLS files) succeeded.
pub fn config_reload_outcome(successful: bool) {
    gauge!(CONFIG_LAST_RELOAD_SUCCESSFUL).set(if successful { 1.0 } else { 0.0 });
}

/// Records whether the gateway serves the last good copy instead of its config directory.
pub fn last_good_in_use(in_use: bool) {
    gauge!(CONFIG_LAST_GOOD_IN_USE).set(if in_use { 1.0 } else { 0.0 });
}

/// One tunnel asked of `parent`: `connected`, or the deny reason it failed with.
pub fn parent_connect(parent: &str, outcome: &'static str) {
    counter!(PARENT_CONNECTS, "parent" => parent.to_owned(), "outcome" => outcome).increment(1);
}

/// The number of idle upstream connections in the pool.
pub fn pool_idle(idle: usize) {
    gauge!(UPSTREAM_POOL_IDLE).set(idle as f64);
}
