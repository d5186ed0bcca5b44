//! What the reload thread does: re-read the config directory (and TLS files) and swap the
//! snapshot when it is valid, or — at an entry's `egress-gateway.io/expires` — compile the config
//! last read again, reading no file, so the expired entry stops matching at that instant.
//!
//! Either way open connections keep the snapshot they loaded: a tunnel opened before an expiry
//! runs on, exactly as across a reload.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::account::metrics;
use crate::admin::AdminState;
use crate::app::{self, load_reusing, persist_last_good, LoadCaches};
use crate::config::load::{FileDigest, Sources};
use crate::config::LoadedConfig;
use crate::pace::Pacer;
use crate::plan::Listener;
use crate::snapshot::{self, Snapshot, SnapshotCell};
use crate::tls::TlsReloader;

use super::Jobs;

/// What successive reloads carry over.
pub(crate) struct ReloadState {
    /// The serving generation.
    pub(crate) generation: u64,
    /// What the last load parsed and compiled, reused while unchanged.
    pub(crate) caches: LoadCaches,
    /// The files whose copy `state_dir` holds.
    pub(crate) persisted: Vec<FileDigest>,
    /// The config the serving snapshot was compiled from, compiled again at an expiry.
    pub(crate) loaded: LoadedConfig,
}

/// Re-reads the config directory and swaps the snapshot when it is valid.
pub struct Reloader {
    /// The config directory.
    pub(crate) dir: PathBuf,
    /// Where snapshots are published.
    pub(crate) snapshots: Arc<SnapshotCell>,
    /// The listeners whose zero series each namespace gets.
    pub(crate) listeners: Vec<Listener>,
    /// Held for the whole reload, so reloads never interleave.
    pub(crate) state: Mutex<ReloadState>,
    /// The mTLS listener's certificates, reloaded with the config.
    pub(crate) tls: Option<Arc<TlsReloader>>,
    /// Told when a reload ends serving the last good copy.
    pub(crate) admin: Arc<AdminState>,
}

/// Why a snapshot is published; counted apart, so an expiry never looks like a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Start-up or a reload of the config files.
    Load,
    /// An entry's `egress-gateway.io/expires` came.
    Expiry,
}

impl Reloader {
    /// One reload attempt of the config and the TLS files: on any error the previous snapshot
    /// (or certificate) keeps serving; the outcome is logged and counted in the metrics.
    pub fn reload(&self) {
        let tls_ok = self.tls.as_deref().is_none_or(reload_tls);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let next = state.generation + 1;
        let config_ok = match load_reusing(&Sources::dir(&self.dir), next, &mut state.caches) {
            Ok((loaded, snapshot)) => {
                for warning in &loaded.warnings {
                    tracing::warn!("{warning}");
                }
                publish(&snapshot, &self.listeners, Cause::Load);
                self.snapshots.store(snapshot);
                state.generation = next;
                tracing::info!(generation = next, "config reloaded");
                state.persisted = persist_last_good(&loaded, &state.persisted);
                state.loaded = loaded;
                if self.admin.degraded.swap(false, Ordering::AcqRel) {
                    tracing::info!("the config directory is valid again: the last good copy is no longer in use");
                }
                metrics::last_good_in_use(false);
                true
            }
            Err(problems) => {
                app::log_problems(&problems);
                metrics::config_failed();
                tracing::error!(
                    errors = problems.iter().filter(|p| p.is_error()).count(),
                    "config reload failed: keeping the previous config"
                );
                false
            }
        };
        metrics::config_reload_outcome(tls_ok && config_ok);
    }

    /// Compiles the config last read again, judged at `due` (the expiry the reload thread saw
    /// come) or the wall clock if later, leaving out the entries that expired, and publishes
    /// it. It reads no file (the parent proxies are the serving snapshot's) and leaves the reload
    /// metrics alone. Judging at `due` at least means a clock stepped back in between still
    /// retires the entry whose instant was seen to pass.
    pub fn expire(&self, due: SystemTime) {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let state = &mut *guard;
        let next = state.generation + 1;
        let before = self.snapshots.load();
        let at = SystemTime::now().max(due);
        let compiled = snapshot::recompile_at_expiry(
            &state.loaded,
            next,
            &mut state.caches.compiled,
            at,
            &before,
        );
        match compiled {
            Ok(snapshot) => {
                for gone in snapshot
                    .expired
                    .iter()
                    .filter(|e| !before.expired.iter().any(|b| Arc::ptr_eq(b, e)))
                {
                    let annotations = gone.annotations.as_deref();
                    tracing::info!(
                        service_entry = %format!("{}/{}", gone.namespace, gone.name),
                        owner = annotations.and_then(|a| a.owner.as_deref()),
                        ticket = annotations.and_then(|a| a.ticket.as_deref()),
                        "ServiceEntry expired: it no longer matches"
                    );
                }
                publish(&snapshot, &self.listeners, Cause::Expiry);
                self.snapshots.store(snapshot);
                state.generation = next;
            }
            Err(problems) => {
                app::log_problems(&problems);
                metrics::config_failed();
                tracing::error!("recompiling at an expiry failed: keeping the previous config");
            }
        }
    }
}

impl Jobs for Reloader {
    fn reload(&self) {
        Reloader::reload(self);
    }

    fn next_expiry(&self) -> Option<SystemTime> {
        self.snapshots.load().next_expiry
    }

    fn expire(&self, due: SystemTime) {
        Reloader::expire(self, due);
    }

    fn idle(&self) {
        self.snapshots.sweep();
    }
}

/// Publishes a new snapshot's gauges, counting it as a load or an expiry.
pub fn publish(snapshot: &Snapshot, listeners: &[Listener], cause: Cause) {
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default();
    let mut entries: Vec<(String, usize)> = snapshot
        .namespaces
        .iter()
        .map(|(ns, names)| (ns.to_string(), names.len()))
        .collect();
    // A namespace whose last entry expired is gone from the snapshot; its gauge drops to 0.
    for gone in &snapshot.expired {
        if !snapshot.namespaces.contains_key(&gone.namespace) {
            entries.push((gone.namespace.to_string(), 0));
        }
    }
    let mut pacer = Pacer::default();
    for (namespace, _) in &entries {
        pacer.step();
        metrics::touch_namespace(namespace, listeners);
    }
    for parent in snapshot.parents.all() {
        metrics::touch_parent(&parent.name);
    }
    let published = metrics::LoadedSnapshot {
        generation: snapshot.generation,
        timestamp,
        entries: &entries,
    };
    match cause {
        Cause::Load => metrics::config_loaded(&published),
        Cause::Expiry => metrics::expiry_recompiled(&published),
    }
}

/// Re-reads the mTLS certificate, key and CA; a broken replacement keeps the previous ones.
/// Returns whether the reload succeeded.
fn reload_tls(tls: &TlsReloader) -> bool {
    match tls.reload() {
        Ok(()) => {
            tracing::info!("TLS certificate, key and client CA reloaded");
            true
        }
        Err(err) => {
            metrics::config_failed();
            tracing::error!("TLS reload failed, keeping the previous certificate: {err}");
            false
        }
    }
}
