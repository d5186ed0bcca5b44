//! The engine for plain TCP on both sides, driven by tokio readiness: short exchanges are copied
//! through a buffer that exists only between awaits, bulk transfers move with `splice(2)`
//! socket → pipe → socket and never enter userspace. An idle tunnel holds no buffer either way.

use std::future::{poll_fn, Future};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::AtomicU64;

use bytes::BytesMut;
use nix::fcntl::{fcntl, splice, FcntlArg, OFlag, SpliceFFlags};
use nix::sys::socket::{shutdown, Shutdown};
use tokio::io::Interest;
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;

use super::userspace::{read_and_write, BUFFER_BYTES};
use super::Meter;

/// Pipe capacity asked for bulk directions: fewer, larger splices per wakeup.
const PIPE_BYTES: usize = 1024 * 1024;

/// The two direction futures of a TCP ⇄ TCP tunnel.
pub(super) fn directions<'a>(
    client: &'a mut TcpStream,
    upstream: &'a mut TcpStream,
    early: BytesMut,
    meter: &'a Meter,
) -> (
    impl Future<Output = io::Result<()>> + 'a,
    impl Future<Output = io::Result<()>> + 'a,
) {
    let (client_read, client_write) = client.split();
    let (upstream_read, upstream_write) = upstream.split();
    let up = async move {
        write_early(upstream_write.as_ref(), early, meter).await?;
        pump(client_read, upstream_write, meter, &meter.egress).await
    };
    let down = pump(upstream_read, client_write, meter, &meter.ingress);
    (up, down)
}

async fn write_early(to: &TcpStream, early: BytesMut, meter: &Meter) -> io::Result<()> {
    if !early.is_empty() {
        write_all(to, &early).await?;
        meter.moved(&meter.egress, early.len());
    }
    Ok(())
}

/// A pipe used as the in-kernel buffer of one direction.
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    fn new() -> io::Result<Self> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
        // Best effort: the default 64 KiB is kept if the system caps pipe sizes lower.
        let size = i32::try_from(PIPE_BYTES).unwrap_or(i32::MAX);
        let _ = fcntl(&write, FcntlArg::F_SETPIPE_SZ(size));
        Ok(Self { read, write })
    }
}

/// Moves bytes `from` → `to` until EOF, then half-closes `to`.
///
/// Starts in userspace: each read lands in a stack buffer and is written straight out, which for
/// the short exchanges most tunnels carry costs two syscalls and no pipe (a short read also tells
/// tokio the socket is drained, so no `EAGAIN` read follows). The first read that fills the
/// buffer marks a bulk transfer and switches the direction to `splice(2)` for good.
async fn pump(
    mut from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
    meter: &Meter,
    direction: &AtomicU64,
) -> io::Result<()> {
    let mut unwritten = Vec::new();
    loop {
        let n = poll_fn(|cx| read_and_write(cx, &mut from, &mut to, &mut unwritten)).await?;
        if !unwritten.is_empty() {
            write_all(to.as_ref(), &unwritten).await?;
            unwritten = Vec::new();
        }
        if n == 0 {
            return half_close(to.as_ref(), meter);
        }
        meter.moved(direction, n);
        if n == BUFFER_BYTES {
            let pipe = Pipe::new()?;
            loop {
                read_ready(from.as_ref()).await?;
                match splice_through(from.as_ref(), to.as_ref(), &pipe).await? {
                    0 => return half_close(to.as_ref(), meter),
                    n => meter.moved(direction, n),
                }
            }
        }
    }
}

/// Waits until `socket` may be readable. Unlike `TcpStream::readable`, the waker is kept in the
/// socket's own slot, so the wait adds no waiter node to the tunnel's state: these awaits are
/// where idle tunnels sit, and their size is the tunnel's memory.
fn read_ready(socket: &TcpStream) -> impl Future<Output = io::Result<()>> + '_ {
    poll_fn(|cx| socket.poll_read_ready(cx))
}

/// Waits until `socket` may be writable; see [`read_ready`].
fn write_ready(socket: &TcpStream) -> impl Future<Output = io::Result<()>> + '_ {
    poll_fn(|cx| socket.poll_write_ready(cx))
}

/// Passes EOF on. The direction that ends last skips it: the tunnel closes both sockets right
/// after, and that close sends the same FIN without a `shutdown` call.
fn half_close(to: &TcpStream, meter: &Meter) -> io::Result<()> {
    if !meter.other_direction_ended() {
        let _ = shutdown(to.as_raw_fd(), Shutdown::Write);
    }
    Ok(())
}

async fn write_all(to: &TcpStream, mut rest: &[u8]) -> io::Result<()> {
    while !rest.is_empty() {
        write_ready(to).await?;
        match to.try_write(rest) {
            Ok(n) => rest = &rest[n..],
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// One socket → pipe → socket round; returns the bytes moved (0 at EOF).
async fn splice_through(from: &TcpStream, to: &TcpStream, p: &Pipe) -> io::Result<usize> {
    let flags = SpliceFFlags::SPLICE_F_NONBLOCK | SpliceFFlags::SPLICE_F_MOVE;
    loop {
        // The pipe is always empty here, so EAGAIN can only mean the socket has nothing.
        let filled = from.try_io(Interest::READABLE, || {
            splice(from.as_fd(), None, p.write.as_fd(), None, PIPE_BYTES, flags)
                .map_err(io::Error::from)
        });
        let n = match filled {
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                read_ready(from).await?;
                continue;
            }
            Err(err) => return Err(err),
        };
        let mut left = n;
        while left > 0 {
            write_ready(to).await?;
            let drained = to.try_io(Interest::WRITABLE, || {
                splice(p.read.as_fd(), None, to.as_fd(), None, left, flags).map_err(io::Error::from)
            });
            match drained {
                Ok(m) => left -= m,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => return Err(err),
            }
        }
        return Ok(n);
    }
}
