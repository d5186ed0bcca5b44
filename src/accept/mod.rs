//! Accept loops: take connections off bound listeners, name each connection's tenant once from
//! what it presented (through the planner's `identify`), and hand it to its front end on its own
//! task, until told to stop accepting. Listeners are bound by the app and passed in, so tests
//! and the app share one code path.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::account::metrics;
use crate::pipeline::{self, Context};
use crate::plan::{self, Listener, Presented, Tenant};
use crate::sniff::original_dst::TransparentPort;
use crate::tls::{handshake_failure_reason, TlsReloader};

/// Accepts on `listener` until `stop` is cancelled, serving each connection with `serve` on a
/// task tracked by `tracker` (so shutdown can wait for them). One accept task per runtime worker
/// shares the socket, so accepting never serialises on a single task; when they stop, the socket
/// closes and new connections are refused.
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    name: Listener,
    stop: CancellationToken,
    tracker: TaskTracker,
    serve: F,
) where
    F: Fn(TcpStream, SocketAddr) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = Arc::new(listener);
    let serve = Arc::new(serve);
    let workers = tokio::runtime::Handle::current()
        .metrics()
        .num_workers()
        .max(1);
    let mut loops = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (listener, serve) = (listener.clone(), serve.clone());
        let (stop, tracker) = (stop.clone(), tracker.clone());
        loops.spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    _ = stop.cancelled() => break,
                };
                match accepted {
                    Ok((stream, peer)) => {
                        // A dual-stack (`[::]`) listener sees IPv4 clients as `::ffff:a.b.c.d`:
                        // identity, logs and metrics name them by their IPv4 address.
                        let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
                        tracker.spawn(serve(stream, peer));
                    }
                    Err(err) => {
                        // EMFILE and friends: back off briefly instead of spinning.
                        tracing::warn!(listener = %name, error = %err, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                }
            }
        });
    }
    drop(listener);
    while loops.join_next().await.is_some() {}
    tracing::info!(listener = %name, "stopped accepting");
}

/// Sets `TCP_NODELAY` on a listening socket. Linux copies it into every accepted socket, so
/// tunnels relay small writes at once without a `setsockopt` per connection.
pub fn no_delay_for_accepted(listener: &TcpListener) -> std::io::Result<()> {
    nix::sys::socket::setsockopt(listener, nix::sys::socket::sockopt::TcpNoDelay, &true)
        .map_err(std::io::Error::from)
}

fn transparent_port(listener: &TcpListener, default_port: u16) -> TransparentPort {
    TransparentPort {
        bound: listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0))),
        default_port,
    }
}

/// The tenant of a plaintext connection: its source address, as the current snapshot maps it.
fn by_source(ctx: &Context, listener: Listener, peer: SocketAddr) -> Tenant {
    let presented = Presented::SourceAddress(peer.ip());
    plan::identify(&ctx.snapshots.load(), listener, &presented)
}

/// The plaintext CONNECT listener.
pub async fn connect(
    listener: TcpListener,
    ctx: Arc<Context>,
    stop: CancellationToken,
    tracker: TaskTracker,
) {
    accept_loop(
        listener,
        Listener::Connect,
        stop,
        tracker,
        move |stream, peer| {
            let ctx = ctx.clone();
            async move {
                let tenant = by_source(&ctx, Listener::Connect, peer);
                pipeline::connect::serve(ctx, stream, peer, Listener::Connect, tenant).await
            }
        },
    )
    .await;
}

/// The transparent TLS (SNI) listener; `port` is used when the connection was not redirected.
pub async fn sni(
    listener: TcpListener,
    port: u16,
    ctx: Arc<Context>,
    stop: CancellationToken,
    tracker: TaskTracker,
) {
    let transparent = transparent_port(&listener, port);
    accept_loop(
        listener,
        Listener::Sni,
        stop,
        tracker,
        move |stream, peer| {
            let ctx = ctx.clone();
            async move {
                let port = transparent.destination_port(&stream);
                let tenant = by_source(&ctx, Listener::Sni, peer);
                pipeline::sni::serve(&ctx, stream, peer, port, tenant).await
            }
        },
    )
    .await;
}

/// The transparent plain-HTTP listener; `port` is used when the connection was not redirected.
pub async fn http(
    listener: TcpListener,
    port: u16,
    ctx: Arc<Context>,
    stop: CancellationToken,
    tracker: TaskTracker,
) {
    let transparent = transparent_port(&listener, port);
    accept_loop(
        listener,
        Listener::Http,
        stop,
        tracker,
        move |stream, peer| {
            let ctx = ctx.clone();
            async move {
                let port = transparent.destination_port(&stream);
                let tenant = by_source(&ctx, Listener::Http, peer);
                pipeline::forward::serve(ctx, stream, peer, Listener::Http, tenant, port).await
            }
        },
    )
    .await;
}

/// The mTLS listener: handshake (client certificate required), then HTTP/2 or HTTP/1.1 CONNECT
/// by ALPN. Handshake failures are counted by reason and go no further.
pub async fn connect_tls(
    listener: TcpListener,
    tls: Arc<TlsReloader>,
    ctx: Arc<Context>,
    stop: CancellationToken,
    tracker: TaskTracker,
) {
    accept_loop(
        listener,
        Listener::ConnectTls,
        stop,
        tracker,
        move |stream, peer| {
            let ctx = ctx.clone();
            let acceptor = tls.acceptor();
            async move {
                let deadline = ctx.snapshots.load().timeouts.sniff;
                let stream = match tokio::time::timeout(deadline, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(err)) => {
                        let reason = handshake_failure_reason(&err);
                        tracing::debug!(%peer, reason, error = %err, "TLS handshake failed");
                        return metrics::tls_handshake_error(Listener::ConnectTls, reason);
                    }
                    Err(_) => return metrics::tls_handshake_error(Listener::ConnectTls, "timeout"),
                };
                let (_, session) = stream.get_ref();
                let presented = session
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .map_or(
                        Presented::Certificate {
                            uri_sans: Vec::new(),
                        },
                        |leaf| Presented::from_certificate(leaf),
                    );
                let tenant =
                    plan::identify(&ctx.snapshots.load(), Listener::ConnectTls, &presented);
                if session.alpn_protocol() == Some(b"h2") {
                    pipeline::h2::serve(ctx, stream, peer, tenant).await
                } else {
                    pipeline::connect::serve(ctx, stream, peer, Listener::ConnectTls, tenant).await
                }
            }
        },
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_sockets_inherit_no_delay_from_the_listener() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let (_client, accepted) = tokio::join!(TcpStream::connect(address), listener.accept());
        let (accepted, _) = accepted.expect("accept");
        assert!(!accepted.nodelay().expect("getsockopt"), "off by default");

        no_delay_for_accepted(&listener).expect("setsockopt");
        let (_client, accepted) = tokio::join!(TcpStream::connect(address), listener.accept());
        let (accepted, _) = accepted.expect("accept");
        assert!(accepted.nodelay().expect("getsockopt"), "inherited");
    }
}
