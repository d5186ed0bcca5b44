//! The HTTP/2 CONNECT front end (RFC 9113 §8.5) on the mTLS listener: many tunnels multiplexed on
//! one connection, each stream identified by the connection's certificate and decided on its
//! own. A denied stream gets its `403` while sibling streams keep flowing.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use h2::server::SendResponse;
use h2::RecvStream;
use hyper::{Method, Request, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite};

use super::answer::Alert;
use super::connect::{check_sni, needs_sni_check};
use super::h2_stream::H2Stream;
use super::{Context, Outbound};
use crate::account::ConnectionRecord;
use crate::decide::{DenyReason, Verdict};
use crate::identify::Presented;
use crate::sniff::connect_head::parse_authority;

/// Per-stream receive window: enough for a fast bulk tunnel, small enough to bound memory.
const STREAM_WINDOW: u32 = 1024 * 1024;
/// Connection receive window, shared by all streams.
const CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;

/// Serves HTTP/2 CONNECT streams on `io` until the client goes away.
pub async fn serve<S>(ctx: Arc<Context>, io: S, peer: SocketAddr, presented: Presented)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let max_streams = ctx.snapshots.load().limits.max_streams_per_connection;
    let handshake = h2::server::Builder::new()
        .max_concurrent_streams(max_streams)
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .handshake::<_, Bytes>(io);
    let Ok(mut connection) = handshake.await else {
        return;
    };
    while let Some(accepted) = connection.accept().await {
        let Ok((request, respond)) = accepted else {
            break;
        };
        let ctx = ctx.clone();
        let presented = presented.clone();
        tokio::spawn(async move { stream(&ctx, request, respond, peer, &presented).await });
    }
}

async fn stream(
    ctx: &Context,
    request: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    peer: SocketAddr,
    presented: &Presented,
) {
    let snapshot = ctx.snapshots.load();
    let mut record = ctx.record("connect_tls", peer);
    if request.method() != Method::CONNECT {
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
    record.target(&target);
    let Some(namespace) = ctx.identify(&snapshot, peer, presented, &mut record) else {
        return deny(&mut respond, &mut record, DenyReason::UnknownTenant);
    };
    let Outbound {
        permit: _permit,
        decision,
        upstream,
    } = match ctx.open(&snapshot, &namespace, &target, &mut record).await {
        Ok(outbound) => outbound,
        Err(reason) => return deny(&mut respond, &mut record, reason),
    };
    let Ok(send) = respond.send_response(Response::new(()), false) else {
        return;
    };
    let mut tunnel = H2Stream::new(request.into_body(), send);
    let mut early = BytesMut::new();
    if needs_sni_check(&snapshot, &decision, &target) {
        if let Err(reason) =
            check_sni(&mut tunnel, &mut early, &snapshot, &target, &mut record).await
        {
            let verdict = Verdict::deny_in(reason, decision.mode);
            record.verdict(verdict);
            if !verdict.lets_through() {
                super::answer::send_alert(&mut tunnel, Alert::for_reason(reason)).await;
                return;
            }
        }
    }
    ctx.splice(&snapshot, tunnel, upstream, early, &mut record)
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
