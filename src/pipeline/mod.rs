//! The only sequencer of a connection's steps: identify → sniff → decide → dial → splice →
//! account. Each front end (CONNECT, SNI, ...) has its function here; the steps themselves live in
//! their own modules and return typed results, and only this module turns those into answers,
//! records and metrics.

pub mod answer;
pub mod connect;
pub mod forward;
pub mod h2;
pub mod h2_stream;
pub mod io;
pub mod sni;

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::account::{Accounting, ConnectionRecord};
use crate::decide::{DenyReason, Verdict};
use crate::dial::{Dialed, Dialer};
use crate::identify::{spiffe_namespace, Presented};
use crate::limit::{Permit, TenantLimiter};
use crate::names::{Namespace, Target};
use crate::snapshot::{Snapshot, SnapshotCell};
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
    /// Cancelled when the drain deadline passes: open tunnels are closed.
    pub hard_stop: CancellationToken,
    /// Metric handles and the access log.
    pub accounting: Arc<Accounting>,
}

/// A connection the policy let out: its slot, the decision, and the connected upstream.
pub struct Outbound<'s> {
    /// Holds the tenant's connection slot until dropped.
    pub permit: Permit,
    /// The allow (or audit) decision, with the entry and port that allowed it.
    pub decision: crate::decide::Decision<'s>,
    /// The upstream connection.
    pub upstream: TcpStream,
}

impl Context {
    /// Starts the record of a connection accepted on `listener` from `peer`.
    pub fn record(&self, listener: &'static str, peer: std::net::SocketAddr) -> ConnectionRecord {
        ConnectionRecord::new(self.accounting.clone(), listener, peer)
    }

    /// Names the tenant from what the connection presented; records it (or the identity that
    /// named no tenant).
    pub fn identify(
        &self,
        snapshot: &Snapshot,
        peer: std::net::SocketAddr,
        presented: &Presented,
        record: &mut ConnectionRecord,
    ) -> Option<Namespace> {
        match presented {
            Presented::SourceAddress => {
                let namespace = snapshot.tenants.namespace_of(peer.ip()).cloned()?;
                record.tenant(&namespace, None);
                Some(namespace)
            }
            Presented::Certificate { spiffe } => {
                let Some(spiffe) = spiffe else {
                    record.identity("no-spiffe-id");
                    return None;
                };
                record.identity(spiffe);
                let namespace = spiffe_namespace(spiffe, &snapshot.trust_domain)?;
                record.tenant(&namespace, Some(spiffe));
                Some(namespace)
            }
        }
    }

    /// Admits, decides and dials, in that order — the steps every front end runs once it knows
    /// the tenant and the target. `Err` is the reason to answer the tenant with.
    pub async fn open<'s>(
        &self,
        snapshot: &'s Snapshot,
        namespace: &Namespace,
        target: &Target,
        record: &mut ConnectionRecord,
    ) -> Result<Outbound<'s>, DenyReason> {
        let permit = self.admit(snapshot, namespace, record)?;
        let decision = self.decide(snapshot, namespace, target, record)?;
        // Resolver and connect state is only needed until the upstream answers; boxed, it is
        // freed then instead of staying in the connection's task for the tunnel's whole life.
        let upstream = Box::pin(self.dial(snapshot, &decision, target, record))
            .await?
            .stream;
        Ok(Outbound {
            permit,
            decision,
            upstream,
        })
    }

    /// Takes a connection slot for `namespace`, or records `tenant_connection_limit`.
    pub fn admit(
        &self,
        snapshot: &Snapshot,
        namespace: &Namespace,
        record: &mut ConnectionRecord,
    ) -> Result<Permit, DenyReason> {
        let limit = snapshot.connection_limit(namespace.as_str());
        match self.limiter.try_acquire(namespace.as_str(), limit) {
            Some(permit) => Ok(permit),
            None => {
                record.deny(DenyReason::TenantConnectionLimit);
                Err(DenyReason::TenantConnectionLimit)
            }
        }
    }

    /// Decides `target` for `namespace`; records the verdict and entry. `Err` carries the reason
    /// when the connection must not go out.
    pub fn decide<'s>(
        &self,
        snapshot: &'s Snapshot,
        namespace: &Namespace,
        target: &Target,
        record: &mut ConnectionRecord,
    ) -> Result<crate::decide::Decision<'s>, DenyReason> {
        let decision = snapshot.policy.decide(namespace.as_str(), target);
        record.verdict(decision.verdict);
        if let Some(rule) = decision.rule {
            record.service_entry(&rule.label);
        }
        match decision.verdict {
            Verdict::Deny(reason) => Err(reason),
            _ => Ok(decision),
        }
    }

    /// Dials the decision's targets; records the upstream or the failure.
    pub async fn dial(
        &self,
        snapshot: &Snapshot,
        decision: &crate::decide::Decision<'_>,
        target: &Target,
        record: &mut ConnectionRecord,
    ) -> Result<Dialed, DenyReason> {
        let started = Instant::now();
        let result = self
            .dialer
            .dial(
                decision.dial_targets(target),
                &snapshot.guard,
                snapshot.timeouts.connect,
            )
            .await;
        match result {
            Ok(dialed) => {
                record.connected(dialed.addr, started.elapsed());
                Ok(dialed)
            }
            Err(err) => {
                tracing::debug!(%target, error = %err, "upstream dial failed");
                record.deny(err.reason());
                Err(err.reason())
            }
        }
    }

    /// Splices until both sides finish, the tunnel idles out, or the drain deadline passes (the
    /// tunnel is then reset).
    pub async fn splice<C: ClientIo>(
        &self,
        snapshot: &Snapshot,
        client: C,
        upstream: TcpStream,
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
            Ok(tcp) => splice::splice_tcp(tcp, upstream, early, options, cut, progress).await,
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
