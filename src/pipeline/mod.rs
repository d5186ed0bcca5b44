//! The front ends: each reads what arrived, asks the planner (`crate::plan`) for the plan, does
//! the I/O the plan says (answer, admit, dial, check the tunnel's first bytes, splice) and records
//! the outcome once. None of them decides, identifies a tenant or checks an SNI itself: the
//! tenant arrives from the accept step, every verdict from the plan.

pub mod answer;
pub mod connect;
pub mod forward;
pub mod h2;
pub mod h2_stream;
pub mod io;
pub mod pooled;
pub mod sni;
pub mod tunnel_http;
pub mod upgrade;

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::account::{metrics, Accounting, ConnectionRecord};
use crate::dial::pool::IdlePool;
use crate::dial::{DialError, Dialer, Upstream};
use crate::limit::{Permit, TenantLimiter};
use crate::plan::{DenyReason, Listener, Plan, Tenant};
use crate::snapshot::{Snapshot, SnapshotCell};
use crate::sniff::hello_reader::{self, HelloSummary, SniffError};
use crate::splice::{self, SpliceEnd, SpliceOptions};

/// How often a long tunnel's byte counters are pushed to metrics.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Everything connections share, built once by the app.
pub struct Context {
    /// The current configuration.
    pub snapshots: Arc<SnapshotCell>,
    /// Resolver and dialer.
    pub dialer: Dialer,
    /// Per-tenant connection counters.
    pub limiter: TenantLimiter,
    /// Cancelled when draining starts: connections finish what they carry and take no new
    /// requests or streams (HTTP/2 GOAWAY, `Connection: close`).
    pub draining: CancellationToken,
    /// Cancelled when the drain deadline passes: open tunnels are closed.
    pub hard_stop: CancellationToken,
    /// Every task a connection spawns (streams, forwarded requests), so the drain waits for them.
    pub tasks: TaskTracker,
    /// Metric handles and the access log.
    pub accounting: Arc<Accounting>,
    /// Idle upstream connections of forwarded HTTP/1.1, by tenant and destination.
    pub pool: IdlePool<pooled::PoolKey, pooled::PooledConnection>,
}

/// A connection the plan let out: its slot and the connected upstream.
pub struct Outbound {
    /// Holds the tenant's connection slot until dropped.
    pub permit: Permit,
    /// The upstream connection.
    pub upstream: Upstream,
}

/// Why a tunnel's ClientHello could not be read.
pub struct HelloFailure {
    /// The reason it is recorded with.
    pub reason: DenyReason,
    /// Whether the client sent bytes that deserve an alert (it spoke, but not TLS).
    pub alert: bool,
}

impl Context {
    /// Starts the record of a connection, request or stream of `tenant` on `listener`.
    pub fn record(
        &self,
        listener: Listener,
        peer: std::net::SocketAddr,
        tenant: &Tenant,
    ) -> ConnectionRecord {
        ConnectionRecord::new(self.accounting.clone(), listener, peer, tenant)
    }

    /// Does what an allowing plan says: takes the tenant's slot, then dials the plan's targets.
    /// `Err` is the reason to refuse the tenant with (already recorded).
    pub async fn open(
        &self,
        snapshot: &Snapshot,
        plan: &Plan<'_>,
        tenant: &Tenant,
        record: &mut ConnectionRecord,
    ) -> Result<Outbound, DenyReason> {
        let permit = self.admit(plan, tenant, record)?;
        let upstream = self.dial(snapshot, plan, record).await?;
        Ok(Outbound { permit, upstream })
    }

    /// Takes the tenant's connection slot for what `plan` lets out.
    pub fn admit(
        &self,
        plan: &Plan<'_>,
        tenant: &Tenant,
        record: &mut ConnectionRecord,
    ) -> Result<Permit, DenyReason> {
        let namespace = tenant.namespace().map_or("", |ns| ns.as_str());
        self.limiter
            .try_acquire(namespace, plan.connection_limit)
            .ok_or_else(|| {
                record.deny(DenyReason::TenantConnectionLimit);
                DenyReason::TenantConnectionLimit
            })
    }

    /// Dials the plan's targets, directly or through the plan's parent proxy.
    pub async fn dial(
        &self,
        snapshot: &Snapshot,
        plan: &Plan<'_>,
        record: &mut ConnectionRecord,
    ) -> Result<Upstream, DenyReason> {
        let started = Instant::now();
        // Resolver and connect state is only needed until the upstream answers; boxed, it is
        // freed then instead of staying in the connection's task for the tunnel's whole life.
        let (targets, guard, timeout) = (
            plan.dial_targets(),
            &snapshot.guard,
            snapshot.timeouts.connect,
        );
        let dialed = match plan.parent {
            Some(parent) => {
                record.parent(&parent.name);
                let dialed = Box::pin(self.dialer.dial_via(parent, targets, guard, timeout)).await;
                let outcome = dialed
                    .as_ref()
                    .map_or_else(DialError::parent_outcome, |_| "connected");
                metrics::parent_connect(&parent.name, outcome);
                dialed
            }
            None => Box::pin(self.dialer.dial(targets, guard, timeout)).await,
        };
        match dialed {
            Ok(dialed) => {
                record.connected(dialed.addr, started.elapsed());
                Ok(dialed.stream)
            }
            Err(err) => {
                tracing::debug!(target = ?plan.target, error = %err, "upstream dial failed");
                record.deny(err.reason());
                Err(err.reason())
            }
        }
    }

    /// Reads a ClientHello into `buf` (kept for replay) within `timeouts.sniff` and
    /// `limits.max_client_hello_bytes`; records its SNI.
    pub async fn read_hello<S: AsyncRead + Unpin>(
        &self,
        client: &mut S,
        buf: &mut BytesMut,
        snapshot: &Snapshot,
        record: &mut ConnectionRecord,
    ) -> Result<HelloSummary, HelloFailure> {
        let reading =
            hello_reader::read_client_hello(client, buf, snapshot.limits.max_client_hello_bytes);
        let failure = |reason, alert| HelloFailure { reason, alert };
        match tokio::time::timeout(snapshot.timeouts.sniff, reading).await {
            Err(_) => Err(failure(DenyReason::SniffTimeout, false)),
            Ok(Err(SniffError::Closed | SniffError::Io(_))) => {
                Err(failure(DenyReason::MalformedRequest, false))
            }
            Ok(Err(SniffError::Refused(_))) => Err(failure(DenyReason::MalformedRequest, true)),
            Ok(Ok(hello)) => {
                record.sni(hello.server_name.as_deref(), hello.ech);
                Ok(hello)
            }
        }
    }

    /// Splices until both sides finish, the tunnel idles out, or the drain deadline passes (the
    /// tunnel is then reset).
    pub async fn splice<C: ClientIo>(
        &self,
        snapshot: &Snapshot,
        client: C,
        upstream: Upstream,
        early: BytesMut,
        record: &mut ConnectionRecord,
    ) -> SpliceEnd {
        let options = SpliceOptions {
            idle: snapshot.timeouts.idle,
            progress_every: PROGRESS_EVERY,
            zero_copy: snapshot.zero_copy,
        };
        let progress = |delta| record.progress(delta);
        let cut = self.hard_stop.cancelled();
        // The userspace splice's state is twice the zero-copy one's; boxing it keeps it out of
        // every plain TCP tunnel's task, which is most of what an idle tunnel costs.
        let (_, end) = match client.into_tcp() {
            Ok(client) => splice::splice_tcp(client, upstream, early, options, cut, progress).await,
            Err(other) => {
                Box::pin(splice::splice(
                    other, upstream, early, options, cut, progress,
                ))
                .await
            }
        };
        end
    }
}

/// A tenant-side stream; plain TCP gets the zero-copy splice, everything else the userspace one.
pub trait ClientIo: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// The plain TCP socket under this stream, if that is all it is.
    fn into_tcp(self) -> Result<TcpStream, Self>
    where
        Self: Sized,
    {
        Err(self)
    }
}

impl ClientIo for TcpStream {
    fn into_tcp(self) -> Result<TcpStream, Self> {
        Ok(self)
    }
}

impl ClientIo for tokio_rustls::server::TlsStream<TcpStream> {}

impl ClientIo for h2_stream::H2Stream {}
