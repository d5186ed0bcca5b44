//! CONNECT tunnels to HTTP ports: the gateway reads the tunnel as HTTP/1.1 so that every request
//! in it must name the tunnel's host (the plan's Host obligation). A request naming another host
//! is answered `403 host_mismatch` inside the tunnel and the tunnel closed; the origin never sees
//! it. Allowed requests go to the upstream the plan dialled, re-framed by hyper.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::dial::Upstream;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Mutex;

use super::forward::{deny, plain, request_head, strip_hop_by_hop, upstream_request, Body};
use super::io::{ByteCounts, Counted};
use super::pooled::Finishing;
use super::Context;
use crate::account::ConnectionRecord;
use crate::plan::{Plan, Verdict};
use crate::splice::Transferred;

/// Serves the tunnel's requests until either side closes, a request is refused, or the drain
/// ends it; the tunnel's record gets the verdict and the bytes moved.
pub async fn serve<I>(
    ctx: &Context,
    plan: &Plan<'_>,
    client: I,
    upstream: Upstream,
    record: &mut ConnectionRecord,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let counts = Arc::new(ByteCounts::default());
    let io = TokioIo::new(Counted::new(upstream, counts.clone()));
    let Ok((sender, upstream_connection)) = hyper::client::conn::http1::handshake(io).await else {
        return;
    };
    ctx.tasks.spawn(upstream_connection);
    let sender = Mutex::new(sender);
    let record = std::sync::Mutex::new(record);
    let service = service_fn(|req: Request<Incoming>| {
        let verdict = plan.within_tunnel(&request_head(&req));
        let (sender, record) = (&sender, &record);
        async move {
            let response: Response<Body> = match verdict {
                Verdict::Deny(reason) => {
                    lock(record).verdict(verdict);
                    deny(reason)
                }
                _ => {
                    if matches!(verdict, Verdict::Audit(_)) {
                        lock(record).verdict(verdict);
                    }
                    let request = upstream_request(req, "");
                    match sender.lock().await.send_request(request).await {
                        Ok(response) => {
                            let (mut parts, body) = response.into_parts();
                            strip_hop_by_hop(&mut parts.headers);
                            Response::from_parts(
                                parts,
                                http_body_util::Either::Left(Finishing::new(body, None, None)),
                            )
                        }
                        Err(_) => {
                            plain(StatusCode::BAD_GATEWAY, "egress-gateway: upstream failed\n")
                        }
                    }
                }
            };
            Ok::<_, Infallible>(response)
        }
    });
    let snapshot = ctx.snapshots.load();
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(snapshot.timeouts.idle)
        .max_buf_size(snapshot.limits.max_request_head_bytes.max(8192))
        .serve_connection(TokioIo::new(client), service);
    drop(snapshot);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = ctx.draining.cancelled() => {
            connection.as_mut().graceful_shutdown();
            tokio::select! {
                _ = connection => {}
                _ = ctx.hard_stop.cancelled() => {}
            }
        }
        _ = ctx.hard_stop.cancelled() => {}
    }
    lock(&record).progress(Transferred {
        egress: counts.written.load(Ordering::Relaxed),
        ingress: counts.read.load(Ordering::Relaxed),
    });
}

fn lock<'m, 'r>(
    record: &'m std::sync::Mutex<&'r mut ConnectionRecord>,
) -> std::sync::MutexGuard<'m, &'r mut ConnectionRecord> {
    record.lock().unwrap_or_else(|e| e.into_inner())
}
