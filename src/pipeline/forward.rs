//! The HTTP front end: transparent plain HTTP (`http` listener) and absolute-form proxy requests
//! on the `connect` listener. Every request is decided on its own Host (or absolute URI), so a
//! second request on a keep-alive connection cannot ride on the first one's decision.
//!
//! hyper parses and frames both sides; this module strips hop-by-hop headers, refuses smuggling
//! shapes, and accounts one access-log line per request.

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
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::answer;
use super::io::{ByteCounts, Counted, FramingGuard};
use super::{Context, Outbound};
use crate::account::ConnectionRecord;
use crate::decide::DenyReason;
use crate::identify::Presented;
use crate::names::Target;
use crate::sniff::connect_head::parse_authority;
use crate::splice::Transferred;

/// The body of an answer: the upstream's, or one the gateway wrote.
type Body = Either<Incoming, Full<Bytes>>;

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

/// Serves HTTP/1.1 requests on `io` until the client closes.
pub async fn serve<I>(
    ctx: Arc<Context>,
    io: I,
    peer: SocketAddr,
    listener: &'static str,
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
    let service_ctx = ctx.clone();
    let service = service_fn(move |req| {
        let ctx = service_ctx.clone();
        seen.fetch_add(1, Ordering::Relaxed);
        async move { Ok::<_, Infallible>(forward(&ctx, req, peer, listener, default_port).await) }
    });
    // Every request head must arrive within `timeouts.sniff`, like a CONNECT head or a
    // ClientHello: a client trickling bytes cannot hold a connection (and a task) open.
    let guarded = FramingGuard::new(io, max_head);
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(sniff)
        .max_buf_size(max_head.max(8192))
        .serve_connection(TokioIo::new(guarded), service)
        .without_shutdown()
        .await;
    match served {
        Ok(parts) => {
            let mut guard = parts.io.into_inner();
            if guard.refused() {
                // Content-Length and Transfer-Encoding together: a smuggling shape, never
                // forwarded, answered here because the HTTP server never saw the request.
                account_refusal(&ctx, listener, peer, DenyReason::MalformedRequest);
                answer::send_http_deny(&mut guard, 400, DenyReason::MalformedRequest).await;
            } else {
                let _ = guard.shutdown().await;
            }
        }
        Err(err) if err.is_timeout() && requests.load(Ordering::Relaxed) == 0 => {
            // No request was ever complete: account the connection once, as the other front
            // ends do.
            account_refusal(&ctx, listener, peer, DenyReason::SniffTimeout);
        }
        Err(err) if err.is_parse() || err.is_parse_too_large() => {
            // hyper answered 400/431 itself; the request still gets its access-log line.
            account_refusal(&ctx, listener, peer, DenyReason::MalformedRequest);
        }
        _ => {}
    }
}

/// Records a request hyper refused before the gateway saw it, attributed to the peer's tenant.
fn account_refusal(ctx: &Context, listener: &'static str, peer: SocketAddr, reason: DenyReason) {
    let snapshot = ctx.snapshots.load();
    let mut record = ctx.record(listener, peer);
    ctx.identify(&snapshot, peer, &Presented::SourceAddress, &mut record);
    record.deny(reason);
}

async fn forward(
    ctx: &Context,
    req: Request<Incoming>,
    peer: SocketAddr,
    listener: &'static str,
    default_port: u16,
) -> Response<Body> {
    let snapshot = ctx.snapshots.load();
    let mut record = ctx.record(listener, peer);
    let tenant = ctx.identify(&snapshot, peer, &Presented::SourceAddress, &mut record);
    let target = match request_target(&req, default_port) {
        Ok(target) => target,
        Err(status) => return deny(&mut record, status, DenyReason::MalformedRequest),
    };
    record.target(&target);
    let Some(namespace) = tenant else {
        return deny(&mut record, 403, DenyReason::UnknownTenant);
    };
    let Outbound {
        permit: admitted,
        upstream,
        ..
    } = match ctx.open(&snapshot, &namespace, &target, &mut record).await {
        Ok(outbound) => outbound,
        Err(reason) => return deny(&mut record, reason.http_status(), reason),
    };

    let counts = Arc::new(ByteCounts::default());
    let io = TokioIo::new(Counted::new(upstream, counts.clone()));
    let (mut sender, connection) = match hyper::client::conn::http1::handshake(io).await {
        Ok(pair) => pair,
        Err(_) => return deny(&mut record, 502, DenyReason::UpstreamUnreachable),
    };
    // The upstream connection lives until the response body is done; the record is written then.
    tokio::spawn(async move {
        let _ = connection.await;
        record.progress(Transferred {
            egress: counts.written.load(Ordering::Relaxed),
            ingress: counts.read.load(Ordering::Relaxed),
        });
        drop(admitted);
    });
    match sender.send_request(upstream_request(req, &target)).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, Either::Left(body))
        }
        Err(_) => plain(StatusCode::BAD_GATEWAY, "egress-gateway: upstream failed\n"),
    }
}

/// Host and port from an absolute URI, else the Host header; smuggling shapes are refused.
fn request_target(req: &Request<Incoming>, default_port: u16) -> Result<Target, u16> {
    let headers = req.headers();
    if headers.contains_key(header::TRANSFER_ENCODING)
        && headers.contains_key(header::CONTENT_LENGTH)
    {
        return Err(400);
    }
    if headers.get_all(header::HOST).iter().count() > 1 {
        return Err(400);
    }
    if let Some(scheme) = req.uri().scheme_str() {
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(400);
        }
    }
    let authority = match req.uri().authority() {
        Some(authority) => authority.as_str().to_owned(),
        None => headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .ok_or(400u16)?
            .to_owned(),
    };
    if authority.contains('@') {
        return Err(400);
    }
    let with_port = if has_port(&authority) {
        authority
    } else {
        format!("{authority}:{default_port}")
    };
    parse_authority(&with_port).map_err(|_| 400)
}

fn has_port(authority: &str) -> bool {
    match authority.strip_prefix('[') {
        Some(v6) => v6.contains("]:"),
        None => authority.contains(':'),
    }
}

/// The request as the upstream sees it: origin-form URI, hop-by-hop headers removed.
fn upstream_request(req: Request<Incoming>, target: &Target) -> Request<Incoming> {
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
    if !parts.headers.contains_key(header::HOST) {
        if let Ok(host) = HeaderValue::from_str(&target.to_string()) {
            parts.headers.insert(header::HOST, host);
        }
    }
    Request::from_parts(parts, body)
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

fn deny(record: &mut ConnectionRecord, status: u16, reason: DenyReason) -> Response<Body> {
    record.deny(reason);
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
    let mut response = plain(status, format!("egress-gateway: denied: {reason}\n"));
    response.headers_mut().insert(
        "x-egress-deny-reason",
        HeaderValue::from_static(reason.as_str()),
    );
    response
}

fn plain(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Either::Right(Full::new(body.into())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}
