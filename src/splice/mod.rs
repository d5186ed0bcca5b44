//! Moving bytes both ways between tenant and upstream until both sides are done or the tunnel
//! idles out, with half-close passed through (a client's `shutdown(Write)` reaches upstream and
//! the response still comes back).
//!
//! Byte counts are reported through a callback at most every `progress_every` and at the end, so
//! accounting sees long tunnels advance without a metric update per read. No metrics or logs here.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

/// Per-direction buffer size.
const BUFFER_BYTES: usize = 16 * 1024;

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
}

/// Copies `client` ⇄ `upstream` until done, first sending `early` (bytes the client sent before
/// the tunnel was up) to upstream. `on_progress` receives byte deltas.
pub async fn splice<C, U>(
    client: C,
    upstream: U,
    early: &[u8],
    options: SpliceOptions,
    mut on_progress: impl FnMut(Transferred),
) -> (Transferred, SpliceEnd)
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let egress = AtomicU64::new(0);
    let ingress = AtomicU64::new(0);
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut upstream_read, mut upstream_write) = tokio::io::split(upstream);

    let start = Instant::now();
    let last_activity = AtomicU64::new(0);
    let touch = || last_activity.store(elapsed_ms(start), Ordering::Relaxed);

    let up = async {
        if !early.is_empty() {
            upstream_write.write_all(early).await?;
            egress.fetch_add(early.len() as u64, Ordering::Relaxed);
        }
        copy_half(&mut client_read, &mut upstream_write, &egress, touch).await
    };
    let down = copy_half(&mut upstream_read, &mut client_write, &ingress, touch);
    tokio::pin!(up, down);

    let tick = options
        .progress_every
        .min(options.idle / 4)
        .max(Duration::from_millis(50));
    let mut ticker = tokio::time::interval_at(start + tick, tick);
    let mut reported = Transferred::default();
    let mut up_done = false;
    let mut down_done = false;
    let mut end = SpliceEnd::Closed;
    while !(up_done && down_done) {
        tokio::select! {
            result = &mut up, if !up_done => {
                up_done = true;
                if result.is_err() { end = SpliceEnd::Error; break; }
            }
            result = &mut down, if !down_done => {
                down_done = true;
                if result.is_err() { end = SpliceEnd::Error; break; }
            }
            _ = ticker.tick() => {
                let now = current(&egress, &ingress);
                if now != reported {
                    on_progress(delta(now, reported));
                    reported = now;
                }
                let quiet_ms = elapsed_ms(start).saturating_sub(last_activity.load(Ordering::Relaxed));
                if Duration::from_millis(quiet_ms) >= options.idle {
                    end = SpliceEnd::Idle;
                    break;
                }
            }
        }
    }
    let total = current(&egress, &ingress);
    if total != reported {
        on_progress(delta(total, reported));
    }
    (total, end)
}

fn elapsed_ms(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn current(egress: &AtomicU64, ingress: &AtomicU64) -> Transferred {
    Transferred {
        egress: egress.load(Ordering::Relaxed),
        ingress: ingress.load(Ordering::Relaxed),
    }
}

fn delta(now: Transferred, before: Transferred) -> Transferred {
    Transferred {
        egress: now.egress - before.egress,
        ingress: now.ingress - before.ingress,
    }
}

/// Copies one direction until EOF, then shuts down the writer (half-close).
async fn copy_half<R, W>(
    reader: &mut R,
    writer: &mut W,
    counter: &AtomicU64,
    touch: impl Fn(),
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; BUFFER_BYTES];
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            writer.shutdown().await?;
            return Ok(());
        }
        writer.write_all(&buf[..n]).await?;
        counter.fetch_add(n as u64, Ordering::Relaxed);
        touch();
    }
}
