//! Keep-alive to upstreams for forwarded HTTP/1.1: which idle connection a request may reuse,
//! and the response body that hands its connection back once the exchange is complete.
//!
//! A connection goes back only after its response body was read to the end and hyper says it is
//! ready for another request: never after an error, an incomplete body, `Connection: close`, an
//! upgrade, or once the drain started.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;

use super::io::ByteCounts;
use super::Context;
use crate::account::metrics;
use crate::dial::pool::PoolLimits;
use crate::names::{Namespace, Target};
use crate::plan::Plan;
use crate::snapshot::Snapshot;

/// How often idle connections past `upstream.pool.idle_timeout` are closed.
const EXPIRE_EVERY: Duration = Duration::from_secs(5);

/// What an idle connection is reusable for: the same tenant, the same decided destination and
/// parent, and the same snapshot (a reload may change where an entry's destination is dialled).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolKey {
    namespace: Namespace,
    target: Target,
    parent: Option<Box<str>>,
    generation: u64,
}

impl PoolKey {
    /// The key of an allowed plan; `None` when the plan names no tenant or target.
    pub fn of(snapshot: &Snapshot, plan: &Plan<'_>, namespace: Option<&Namespace>) -> Option<Self> {
        Some(Self {
            namespace: namespace?.clone(),
            target: plan.target.clone()?,
            parent: plan.parent.map(|parent| parent.name.clone()),
            generation: snapshot.generation,
        })
    }
}

/// An idle upstream connection: the request sender hyper keeps it behind, where it goes, and its
/// byte counters.
pub struct PooledConnection {
    /// Sends the next request on the connection.
    pub sender: SendRequest<Incoming>,
    /// The address the connection was dialled to (for the access log).
    pub addr: SocketAddr,
    /// Bytes over the connection's whole life; a request's share is the difference.
    pub counts: Arc<ByteCounts>,
    /// The connection's task, while the request that dialled it may still upgrade it.
    pub task: Option<tokio::task::JoinHandle<Result<(), hyper::Error>>>,
}

/// Called once when a response body ends: `true` when it was read to the end.
pub type OnEnd = Box<dyn FnOnce(bool) + Send>;

/// A connection to hand back to the pool when its response body is complete.
pub struct Returning {
    /// Where the pool lives.
    pub ctx: Arc<Context>,
    /// What the connection may be reused for.
    pub key: PoolKey,
    /// The connection.
    pub connection: PooledConnection,
    /// The pool's bounds from the request's snapshot.
    pub limits: PoolLimits,
}

/// A response body from upstream that reports how it ended and, read to the end, hands its
/// connection back before the tenant gets the last bytes: the tenant's next request finds it
/// pooled.
pub struct Finishing {
    body: Incoming,
    on_end: Option<OnEnd>,
    returning: Option<Returning>,
    /// The body's last frame, held until the connection is back in the pool.
    held: Option<Frame<Bytes>>,
}

impl Finishing {
    /// Wraps `body`; `on_end` runs when it ends, fails or is dropped; `returning` goes back to
    /// the pool only when the body was read to the end and hyper has the connection ready.
    pub fn new(body: Incoming, on_end: Option<OnEnd>, returning: Option<Returning>) -> Self {
        Self {
            body,
            on_end,
            returning,
            held: None,
        }
    }

    fn finish(&mut self, complete: bool) {
        // Dropped without `complete`, a connection is closed rather than pooled.
        self.returning = None;
        if let Some(on_end) = self.on_end.take() {
            on_end(complete);
        }
    }

    /// At the body's end: `Pending` until hyper has the connection ready for another request,
    /// then pools it (or drops it when the upstream closed it), and accounts the exchange.
    fn poll_end(&mut self, cx: &mut TaskContext<'_>) -> Poll<()> {
        if let Some(returning) = self.returning.as_mut() {
            let ready = match returning.connection.sender.poll_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(ready) => ready.is_ok(),
            };
            if let Some(returning) = self.returning.take() {
                returning.give_back(ready);
            }
        }
        self.finish(true);
        Poll::Ready(())
    }
}

impl Returning {
    /// Pools the connection when it is `ready` and the drain has not started; otherwise drops
    /// it, which closes it.
    fn give_back(self, ready: bool) {
        if ready && !self.ctx.draining.is_cancelled() {
            let _ = self.ctx.pool.put(self.key, self.connection, self.limits);
            metrics::pool_idle(self.ctx.pool.len());
        }
    }
}

impl HttpBody for Finishing {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        if this.held.is_none() {
            match Pin::new(&mut this.body).poll_frame(cx) {
                // The last frame of a body of known length: hyper may never ask for the end.
                Poll::Ready(Some(Ok(frame))) if this.body.is_end_stream() => {
                    this.held = Some(frame);
                }
                Poll::Ready(None) => {
                    return this.poll_end(cx).map(|()| None);
                }
                Poll::Ready(Some(Err(err))) => {
                    this.finish(false);
                    return Poll::Ready(Some(Err(err)));
                }
                other => return other,
            }
        }
        match this.poll_end(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => Poll::Ready(this.held.take().map(Ok)),
        }
    }

    fn is_end_stream(&self) -> bool {
        // Never claimed early while a connection waits to go back: hyper then polls once more.
        self.held.is_none() && self.returning.is_none() && self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Finishing {
    fn drop(&mut self) {
        // An empty body (204, 304, `Content-Length: 0`) may never be polled: it is complete,
        // and its connection goes back if hyper already has it ready.
        let complete = self.held.is_none() && self.body.is_end_stream();
        if complete {
            if let Some(returning) = self.returning.take() {
                let ready = returning.connection.sender.is_ready();
                returning.give_back(ready);
            }
        }
        self.finish(complete);
    }
}

/// An idle connection for `key` that hyper still has ready, if the pool holds one.
pub fn checkout(ctx: &Context, key: &PoolKey, limits: PoolLimits) -> Option<PooledConnection> {
    let taken = ctx.pool.take(key, limits, |c| c.sender.is_ready());
    if taken.is_some() {
        metrics::pool_idle(ctx.pool.len());
    }
    taken
}

/// Closes idle connections past their idle timeout, and all of them when the drain starts (an
/// idle connection carries nothing, and its task would hold the drain up).
pub async fn upkeep(ctx: Arc<Context>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(EXPIRE_EVERY) => {
                let idle = ctx.snapshots.load().pool.idle;
                ctx.pool.expire(idle);
                metrics::pool_idle(ctx.pool.len());
            }
            _ = ctx.draining.cancelled() => {
                ctx.pool.clear();
                metrics::pool_idle(0);
                return;
            }
        }
    }
}
