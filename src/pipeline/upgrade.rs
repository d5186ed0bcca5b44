//! HTTP/1.1 Upgrade (WebSocket and the like) on forwarded requests: the request goes upstream
//! with its `Upgrade` header; when the upstream answers `101 Switching Protocols` both
//! connections leave HTTP and the exchange becomes a spliced tunnel, counted and logged like one.
//!
//! `Upgrade: h2c` is refused: a cleartext HTTP/2 tunnel through the gateway would carry requests
//! the gateway never planned (the "h2c smuggling" pattern).

use crate::dial::Upstream;
use bytes::BytesMut;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;

use super::io::Counted;
use super::{ClientIo, Context};
use crate::account::ConnectionRecord;
use crate::limit::Permit;
use crate::plan::DenyReason;
use crate::snapshot::Snapshot;
use crate::splice::Transferred;

/// The protocol a request asks to switch to, when it asks (`Upgrade` named in `Connection`).
pub struct Requested(HeaderValue);

/// Reads the upgrade a request asks for: none, one to forward, or a refused one (`h2c`).
pub fn requested(headers: &HeaderMap) -> Result<Option<Requested>, DenyReason> {
    let Some(protocols) = headers.get(header::UPGRADE) else {
        return Ok(None);
    };
    let named_in_connection = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    if !named_in_connection {
        return Ok(None);
    }
    let h2c = protocols
        .to_str()
        .map_err(|_| DenyReason::MalformedRequest)?
        .split(',')
        .any(|p| p.trim().eq_ignore_ascii_case("h2c"));
    if h2c || headers.get_all(header::UPGRADE).iter().count() > 1 {
        return Err(DenyReason::MalformedRequest);
    }
    Ok(Some(Requested(protocols.clone())))
}

impl Requested {
    /// Puts the upgrade back on a message whose hop-by-hop headers were stripped.
    pub fn restore(&self, headers: &mut HeaderMap) {
        headers.insert(header::UPGRADE, self.0.clone());
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// What the spliced tunnel needs once both sides have switched protocols.
pub struct Switch {
    /// The tenant's side, once hyper hands it over.
    pub client: OnUpgrade,
    /// The upstream's side.
    pub upstream: OnUpgrade,
    /// The exchange's record: the tunnel's bytes and duration land in its one log line.
    pub record: ConnectionRecord,
    /// The tenant's connection slot, held for the tunnel's life.
    pub permit: Permit,
}

/// Waits for both sides to switch, then splices them until either ends, the tunnel idles out or
/// the drain deadline cuts it.
pub async fn splice(ctx: &Context, snapshot: &Snapshot, switch: Switch, http_bytes: Transferred) {
    let Switch {
        client,
        upstream,
        mut record,
        permit,
    } = switch;
    record.progress(http_bytes);
    let (Ok(client), Ok(upstream)) = tokio::join!(client, upstream) else {
        return;
    };
    let Ok(upstream) = upstream.downcast::<TokioIo<Counted<Upstream>>>() else {
        return;
    };
    let mut client = TokioIo::new(client);
    // Bytes the upstream sent right behind its `101` were already read (and counted) by hyper.
    if client.write_all(&upstream.read_buf).await.is_err() {
        return;
    }
    let upstream = upstream.io.into_inner().into_inner();
    ctx.splice(snapshot, client, upstream, BytesMut::new(), &mut record)
        .await;
    drop(permit);
}

impl ClientIo for TokioIo<Upgraded> {}
