//! The HTTP front end: transparent plain HTTP (`http` listener) and absolute-form proxy requests
//! on the CONNECT listeners. Every request is planned on its own (a second request on a
//! keep-alive connection cannot ride on the first one's decision) with the tenant of the
//! connection, and goes upstream with `Host` rewritten from the decided authority.
//!
//! hyper is the only parser of the tenant's bytes: what is decided is exactly what is forwarded,
//! re-framed by hyper's client. Smuggling shapes are refused with `400` and the connection closed.
//! An `Upgrade` request the upstream accepts with `101` becomes a spliced tunnel (`upgrade.rs`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};

use super::io::{ByteCounts, Counted};
use super::pooled::{self, Finishing, OnEnd, PoolKey, PooledConnection, Returning};
use super::{upgrade, Context};
use crate::account::ConnectionRecord;
use crate::plan::{self, Ask, DenyReason, Listener, RequestHead, Tenant};
use crate::snapshot::Snapshot;
use crate::splice::Transferred;

/// The body of an answer: the upstream's, or one the gateway wrote.
pub(super) type Body = Either<Finishing, Full<Bytes>>;

/// Headers that describe one hop, never forwarded (RFC 9110 §7.6.1), plus proxy credentials.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Serves HTTP/1.1 requests of `tenant` on `io` until the client closes or the drain ends the
/// connection (the request in flight is answered with `Connection: close`).
pub async fn serve<I>(
    ctx: Arc<Context>,
    io: I,
    peer: SocketAddr,
    listener: Listener,
    tenant: Tenant,
    default_port: u16,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let snapshot = ctx.snapshots.load();
    let (max_head, sniff) = (
        snapshot.limits.max_request_head_bytes,
        snapshot.timeouts.sniff,
    );
    drop(snapshot);
    let requests = Arc::new(AtomicU64::new(0));
    let seen = requests.clone();
    let tenant = Arc::new(tenant);
    let (service_ctx, service_tenant) = (ctx.clone(), tenant.clone());
    let service = service_fn(move |req| {
        let (ctx, tenant) = (service_ctx.clone(), service_tenant.clone());
        seen.fetch_add(1, Ordering::Relaxed);
        async move {
            Ok::<_, Infallible>(forward(&ctx, req, peer, listener, &tenant, default_port).await)
        }
    });
    // Every request head must arrive within `timeouts.sniff`, like a CONNECT head or a
    // ClientHello: a client trickling bytes cannot hold a connection (and a task) open.
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(sniff)
        .max_buf_size(max_head.max(8192))
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    let mut connection = std::pin::pin!(connection);
    let served = tokio::select! {
        served = connection.as_mut() => served,
        _ = ctx.draining.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    match served {
        Err(err) if err.is_timeout() && requests.load(Ordering::Relaxed) == 0 => {
            // No request was ever complete: account the connection once, as the other front
            // ends do.
            ctx.record(listener, peer, &tenant)
                .deny(DenyReason::SniffTimeout);
        }
        Err(err) if err.is_parse() || err.is_parse_too_large() => {
            // hyper answered 400/431 itself; the request still gets its access-log line.
            ctx.record(listener, peer, &tenant)
                .deny(DenyReason::MalformedRequest);
        }
        _ => {}
    }
}

async fn forward(
    ctx: &Arc<Context>,
    mut req: Request<Incoming>,
    peer: SocketAddr,
    listener: Listener,
    tenant: &Tenant,
    default_port: u16,
) -> Response<Body> {
    let snapshot = ctx.snapshots.load();
    let mut record = ctx.record(listener, peer, tenant);
    let ask = Ask::Request {
        head: request_head(&req),
        default_port,
    };
    let plan = plan::plan(&snapshot, tenant, listener, &ask);
    record.plan(&plan);
    if let Some((reason, _)) = plan.refusal() {
        return deny(reason);
    }
    let upgrade = match upgrade::requested(req.headers()) {
        Ok(upgrade) => upgrade,
        Err(reason) => {
            record.deny(reason);
            return deny(reason);
        }
    };
    let admitted = match ctx.admit(&plan, tenant, &mut record) {
        Ok(permit) => permit,
        Err(reason) => return deny(reason),
    };
    // An upgrade turns its connection into a tunnel: it neither takes nor gives back a pooled
    // connection.
    let key = match upgrade {
        None => PoolKey::of(&snapshot, &plan, tenant.namespace()),
        Some(_) => None,
    };
    let pooled = key
        .as_ref()
        .and_then(|key| pooled::checkout(ctx, key, snapshot.pool));
    let reused = pooled.is_some();
    let mut connection = match pooled {
        Some(connection) => {
            record.reused(connection.addr);
            connection
        }
        None => match fresh(ctx, &snapshot, &plan, &mut record).await {
            Ok(connection) => connection,
            Err(reason) => return deny(reason),
        },
    };
    let client_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));
    let mut request = upstream_request(req, plan.host_header.as_deref().unwrap_or_default());
    if let Some(upgrade) = &upgrade {
        upgrade.restore(request.headers_mut());
    }
    let mut before = connection.counts.transferred();
    let mut sent = connection.sender.try_send_request(request).await;
    if let Err(unsent) = &mut sent {
        // A pooled connection the upstream closed while it sat idle: the request never left,
        // so it goes once more on a new connection.
        if let (true, Some(request)) = (reused, unsent.take_message()) {
            connection = match fresh(ctx, &snapshot, &plan, &mut record).await {
                Ok(connection) => connection,
                Err(reason) => return deny(reason),
            };
            before = Transferred::default();
            sent = connection.sender.try_send_request(request).await;
        }
    }
    drop(plan);
    let counts = connection.counts.clone();
    let exchanged = move || {
        let now = counts.transferred();
        Transferred {
            egress: now.egress - before.egress,
            ingress: now.ingress - before.ingress,
        }
    };
    let Ok(mut response) = sent else {
        return plain(StatusCode::BAD_GATEWAY, "egress-gateway: upstream failed\n");
    };
    let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
    match (upgrade, client_upgrade, connection.task.take()) {
        (Some(upgrade), Some(client), Some(upstream_connection)) if switching => {
            let switch = upgrade::Switch {
                client,
                upstream: hyper::upgrade::on(&mut response),
                record,
                permit: admitted,
            };
            let snapshot = snapshot.clone();
            let ctx_tunnel = ctx.clone();
            ctx.tasks.spawn(async move {
                let _ = upstream_connection.await;
                upgrade::splice(&ctx_tunnel, &snapshot, switch, exchanged()).await;
            });
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            upgrade.restore(&mut parts.headers);
            Response::from_parts(parts, Either::Left(Finishing::new(body, None, None)))
        }
        _ => {
            // The request is accounted, and its slot freed, when the response body ends; a
            // complete exchange gives the connection back for the tenant's next request.
            let on_end: OnEnd = Box::new(move |_complete| {
                record.progress(exchanged());
                drop(record);
                drop(admitted);
            });
            let returning = key
                .filter(|_| snapshot.pool.total > 0 && !ctx.draining.is_cancelled())
                .map(|key| Returning {
                    ctx: ctx.clone(),
                    key,
                    connection,
                    limits: snapshot.pool,
                });
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            let body = Finishing::new(body, Some(on_end), returning);
            Response::from_parts(parts, Either::Left(body))
        }
    }
}

/// A new upstream connection for the plan: dialled (directly or through the parent), HTTP/1.1
/// handshake done, its connection task running in the tracker.
async fn fresh(
    ctx: &Arc<Context>,
    snapshot: &Snapshot,
    plan: &plan::Plan<'_>,
    record: &mut ConnectionRecord,
) -> Result<PooledConnection, DenyReason> {
    let upstream = ctx.dial(snapshot, plan, record).await?;
    let addr = upstream
        .peer_addr()
        .map_err(|_| DenyReason::UpstreamUnreachable)?;
    let counts = Arc::new(ByteCounts::default());
    let io = TokioIo::new(Counted::new(upstream, counts.clone()));
    let Ok((sender, connection)) = hyper::client::conn::http1::handshake(io).await else {
        record.deny(DenyReason::UpstreamUnreachable);
        return Err(DenyReason::UpstreamUnreachable);
    };
    Ok(PooledConnection {
        sender,
        addr,
        counts,
        task: Some(ctx.tasks.spawn(connection.with_upgrades())),
    })
}

/// What the planner needs from a request hyper parsed.
pub(super) fn request_head<B>(req: &Request<B>) -> RequestHead<'_> {
    let headers = req.headers();
    RequestHead {
        scheme: req.uri().scheme_str(),
        authority: req.uri().authority().map(|a| a.as_str()),
        host: headers.get(header::HOST).and_then(|h| h.to_str().ok()),
        host_count: headers.get_all(header::HOST).iter().count(),
        connect_method: req.method() == hyper::Method::CONNECT,
    }
}

/// The request as the upstream sees it: origin-form URI, hop-by-hop headers removed, `Host`
/// set to `host` (the decided authority, or left alone when empty).
pub(super) fn upstream_request(req: Request<Incoming>, host: &str) -> Request<Incoming> {
    let (mut parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    parts.uri = path
        .parse::<Uri>()
        .unwrap_or_else(|_| Uri::from_static("/"));
    strip_hop_by_hop(&mut parts.headers);
    if let Ok(host) = HeaderValue::from_str(host) {
        if !host.is_empty() {
            parts.headers.insert(header::HOST, host);
        }
    }
    Request::from_parts(parts, body)
}

/// Removes hop-by-hop headers: the fixed list and those `Connection` names, except `Host`,
/// which a request needs end to end (`Connection: Host` would otherwise deliver a request the
/// gateway checked by its Host without one).
pub(super) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .filter(|name| name != header::HOST)
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// The answer to a refused request. A malformed request, or one from an unknown tenant, also
/// closes the connection: nothing after a smuggling shape is read as a request.
pub(super) fn deny(reason: DenyReason) -> Response<Body> {
    let status = StatusCode::from_u16(reason.http_status()).unwrap_or(StatusCode::FORBIDDEN);
    let mut response = plain(status, format!("egress-gateway: denied: {reason}\n"));
    let headers = response.headers_mut();
    headers.insert(
        "x-egress-deny-reason",
        HeaderValue::from_static(reason.as_str()),
    );
    if matches!(
        reason,
        DenyReason::MalformedRequest | DenyReason::UnknownTenant | DenyReason::HostMismatch
    ) {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

pub(super) fn plain(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Either::Right(Full::new(body.into())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}
