//! The one immutable view of configuration that connections read, behind one `ArcSwap`.
//!
//! A connection loads the snapshot once and keeps that `Arc` for its whole life, so a reload never
//! changes the rules under an open tunnel, and new connections see the new policy at once.

pub mod compile;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;

use crate::config::gateway::{Limits, Timeouts};
use crate::config::load::FileDigest;
use crate::decide::{AddressGuard, Policy};
use crate::identify::SourceTenants;
use crate::names::Namespace;

pub use compile::compile;

/// Everything a connection needs to know about configuration, compiled.
#[derive(Debug)]
pub struct Snapshot {
    /// Increases by one with every successful load.
    pub generation: u64,
    /// The compiled allowlists and enforcement modes.
    pub policy: Policy,
    /// Source-address tenants for plaintext listeners.
    pub tenants: SourceTenants,
    /// SPIFFE trust domain for mTLS tenants.
    pub trust_domain: String,
    /// Which resolved addresses may never be dialled.
    pub guard: AddressGuard,
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
    /// Per-namespace entry names, for `/config` and the `egress_service_entries` gauge.
    pub namespaces: BTreeMap<Namespace, Vec<String>>,
    /// When this snapshot was compiled.
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
}

impl SnapshotCell {
    /// Starts serving `snapshot`.
    pub fn new(snapshot: Snapshot) -> Self {
        Self {
            current: ArcSwap::from_pointee(snapshot),
        }
    }

    /// The snapshot to use for a new connection.
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Replaces the snapshot; open connections keep the one they loaded.
    pub fn store(&self, snapshot: Snapshot) {
        self.current.store(Arc::new(snapshot));
    }
}
