//! The transparent TLS front end: read the ClientHello, plan on it (the destination is its SNI,
//! the port the original destination or the listener's configured port), dial, replay the hello
//! upstream untouched and splice. Refusals are TLS fatal alerts, since the client speaks TLS.

use std::net::SocketAddr;

use bytes::BytesMut;
use tokio::net::TcpStream;

use super::answer;
use super::{Context, Outbound};
use crate::plan::{self, Alert, Ask, Listener, Tenant};

/// Serves one redirected (or directly addressed) TLS connection of `tenant`; `port` is the
/// destination port the tenant dialled.
pub async fn serve(
    ctx: &Context,
    mut client: TcpStream,
    peer: SocketAddr,
    port: u16,
    tenant: Tenant,
) {
    let snapshot = ctx.snapshots.load();
    let mut record = ctx.record(Listener::Sni, peer, &tenant);
    let mut buf = BytesMut::with_capacity(2048);
    let hello = match ctx
        .read_hello(&mut client, &mut buf, &snapshot, &mut record)
        .await
    {
        Ok(hello) => hello,
        Err(failure) => {
            record.deny(failure.reason);
            if failure.alert {
                answer::send_alert(&mut client, Alert::AccessDenied).await;
            }
            return;
        }
    };
    let plan = plan::plan(
        &snapshot,
        &tenant,
        Listener::Sni,
        &Ask::ClientHello {
            hello: &hello,
            port,
        },
    );
    record.plan(&plan);
    if let Some((reason, refusal)) = plan.refusal() {
        return answer::send_refusal(&mut client, refusal, reason).await;
    }
    let Outbound {
        permit: _permit,
        upstream,
    } = match ctx.open(&snapshot, &plan, &tenant, &mut record).await {
        Ok(outbound) => outbound,
        Err(reason) => return answer::send_alert(&mut client, Alert::for_reason(reason)).await,
    };
    ctx.splice(&snapshot, client, upstream, buf, &mut record)
        .await;
}
