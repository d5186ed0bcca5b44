//! The one immutable view of configuration that connections read, behind one `ArcSwap`.
//!
//! A connection loads the snapshot once and keeps that `Arc` for its whole life, so a reload never
//! changes the rules under an open tunnel, and new connections see the new policy at once.
//!
//! A replaced snapshot is freed off the connection path: the cell keeps a reference to it until
//! [`SnapshotCell::sweep`] finds nobody else holding it, so the last tunnel of an old generation
//! never pays for tearing down a large policy on a runtime worker.

pub mod compile;
pub mod expiry;
pub mod parents;
pub mod reuse;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;

use crate::config::gateway::{Limits, Timeouts};
use crate::config::load::FileDigest;
use crate::config::SourcedEntry;
use crate::decide::{AddressGuard, Policy};
use crate::dial::pool::PoolLimits;
use crate::dial::ParentRoutes;
use crate::identify::SourceTenants;
use crate::names::Namespace;

pub use compile::{compile, compile_at, compile_reusing, recompile_at_expiry};
pub use reuse::CompileCache;

/// Everything a connection needs to know about configuration, compiled.
#[derive(Debug)]
pub struct Snapshot {
    /// Increases by one with every snapshot published: each successful load, and each
    /// recompile at an entry's expiry.
    pub generation: u64,
    /// The compiled allowlists and enforcement modes.
    pub policy: Policy,
    /// Source-address tenants for plaintext listeners.
    pub tenants: SourceTenants,
    /// SPIFFE trust domain for mTLS tenants.
    pub trust_domain: String,
    /// Which resolved addresses may never be dialled.
    pub guard: AddressGuard,
    /// Which parent proxy, if any, each namespace's connections go through.
    pub parents: ParentRoutes,
    /// Bounds of the idle upstream connection pool (forwarded HTTP/1.1).
    pub pool: PoolLimits,
    /// Per-tenant and per-request bounds.
    pub limits: Limits,
    /// Phase deadlines.
    pub timeouts: Timeouts,
    /// Whether CONNECT tunnels to TLS ports must carry a matching SNI.
    pub require_sni_match: bool,
    /// Whether plain TCP tunnels use `splice(2)`.
    pub zero_copy: bool,
    /// Files read for this snapshot and their digests.
    pub files: Vec<FileDigest>,
    /// Each namespace's own entries, for `/config` and the `egress_service_entries` gauge;
    /// expired entries are not among them.
    pub namespaces: BTreeMap<Namespace, Vec<Arc<SourcedEntry>>>,
    /// Entries left out because `egress-gateway.io/expires` had passed when this was compiled,
    /// for `check` and `plan` to name.
    pub expired: Vec<Arc<SourcedEntry>>,
    /// When the next entry of this snapshot expires: the reloader compiles again at that
    /// instant, without reading any file.
    pub next_expiry: Option<SystemTime>,
    /// When this snapshot was compiled; expiry is judged at this instant.
    pub loaded_at: SystemTime,
}

impl Snapshot {
    /// Connection limit of `namespace`.
    pub fn connection_limit(&self, namespace: &str) -> usize {
        self.limits
            .namespaces
            .get(namespace)
            .copied()
            .unwrap_or(self.limits.max_connections_per_namespace)
    }
}

/// The swappable holder of the current snapshot.
pub struct SnapshotCell {
    current: ArcSwap<Snapshot>,
    /// Replaced snapshots, kept until no connection holds them.
    retired: Mutex<Vec<Arc<Snapshot>>>,
}

impl SnapshotCell {
    /// Starts serving `snapshot`.
    pub fn new(snapshot: Snapshot) -> Self {
        Self {
            current: ArcSwap::from_pointee(snapshot),
            retired: Mutex::default(),
        }
    }

    /// The snapshot to use for a new connection.
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Replaces the snapshot; open connections keep the one they loaded. The caller's thread
    /// frees whatever retired snapshot is no longer used.
    pub fn store(&self, snapshot: Snapshot) {
        let previous = self.current.swap(Arc::new(snapshot));
        self.retired_list().push(previous);
        self.sweep();
    }

    /// Frees, on the caller's thread, the retired snapshots no connection holds any more;
    /// returns how many are still held.
    pub fn sweep(&self) -> usize {
        let unused: Vec<Arc<Snapshot>> = {
            let mut retired = self.retired_list();
            let (unused, held) = retired
                .drain(..)
                .partition(|snapshot| Arc::strong_count(snapshot) == 1);
            *retired = held;
            unused
        };
        drop(unused);
        self.retired_list().len()
    }

    fn retired_list(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Snapshot>>> {
        self.retired.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled(dir: &std::path::Path, generation: u64) -> Snapshot {
        let loaded = crate::config::load(dir).expect("the test config loads");
        compile(&loaded, generation).expect("the test config compiles")
    }

    #[test]
    fn a_replaced_snapshot_outlives_its_last_tunnel_until_a_sweep_frees_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("serviceentries")).expect("mkdir");
        std::fs::write(
            dir.path().join("gateway.yaml"),
            "listeners:\n  connect: {address: \"127.0.0.1:0\"}\n",
        )
        .expect("write gateway.yaml");
        let cell = SnapshotCell::new(compiled(dir.path(), 1));
        let tunnel = cell.load();
        let first = Arc::downgrade(&tunnel);

        cell.store(compiled(dir.path(), 2));
        assert_eq!(cell.load().generation, 2, "new connections see the new one");
        assert_eq!(cell.sweep(), 1, "an open tunnel still holds generation 1");

        drop(tunnel);
        assert!(
            first.upgrade().is_some(),
            "the last tunnel's drop must not free the policy on its worker"
        );
        assert_eq!(cell.sweep(), 0);
        assert!(first.upgrade().is_none(), "the sweep freed it");
    }
}
