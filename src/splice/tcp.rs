//! The engine for plain TCP on both sides, driven by tokio readiness: short exchanges are copied
//! through a buffer that exists only between awaits, bulk transfers move with `splice(2)`
//! socket → pipe → socket and never enter userspace. An idle tunnel holds no buffer either way.

use std::future::Future;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::AtomicU64;

use bytes::BytesMut;
use nix::fcntl::{fcntl, splice, FcntlArg, OFlag, SpliceFFlags};
use nix::sys::socket::{shutdown, Shutdown};
use tokio::io::Interest;
use tokio::net::TcpStream;

use super::Meter;

/// Userspace copy buffer; a read that fills it marks a bulk transfer.
const COPY_BYTES: usize = 16 * 1024;
/// Pipe capacity asked for bulk directions: fewer, larger splices per wakeup.
const PIPE_BYTES: usize = 1024 * 1024;

/// The two direction futures of a TCP ⇄ TCP tunnel.
pub(super) fn directions<'a>(
    client: &'a TcpStream,
    upstream: &'a TcpStream,
    early: BytesMut,
    meter: &'a Meter,
) -> (
    impl Future<Output = io::Result<()>> + 'a,
    impl Future<Output = io::Result<()>> + 'a,
) {
    let up = async move {
        write_early(upstream, early, meter).await?;
        pump(client, upstream, meter, &meter.egress).await
    };
    let down = pump(upstream, client, meter, &meter.ingress);
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

/// What one userspace read produced.
enum Read {
    Eof,
    Nothing,
    Data {
        n: usize,
        unwritten: Option<Vec<u8>>,
    },
}

/// Moves bytes `from` → `to` until EOF, then half-closes `to`.
///
/// Starts in userspace: a read into a stack buffer that is written straight out, which for the
/// short exchanges most tunnels carry costs two syscalls and no pipe. The first read that fills
/// the buffer marks a bulk transfer and switches the direction to `splice(2)` for good.
async fn pump(
    from: &TcpStream,
    to: &TcpStream,
    meter: &Meter,
    direction: &AtomicU64,
) -> io::Result<()> {
    let mut pipe: Option<Pipe> = None;
    loop {
        read_ready(from).await?;
        if let Some(p) = pipe.as_ref() {
            match splice_through(from, to, p).await? {
                0 => return half_close(to),
                n => meter.moved(direction, n),
            }
            continue;
        }
        // The buffer lives only between awaits, so an idle tunnel holds none.
        let read = {
            let mut buf = [0u8; COPY_BYTES];
            match from.try_read(&mut buf) {
                Ok(0) => Read::Eof,
                Ok(n) => {
                    let written = match to.try_write(&buf[..n]) {
                        Ok(written) => written,
                        Err(err) if err.kind() == io::ErrorKind::WouldBlock => 0,
                        Err(err) => return Err(err),
                    };
                    let unwritten = (written < n).then(|| buf[written..n].to_vec());
                    if n == buf.len() {
                        pipe = Some(Pipe::new()?);
                    }
                    Read::Data { n, unwritten }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => Read::Nothing,
                Err(err) => return Err(err),
            }
        };
        match read {
            Read::Eof => return half_close(to),
            Read::Nothing => {}
            Read::Data { n, unwritten } => {
                if let Some(rest) = unwritten {
                    write_all(to, &rest).await?;
                }
                meter.moved(direction, n);
            }
        }
    }
}

/// Waits until `socket` may be readable. Unlike `TcpStream::readable`, the waker is kept in the
/// socket's own slot, so the wait adds no waiter node to the tunnel's state: these awaits are
/// where idle tunnels sit, and their size is the tunnel's memory.
fn read_ready(socket: &TcpStream) -> impl Future<Output = io::Result<()>> + '_ {
    std::future::poll_fn(|cx| socket.poll_read_ready(cx))
}

/// Waits until `socket` may be writable; see [`read_ready`].
fn write_ready(socket: &TcpStream) -> impl Future<Output = io::Result<()>> + '_ {
    std::future::poll_fn(|cx| socket.poll_write_ready(cx))
}

fn half_close(to: &TcpStream) -> io::Result<()> {
    let _ = shutdown(to.as_raw_fd(), Shutdown::Write);
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
