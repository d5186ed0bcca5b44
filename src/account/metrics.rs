//! The metrics catalog (SPEC §6): every name, unit and help text described once, and typed
//! recording functions, so no other module spells a metric name or a label.
//!
//! Label values come only from configuration and fixed sets: a host a client merely asked for
//! never becomes a label value.

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics::{Counter, Gauge, Histogram, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::decide::Verdict;

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
/// Entries per namespace in the serving snapshot.
pub const SERVICE_ENTRIES: &str = "egress_service_entries";
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
    Ok(handle)
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
        SERVICE_ENTRIES,
        "ServiceEntries per namespace in the serving snapshot."
    );
    describe_gauge!(BUILD_INFO, "Build information; the value is always 1.");
}

/// Handles for one tenant on one listener, resolved once per connection.
pub struct TenantMetrics {
    namespace: String,
    listener: &'static str,
    active: Gauge,
}

impl TenantMetrics {
    /// Resolves the handles for `namespace` on `listener`.
    pub fn new(namespace: &str, listener: &'static str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            listener,
            active: gauge!(ACTIVE_CONNECTIONS, "namespace" => namespace.to_owned(), "listener" => listener),
        }
    }

    /// A connection opened.
    pub fn opened(&self) {
        self.active.increment(1.0);
    }

    /// A connection closed.
    pub fn closed(&self) {
        self.active.decrement(1.0);
    }

    /// Counts the decision a connection ended with.
    pub fn decided(&self, verdict: Verdict) {
        counter!(
            CONNECTIONS_TOTAL,
            "namespace" => self.namespace.clone(),
            "listener" => self.listener,
            "decision" => verdict.label(),
            "reason" => verdict.reason_label(),
        )
        .increment(1);
    }

    /// Records the connection's lifetime.
    pub fn duration(&self) -> Histogram {
        histogram!(CONNECTION_DURATION, "namespace" => self.namespace.clone())
    }

    /// Records an upstream connect latency.
    pub fn upstream_connect(&self) -> Histogram {
        histogram!(UPSTREAM_CONNECT_DURATION, "namespace" => self.namespace.clone())
    }

    /// Byte counters for tunnels allowed by `service_entry` (`-` when audited without an entry).
    pub fn bytes(&self, service_entry: &str) -> (Counter, Counter) {
        let make = |direction: &'static str| {
            counter!(
                BYTES_TOTAL,
                "namespace" => self.namespace.clone(),
                "service_entry" => service_entry.to_owned(),
                "direction" => direction,
            )
        };
        (make("egress"), make("ingress"))
    }
}

/// Pre-creates the zero series a dashboard expects for each configured namespace.
pub fn touch_namespace(namespace: &str, listeners: &[&'static str]) {
    for listener in listeners {
        counter!(
            CONNECTIONS_TOTAL,
            "namespace" => namespace.to_owned(),
            "listener" => *listener,
            "decision" => "allow",
            "reason" => "none",
        )
        .absolute(0);
        gauge!(ACTIVE_CONNECTIONS, "namespace" => namespace.to_owned(), "listener" => *listener)
            .increment(0.0);
    }
}

/// Handshake failure reasons pre-created at zero, so alerts see a series before the first failure.
const COMMON_TLS_ERRORS: [&str; 4] = ["no_client_cert", "unknown_ca", "expired", "timeout"];

/// Pre-creates `egress_tls_handshake_errors_total` series for a TLS listener.
pub fn touch_tls_errors(listener: &'static str) {
    for reason in COMMON_TLS_ERRORS {
        counter!(TLS_HANDSHAKE_ERRORS, "listener" => listener, "reason" => reason).absolute(0);
    }
}

/// Counts a failed TLS handshake.
pub fn tls_handshake_error(listener: &'static str, reason: &'static str) {
    counter!(TLS_HANDSHAKE_ERRORS, "listener" => listener, "reason" => reason).increment(1);
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
    gauge!(CONFIG_GENERATION).set(loaded.generation as f64);
    gauge!(CONFIG_LAST_SUCCESS).set(loaded.timestamp);
    for (namespace, count) in loaded.entries {
        gauge!(SERVICE_ENTRIES, "namespace" => namespace.clone()).set(*count as f64);
    }
}

/// Records a failed load; the serving generation is unchanged.
pub fn config_failed() {
    counter!(CONFIG_RELOADS, "result" => "failure").increment(1);
}
