//! The HTTP/1.1 CONNECT front end: read the request head, plan, dial, answer `200`, do what the
//! plan still requires of the tunnel's first bytes, splice.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::dial::Upstream;

use super::answer;
use super::io::Rewind;
use super::{forward, tunnel_http, ClientIo, Context, Outbound};
use crate::account::ConnectionRecord;
use crate::plan::{self, Alert, Ask, DenyReason, Listener, Obligation, Plan, Tenant, Verdict};
use crate::snapshot::Snapshot;
use crate::sniff::connect_head::{self, HeadError, ProxyRequest};

/// Default port of absolute-form `http://` requests without one.
const HTTP_PORT: u16 = 80;

/// Why reading a request head stopped without a request.
enum HeadFailure {
    Refused(HeadError),
    Closed,
    TimedOut,
}

/// Serves one CONNECT request on `client` (a plaintext or TLS stream) of `tenant`.
pub async fn serve<S>(
    ctx: Arc<Context>,
    mut client: S,
    peer: SocketAddr,
    listener: Listener,
    tenant: Tenant,
) where
    S: ClientIo,
{
    let snapshot = ctx.snapshots.load();
    let mut buf = BytesMut::with_capacity(1024);

    let request = read_head(&mut client, &mut buf, &snapshot).await;
    if let Ok(ProxyRequest::Other {
        absolute_http: true,
        ..
    }) = request
    {
        // Absolute-form proxying: the HTTP front end parses and plans every request itself, on
        // this connection's tenant.
        // Boxed: the HTTP server's state would otherwise sit in every CONNECT tunnel's task.
        let replay = Rewind::new(buf.freeze(), client);
        return Box::pin(forward::serve(
            ctx, replay, peer, listener, tenant, HTTP_PORT,
        ))
        .await;
    }
    let mut record = ctx.record(listener, peer, &tenant);
    let (target, head_len) = match request {
        Ok(ProxyRequest::Connect { target, head_len }) => (target, head_len),
        Ok(ProxyRequest::Other { .. }) => {
            record.deny(DenyReason::MalformedRequest);
            answer::send_http_status(&mut client, 405, "Allow: CONNECT\r\n").await;
            return;
        }
        Err(failure) => {
            let (status, reason) = match failure {
                HeadFailure::Refused(err) => (Some(err.status()), DenyReason::MalformedRequest),
                HeadFailure::Closed => (None, DenyReason::MalformedRequest),
                HeadFailure::TimedOut => (Some(408), DenyReason::SniffTimeout),
            };
            record.deny(reason);
            if let Some(status) = status {
                answer::send_http_deny(&mut client, status, reason).await;
            }
            return;
        }
    };

    let plan = plan::plan(&snapshot, &tenant, listener, &Ask::Connect(&target));
    record.plan(&plan);
    if let Some((reason, refusal)) = plan.refusal() {
        return answer::send_refusal(&mut client, refusal, reason).await;
    }
    let Outbound {
        permit: _permit,
        upstream,
    } = match ctx.open(&snapshot, &plan, &tenant, &mut record).await {
        Ok(outbound) => outbound,
        Err(reason) => {
            return answer::send_http_deny(&mut client, reason.http_status(), reason).await
        }
    };
    if client.write_all(answer::TUNNEL_ESTABLISHED).await.is_err() {
        return;
    }
    buf.advance(head_len);
    tunnel(&ctx, &snapshot, &plan, client, upstream, buf, &mut record).await;
}

/// Runs an opened tunnel: checks what the plan still requires of its first bytes (the SNI of a
/// TLS port, the Host of every request to an HTTP port), then splices. Shared by HTTP/1.1 and
/// HTTP/2 CONNECT.
pub(super) async fn tunnel<S: ClientIo>(
    ctx: &Context,
    snapshot: &Snapshot,
    plan: &Plan<'_>,
    mut client: S,
    upstream: Upstream,
    mut early: BytesMut,
    record: &mut ConnectionRecord,
) {
    match &plan.obligation {
        Obligation::None => {}
        Obligation::Sni(_) => {
            let verdict = match ctx
                .read_hello(&mut client, &mut early, snapshot, record)
                .await
            {
                Ok(hello) => plan.after_hello(&hello),
                Err(failure) => Verdict::Deny(failure.reason),
            };
            record.verdict(verdict);
            if let Verdict::Deny(reason) = verdict {
                return answer::send_alert(&mut client, Alert::for_reason(reason)).await;
            }
        }
        Obligation::Host(_) => {
            // Boxed, like the absolute-form server: only tunnels to HTTP ports pay for its state.
            let client = Rewind::new(early.freeze(), client);
            return Box::pin(tunnel_http::serve(ctx, plan, client, upstream, record)).await;
        }
    }
    ctx.splice(snapshot, client, upstream, early, record).await;
}

/// Reads until a complete head, within `timeouts.sniff` and `limits.max_request_head_bytes`.
async fn read_head<S: AsyncRead + Unpin>(
    client: &mut S,
    buf: &mut BytesMut,
    snapshot: &Snapshot,
) -> Result<ProxyRequest, HeadFailure> {
    let max = snapshot.limits.max_request_head_bytes;
    let reading = async {
        loop {
            let room = (max + 1).saturating_sub(buf.len()).clamp(1, 4096);
            buf.reserve(room);
            let n = client
                .read_buf(&mut (&mut *buf).limit(room))
                .await
                .map_err(|_| HeadFailure::Closed)?;
            if n == 0 {
                return Err(HeadFailure::Closed);
            }
            match connect_head::parse(buf, max) {
                Ok(Some(request)) => return Ok(request),
                Ok(None) => {}
                Err(err) => return Err(HeadFailure::Refused(err)),
            }
        }
    };
    tokio::time::timeout(snapshot.timeouts.sniff, reading)
        .await
        .unwrap_or(Err(HeadFailure::TimedOut))
}
