//! The HTTP/1.1 CONNECT front end: read the request head, identify, decide, dial, answer `200`,
//! check the ClientHello on TLS ports, splice.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::answer::{self, Alert};
use super::io::Rewind;
use super::{forward, ClientIo, Context, Outbound};
use crate::account::ConnectionRecord;
use crate::decide::{Decision, DenyReason, Inspection, Verdict};
use crate::identify::Presented;
use crate::names::{Host, Hostname, Target};
use crate::snapshot::Snapshot;
use crate::sniff::connect_head::{self, HeadError, ProxyRequest};
use crate::sniff::hello_reader::{self, SniffError};

/// Default port of absolute-form `http://` requests without one.
const HTTP_PORT: u16 = 80;

/// Why reading a request head stopped without a request.
enum HeadFailure {
    Refused(HeadError),
    Closed,
    TimedOut,
}

/// Serves one CONNECT request on `client` (a plaintext or TLS stream).
pub async fn serve<S>(
    ctx: Arc<Context>,
    mut client: S,
    peer: SocketAddr,
    listener: &'static str,
    presented: Presented,
) where
    S: ClientIo,
{
    let snapshot = ctx.snapshots.load();
    let mut record = ctx.record(listener, peer);
    let mut buf = BytesMut::with_capacity(1024);

    // Known before the head arrives, so even a malformed request is counted for its tenant.
    let tenant = ctx.identify(&snapshot, peer, &presented, &mut record);
    let request = read_head(&mut client, &mut buf, &snapshot).await;
    let (target, head_len) = match request {
        Ok(ProxyRequest::Connect { target, head_len }) => (target, head_len),
        Ok(ProxyRequest::Other {
            absolute_http: true,
            ..
        }) => {
            record.hand_over();
            let replay = Rewind::new(buf.freeze(), client);
            return forward::serve(ctx, replay, peer, listener, HTTP_PORT).await;
        }
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
    record.target(&target);

    let Some(namespace) = tenant else {
        return deny(&mut client, &mut record, DenyReason::UnknownTenant).await;
    };
    let Outbound {
        permit: _permit,
        decision,
        upstream,
    } = match ctx.open(&snapshot, &namespace, &target, &mut record).await {
        Ok(outbound) => outbound,
        Err(reason) => return deny(&mut client, &mut record, reason).await,
    };
    if client.write_all(answer::TUNNEL_ESTABLISHED).await.is_err() {
        return;
    }
    buf.advance(head_len);

    if needs_sni_check(&snapshot, &decision, &target) {
        if let Err(reason) = check_sni(&mut client, &mut buf, &snapshot, &target, &mut record).await
        {
            let verdict = Verdict::deny_in(reason, decision.mode);
            record.verdict(verdict);
            if !verdict.lets_through() {
                answer::send_alert(&mut client, Alert::for_reason(reason)).await;
                return;
            }
        }
    }
    ctx.splice(&snapshot, client, upstream, buf, &mut record)
        .await;
}

/// Answers a deny with the SPEC's status and `X-Egress-Deny-Reason`.
async fn deny<S: AsyncWrite + Unpin>(
    client: &mut S,
    record: &mut ConnectionRecord,
    reason: DenyReason,
) {
    record.deny(reason);
    answer::send_http_deny(client, reason.http_status(), reason).await;
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

/// TLS ports of a named host are sniffed when `require_sni_match` is on.
pub(super) fn needs_sni_check(
    snapshot: &Snapshot,
    decision: &Decision<'_>,
    target: &Target,
) -> bool {
    snapshot.require_sni_match
        && decision.inspection() == Inspection::Sni
        && matches!(target.host, Host::Name(_))
}

/// Reads the tenant's ClientHello (kept in `buf` for replay) and checks its SNI names `target`.
pub(super) async fn check_sni<S: AsyncRead + Unpin>(
    client: &mut S,
    buf: &mut BytesMut,
    snapshot: &Snapshot,
    target: &Target,
    record: &mut ConnectionRecord,
) -> Result<(), DenyReason> {
    let reading =
        hello_reader::read_client_hello(client, buf, snapshot.limits.max_client_hello_bytes);
    let hello = match tokio::time::timeout(snapshot.timeouts.sniff, reading).await {
        Err(_) => return Err(DenyReason::SniffTimeout),
        Ok(Err(SniffError::Refused(_) | SniffError::Closed | SniffError::Io(_))) => {
            return Err(DenyReason::MalformedRequest)
        }
        Ok(Ok(hello)) => hello,
    };
    record.sni(hello.server_name.as_deref(), hello.ech);
    let Some(raw) = hello.server_name.as_deref() else {
        return Err(DenyReason::MissingSni);
    };
    // RFC 6066 allows one host_name: with several, the origin might serve one we did not check.
    if hello.server_name_count > 1 {
        return Err(DenyReason::SniMismatch);
    }
    let sni = Hostname::parse(raw).map_err(|_| DenyReason::SniMismatch)?;
    match &target.host {
        Host::Name(host) if *host == sni => Ok(()),
        _ => Err(DenyReason::SniMismatch),
    }
}
