//! The HTTP/2 CONNECT front end (RFC 9113 §8.5) on the mTLS listener: many tunnels multiplexed on
//! one connection, every stream planned on its own with the tenant the connection's certificate
//! named. A denied stream gets its answer while sibling streams keep flowing.
//!
//! The connection holds one slot of its tenant for its life (each tunnel takes one more), must
//! open its first stream within `timeouts.sniff`, is closed after `timeouts.idle` without open
//! streams (GOAWAY, then dropped one `timeouts.sniff` later if the client does not finish the
//! close), and gets GOAWAY when draining starts: streams already open finish, new ones are
//! refused, and the connection is dropped at the drain deadline.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use h2::server::SendResponse;
use h2::RecvStream;
use hyper::{Method, Request, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::connect::tunnel;
use super::h2_stream::H2Stream;
use super::{Context, Outbound};
use crate::account::ConnectionRecord;
use crate::plan::{self, Ask, DenyReason, Listener, Tenant};
use crate::sniff::connect_head::parse_authority;

/// Per-stream receive window: enough for a fast bulk tunnel, small enough to bound memory.
const STREAM_WINDOW: u32 = 1024 * 1024;
/// Connection receive window, shared by all streams.
const CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;
/// The limiter bucket of connections whose certificate names no tenant.
const NO_TENANT: &str = "";

/// Open streams of one connection, so the connection knows when it has gone idle.
#[derive(Default)]
struct OpenStreams {
    count: AtomicUsize,
    ended: Notify,
}

/// Decrements the open-stream count when a stream's task ends, however it ends.
struct StreamGuard(Arc<OpenStreams>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::AcqRel);
        self.0.ended.notify_one();
    }
}

/// Serves HTTP/2 CONNECT streams of `tenant` on `io` until the client goes away, the connection
/// idles out, or the drain ends it.
pub async fn serve<S>(ctx: Arc<Context>, io: S, peer: SocketAddr, tenant: Tenant)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let snapshot = ctx.snapshots.load();
    let (max_streams, first_stream, idle) = (
        snapshot.limits.max_streams_per_connection,
        snapshot.timeouts.sniff,
        snapshot.timeouts.idle,
    );
    let bucket = tenant.namespace().map_or(NO_TENANT, |ns| ns.as_str());
    let limit = snapshot.connection_limit(bucket);
    drop(snapshot);
    let Some(_connection_slot) = ctx.limiter.try_acquire(bucket, limit) else {
        ctx.record(Listener::ConnectTls, peer, &tenant)
            .deny(DenyReason::TenantConnectionLimit);
        return;
    };
    let started = Instant::now();
    let handshake = h2::server::Builder::new()
        .max_concurrent_streams(max_streams)
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .handshake::<_, Bytes>(io);
    let Ok(Ok(mut connection)) = tokio::time::timeout(first_stream, handshake).await else {
        return;
    };
    let open = Arc::new(OpenStreams::default());
    let mut idle_since = Some(started);
    let mut any_stream = false;
    let mut closing = false;
    // Set when the connection idled out: a client that never acknowledges the GOAWAY's PING
    // would otherwise hold it open for ever.
    let mut close_by = None;
    loop {
        let deadline = idle_since.map(|since| since + if any_stream { idle } else { first_stream });
        let accepted = tokio::select! {
            accepted = connection.accept() => accepted,
            _ = ctx.draining.cancelled(), if !closing => {
                closing = true;
                connection.graceful_shutdown();
                continue;
            }
            _ = sleep_until(deadline), if !closing => {
                closing = true;
                close_by = Some(Instant::now() + first_stream);
                connection.graceful_shutdown();
                continue;
            }
            _ = sleep_until(close_by) => break,
            _ = ctx.hard_stop.cancelled() => break,
            _ = open.ended.notified() => {
                if open.count.load(Ordering::Acquire) == 0 {
                    idle_since = Some(Instant::now());
                }
                continue;
            }
        };
        let Some(Ok((request, mut respond))) = accepted else {
            break;
        };
        if closing {
            // Opened before the client saw the GOAWAY: refused, so the client may retry it on
            // another gateway (RFC 9113 §8.7).
            respond.send_reset(h2::Reason::REFUSED_STREAM);
            continue;
        }
        idle_since = None;
        any_stream = true;
        open.count.fetch_add(1, Ordering::AcqRel);
        let guard = StreamGuard(open.clone());
        let (ctx_stream, tenant) = (ctx.clone(), tenant.clone());
        ctx.tasks.spawn(async move {
            stream(&ctx_stream, request, respond, peer, &tenant).await;
            drop(guard);
        });
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

async fn stream(
    ctx: &Context,
    request: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    peer: SocketAddr,
    tenant: &Tenant,
) {
    let snapshot = ctx.snapshots.load();
    let mut record = ctx.record(Listener::ConnectTls, peer, tenant);
    // Extended CONNECT (RFC 8441) carries :protocol, :scheme and :path; plain CONNECT none.
    let plain_connect = request.method() == Method::CONNECT
        && request.uri().scheme().is_none()
        && request.uri().path_and_query().is_none();
    if !plain_connect {
        record.deny(DenyReason::MalformedRequest);
        return answer(&mut respond, StatusCode::METHOD_NOT_ALLOWED, None);
    }
    let authority = request.uri().authority().map(|a| a.as_str().to_owned());
    let Some(target) = authority.and_then(|a| parse_authority(&a).ok()) else {
        record.deny(DenyReason::MalformedRequest);
        return answer(
            &mut respond,
            StatusCode::BAD_REQUEST,
            Some(DenyReason::MalformedRequest),
        );
    };
    let plan = plan::plan(
        &snapshot,
        tenant,
        Listener::ConnectTls,
        &Ask::Connect(&target),
    );
    record.plan(&plan);
    if let Some((reason, _)) = plan.refusal() {
        return deny(&mut respond, &mut record, reason);
    }
    let Outbound {
        permit: _permit,
        upstream,
    } = match ctx.open(&snapshot, &plan, tenant, &mut record).await {
        Ok(outbound) => outbound,
        Err(reason) => return deny(&mut respond, &mut record, reason),
    };
    let Ok(send) = respond.send_response(Response::new(()), false) else {
        return;
    };
    let client = H2Stream::new(request.into_body(), send);
    tunnel(
        ctx,
        &snapshot,
        &plan,
        client,
        upstream,
        BytesMut::new(),
        &mut record,
    )
    .await;
}

fn deny(respond: &mut SendResponse<Bytes>, record: &mut ConnectionRecord, reason: DenyReason) {
    record.deny(reason);
    let status = StatusCode::from_u16(reason.http_status()).unwrap_or(StatusCode::FORBIDDEN);
    answer(respond, status, Some(reason));
}

/// Sends a final answer with a one-line body and ends the stream.
fn answer(respond: &mut SendResponse<Bytes>, status: StatusCode, reason: Option<DenyReason>) {
    let mut response = Response::builder().status(status);
    if let Some(reason) = reason {
        response = response.header("x-egress-deny-reason", reason.as_str());
    }
    let Ok(response) = response.body(()) else {
        return;
    };
    if let Ok(mut send) = respond.send_response(response, false) {
        let body = match reason {
            Some(reason) => format!("egress-gateway: denied: {reason}\n"),
            None => format!("egress-gateway: {status}\n"),
        };
        let _ = send.send_data(Bytes::from(body), true);
    }
}
