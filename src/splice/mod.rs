//! Moving bytes both ways between tenant and upstream until both sides are done or the tunnel
//! idles out, with half-close passed through (a client's `shutdown(Write)` reaches upstream and
//! the response still comes back).
//!
//! Two copy engines share one driver: `splice(2)` through a pipe for plain TCP on both sides
//! (zero-copy, and no userspace buffer at all), and a userspace copy for anything else (TLS,
//! HTTP/2 streams). Byte counts reach the caller through a callback at most every
//! `progress_every` and at the end, never per read. No metrics or logs here.

mod tcp;
mod userspace;

use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::dial::Upstream;

/// Bytes moved in each direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Transferred {
    /// Tenant → upstream.
    pub egress: u64,
    /// Upstream → tenant.
    pub ingress: u64,
}

/// How a tunnel ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpliceEnd {
    /// Both sides closed their sending half.
    Closed,
    /// No byte either way for the idle timeout.
    Idle,
    /// A read or write failed (reset, broken pipe).
    Error,
}

/// Timing knobs of a splice.
#[derive(Debug, Clone, Copy)]
pub struct SpliceOptions {
    /// Close after this long without a byte either way.
    pub idle: Duration,
    /// Report progress at least this often while bytes flow.
    pub progress_every: Duration,
    /// Use `splice(2)` when both sides are plain TCP.
    pub zero_copy: bool,
}

/// Shared by the two directions: byte counters and the time of the last byte.
pub(crate) struct Meter {
    start: Instant,
    egress: AtomicU64,
    ingress: AtomicU64,
    last_activity_ms: AtomicU64,
    directions_ended: AtomicU8,
}

impl Meter {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            egress: AtomicU64::new(0),
            ingress: AtomicU64::new(0),
            last_activity_ms: AtomicU64::new(0),
            directions_ended: AtomicU8::new(0),
        }
    }

    /// Counts `n` bytes in one direction and notes the activity.
    pub(crate) fn moved(&self, direction: &AtomicU64, n: usize) {
        direction.fetch_add(n as u64, Ordering::Relaxed);
        self.last_activity_ms
            .store(self.elapsed_ms(), Ordering::Relaxed);
    }

    /// Notes that one direction reached EOF; true when the other one already had.
    pub(crate) fn other_direction_ended(&self) -> bool {
        self.directions_ended.fetch_add(1, Ordering::AcqRel) == 1
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn quiet_for(&self) -> Duration {
        Duration::from_millis(
            self.elapsed_ms()
                .saturating_sub(self.last_activity_ms.load(Ordering::Relaxed)),
        )
    }

    fn totals(&self) -> Transferred {
        Transferred {
            egress: self.egress.load(Ordering::Relaxed),
            ingress: self.ingress.load(Ordering::Relaxed),
        }
    }
}

/// Splices a plain TCP client with an upstream: zero-copy when both are plain TCP and
/// `options.zero_copy`, else userspace (a TLS parent proxy needs the session in userspace).
///
/// A tunnel that ends in an error (a reset, a broken pipe) or is cut by `cut` completing (the
/// drain deadline) is closed with a reset on both sockets, as HAProxy does: the far side learns
/// the tunnel was cut instead of seeing a clean end that could pass for a complete response, and
/// no FIN exchange or `TIME_WAIT` follows. An idle timeout closes with FIN: nothing was cut.
pub async fn splice_tcp(
    client: TcpStream,
    upstream: Upstream,
    early: BytesMut,
    options: SpliceOptions,
    cut: impl Future<Output = ()>,
    on_progress: impl FnMut(Transferred),
) -> (Transferred, SpliceEnd) {
    let mut client = client;
    let (outcome, upstream) = match upstream.into_tcp() {
        Ok(mut upstream) if options.zero_copy => {
            let outcome = {
                let meter = Meter::new();
                let (up, down) = tcp::directions(&mut client, &mut upstream, early, &meter);
                let (up, down) = (pin!(up), pin!(down));
                drive(up, down, &meter, options, cut, on_progress).await
            };
            (outcome, Upstream::Tcp(upstream))
        }
        other => {
            let mut upstream = other.map_or_else(std::convert::identity, Upstream::Tcp);
            let (client_read, client_write) = client.split();
            let copying = copy_both(
                (client_read, client_write),
                &mut upstream,
                early,
                options,
                cut,
                on_progress,
            );
            (Box::pin(copying).await, upstream)
        }
    };
    if outcome.1 == SpliceEnd::Error {
        abort(&client);
        abort(upstream.socket());
    }
    outcome
}

/// Copies `client` ⇄ `upstream` in userspace, first sending `early` (bytes the client sent
/// before the tunnel was up) to upstream. On an error the upstream is reset, as in
/// [`splice_tcp`]; the client is closed as its stream type closes.
pub async fn splice<C>(
    client: C,
    upstream: Upstream,
    early: BytesMut,
    options: SpliceOptions,
    cut: impl Future<Output = ()>,
    on_progress: impl FnMut(Transferred),
) -> (Transferred, SpliceEnd)
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let (mut client, mut upstream) = (client, upstream);
    let halves = tokio::io::split(&mut client);
    let outcome = copy_both(halves, &mut upstream, early, options, cut, on_progress).await;
    if outcome.1 == SpliceEnd::Error {
        abort(upstream.socket());
    }
    outcome
}

/// Copies between the client's halves and `upstream`. A plain socket splits into borrowed halves
/// with no lock between them; only TLS to a parent needs the shared split.
async fn copy_both<CR, CW>(
    (client_read, client_write): (CR, CW),
    upstream: &mut Upstream,
    early: BytesMut,
    options: SpliceOptions,
    cut: impl Future<Output = ()>,
    on_progress: impl FnMut(Transferred),
) -> (Transferred, SpliceEnd)
where
    CR: AsyncRead + Unpin,
    CW: AsyncWrite + Unpin,
{
    match upstream {
        Upstream::Tcp(tcp) => {
            let (upstream_read, upstream_write) = tcp.split();
            let halves = (client_read, client_write, upstream_read, upstream_write);
            copy_halves(halves, early, options, cut, on_progress).await
        }
        Upstream::Tls(tls) => {
            let (upstream_read, upstream_write) = tokio::io::split(tls.as_mut());
            let halves = (client_read, client_write, upstream_read, upstream_write);
            copy_halves(halves, early, options, cut, on_progress).await
        }
    }
}

/// Copies both ways between the client's and the upstream's read and write halves.
async fn copy_halves<CR, CW, UR, UW>(
    (mut client_read, mut client_write, mut upstream_read, mut upstream_write): (CR, CW, UR, UW),
    early: BytesMut,
    options: SpliceOptions,
    cut: impl Future<Output = ()>,
    on_progress: impl FnMut(Transferred),
) -> (Transferred, SpliceEnd)
where
    CR: AsyncRead + Unpin,
    CW: AsyncWrite + Unpin,
    UR: AsyncRead + Unpin,
    UW: AsyncWrite + Unpin,
{
    let meter = Meter::new();
    let up = userspace::copy_with_early(
        &mut client_read,
        &mut upstream_write,
        early,
        &meter,
        &meter.egress,
    );
    let down = userspace::copy(
        &mut upstream_read,
        &mut client_write,
        &meter,
        &meter.ingress,
    );
    let (up, down) = (pin!(up), pin!(down));
    drive(up, down, &meter, options, cut, on_progress).await
}

/// Makes the coming close send a reset instead of a FIN. Best effort: a socket that is already
/// reset has nothing left to tell.
fn abort(socket: &TcpStream) {
    let _ = socket.set_zero_linger();
}

/// Runs both directions to completion, reporting progress and enforcing the idle timeout.
///
/// The directions come pinned by the caller: an async fn keeps its by-value arguments twice in
/// its state, and these two are most of an idle tunnel's memory.
async fn drive(
    mut up: Pin<&mut impl Future<Output = io::Result<()>>>,
    mut down: Pin<&mut impl Future<Output = io::Result<()>>>,
    meter: &Meter,
    options: SpliceOptions,
    cut: impl Future<Output = ()>,
    mut on_progress: impl FnMut(Transferred),
) -> (Transferred, SpliceEnd) {
    let mut cut = pin!(cut);
    let tick = options
        .progress_every
        .min(options.idle / 4)
        .max(Duration::from_millis(50));
    let mut ticker = tokio::time::interval_at(meter.start + tick, tick);
    let mut reported = Transferred::default();
    let (mut up_done, mut down_done) = (false, false);
    let mut end = SpliceEnd::Closed;
    while !(up_done && down_done) {
        tokio::select! {
            result = up.as_mut(), if !up_done => {
                up_done = true;
                if result.is_err() { end = SpliceEnd::Error; break; }
            }
            result = down.as_mut(), if !down_done => {
                down_done = true;
                if result.is_err() { end = SpliceEnd::Error; break; }
            }
            () = cut.as_mut() => {
                end = SpliceEnd::Error;
                break;
            }
            _ = ticker.tick() => {
                let now = meter.totals();
                if now != reported {
                    on_progress(delta(now, reported));
                    reported = now;
                }
                if meter.quiet_for() >= options.idle {
                    end = SpliceEnd::Idle;
                    break;
                }
            }
        }
    }
    let total = meter.totals();
    if total != reported {
        on_progress(delta(total, reported));
    }
    (total, end)
}

fn delta(now: Transferred, before: Transferred) -> Transferred {
    Transferred {
        egress: now.egress - before.egress,
        ingress: now.ingress - before.ingress,
    }
}
