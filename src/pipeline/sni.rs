//! The transparent TLS front end: the destination is the ClientHello's SNI, the port is the
//! original destination (or the listener's configured port); the hello is replayed upstream
//! untouched. Denies are TLS fatal alerts, since the client speaks TLS.

use std::net::SocketAddr;

use bytes::BytesMut;
use tokio::net::TcpStream;

use super::answer::{self, Alert};
use super::{Context, Outbound};
use crate::account::ConnectionRecord;
use crate::decide::DenyReason;
use crate::identify::Presented;
use crate::names::{Host, Hostname, Target};
use crate::sniff::hello_reader::{self, SniffError};

/// Serves one redirected (or directly addressed) TLS connection; `port` is the destination port
/// the tenant dialled.
pub async fn serve(ctx: &Context, mut client: TcpStream, peer: SocketAddr, port: u16) {
    let snapshot = ctx.snapshots.load();
    let mut record = ctx.record("sni", peer);

    let mut buf = BytesMut::with_capacity(2048);
    let reading = hello_reader::read_client_hello(
        &mut client,
        &mut buf,
        snapshot.limits.max_client_hello_bytes,
    );
    let hello = match tokio::time::timeout(snapshot.timeouts.sniff, reading).await {
        Err(_) => return record.deny(DenyReason::SniffTimeout),
        Ok(Err(SniffError::Closed | SniffError::Io(_))) => {
            return record.deny(DenyReason::MalformedRequest)
        }
        Ok(Err(SniffError::Refused(_))) => {
            record.deny(DenyReason::MalformedRequest);
            return answer::send_alert(&mut client, Alert::AccessDenied).await;
        }
        Ok(Ok(hello)) => hello,
    };
    record.sni(hello.server_name.as_deref(), hello.ech);
    let Some(namespace) = ctx.identify(&snapshot, peer, &Presented::SourceAddress, &mut record)
    else {
        return deny(&mut client, &mut record, DenyReason::UnknownTenant).await;
    };
    let Some(raw_sni) = hello.server_name.as_deref() else {
        return deny(&mut client, &mut record, DenyReason::MissingSni).await;
    };
    // RFC 6066 allows one host_name: with several, the origin might serve one we did not check.
    if hello.server_name_count > 1 {
        return deny(&mut client, &mut record, DenyReason::MalformedRequest).await;
    }
    let target = match Hostname::parse(raw_sni) {
        Ok(name) => Target {
            host: Host::Name(name),
            port,
        },
        Err(_) => return deny(&mut client, &mut record, DenyReason::MalformedRequest).await,
    };
    record.target(&target);

    let Outbound {
        permit: _permit,
        upstream,
        ..
    } = match ctx.open(&snapshot, &namespace, &target, &mut record).await {
        Ok(outbound) => outbound,
        Err(reason) => return deny(&mut client, &mut record, reason).await,
    };
    ctx.splice(&snapshot, client, upstream, buf, &mut record)
        .await;
}

async fn deny(client: &mut TcpStream, record: &mut ConnectionRecord, reason: DenyReason) {
    record.deny(reason);
    answer::send_alert(client, Alert::for_reason(reason)).await;
}
