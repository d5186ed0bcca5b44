//! The admin server: `/metrics`, `/healthz`, `/readyz`, `/config` (docs/metrics.md).
//!
//! Meant for the cluster's monitoring network only; it reads shared state and never changes it.
//! `/readyz` answers 200 `ready`, 200 `degraded: …` while the last good config from `state_dir`
//! serves because the config directory was invalid at start-up, 503 `starting` / `draining`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::account::metrics;
use crate::snapshot::SnapshotCell;

/// What the admin endpoints report on.
pub struct AdminState {
    /// Current configuration.
    pub snapshots: Arc<SnapshotCell>,
    /// Renders the metrics registry.
    pub prometheus: PrometheusHandle,
    /// Listeners bound and config loaded.
    pub ready: AtomicBool,
    /// Shutdown began: `/readyz` answers 503 so load balancers move traffic away.
    pub draining: AtomicBool,
    /// Serving the last good copy because the config was invalid at start-up: `/readyz` still
    /// answers 200 (the pod serves the last valid policy) but says so in its body.
    pub degraded: AtomicBool,
}

/// Serves admin requests on `listener` until `stop` is cancelled.
pub async fn serve(listener: TcpListener, state: Arc<AdminState>, stop: CancellationToken) {
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "admin accept failed");
                    continue;
                }
            },
            _ = stop.cancelled() => return,
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(route(&state, &req)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn route(state: &AdminState, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
    }
    match req.uri().path() {
        "/metrics" => {
            let mut body = state.prometheus.render();
            body.push_str(&metrics::render_expiries(&state.snapshots.load()));
            let mut response = text(StatusCode::OK, body);
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => {
            if state.draining.load(Ordering::Acquire) {
                text(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
            } else if state.ready.load(Ordering::Acquire) {
                if state.degraded.load(Ordering::Acquire) {
                    text(StatusCode::OK, "degraded: serving the last good config; the config directory is invalid (see the log)\n")
                } else {
                    text(StatusCode::OK, "ready\n")
                }
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "starting\n")
            }
        }
        "/config" => {
            let mut response = text(StatusCode::OK, config_json(state));
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("application/json"),
            );
            response
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn config_json(state: &AdminState) -> String {
    let snapshot = state.snapshots.load();
    let files: Vec<_> = snapshot
        .files
        .iter()
        .map(|f| json!({"path": f.path.display().to_string(), "sha256": f.sha256}))
        .collect();
    // Every namespace with live or expired entries: one whose entries all expired still shows.
    let mut namespaces: BTreeMap<&str, (Vec<&str>, Vec<&str>)> = BTreeMap::new();
    for (ns, entries) in &snapshot.namespaces {
        let live = &mut namespaces.entry(ns.as_str()).or_default().0;
        live.extend(entries.iter().map(|entry| entry.name.as_str()));
    }
    for entry in &snapshot.expired {
        let expired = &mut namespaces.entry(entry.namespace.as_str()).or_default().1;
        expired.push(entry.name.as_str());
    }
    let namespaces: serde_json::Map<String, serde_json::Value> = namespaces
        .into_iter()
        .map(|(ns, (entries, expired))| {
            let mode = match snapshot.policy.mode(ns) {
                crate::config::gateway::Mode::Enforce => "enforce",
                crate::config::gateway::Mode::Audit => "audit",
            };
            let body = json!({"mode": mode, "entries": entries, "expired": expired});
            (ns.to_owned(), body)
        })
        .collect();
    let body = json!({
        "generation": snapshot.generation,
        "loaded_at": crate::account::access_log::rfc3339(snapshot.loaded_at),
        "next_expiry": snapshot.next_expiry.map(crate::account::access_log::rfc3339),
        "files": files,
        "namespaces": namespaces,
    });
    let mut text = serde_json::to_string_pretty(&body).unwrap_or_default();
    text.push('\n');
    text
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}
