//! The zero-copy engine for plain TCP on both sides: `splice(2)` socket → pipe → socket, driven
//! by tokio readiness. Bytes never enter userspace and an idle tunnel holds no buffer; the pipe
//! of a direction is created on its first readable byte.

use std::future::Future;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::AtomicU64;

use bytes::BytesMut;
use nix::fcntl::{splice, OFlag, SpliceFFlags};
use nix::sys::socket::{shutdown, Shutdown};
use tokio::io::Interest;
use tokio::net::TcpStream;

use super::Meter;

/// Largest splice per call: the default pipe capacity.
const CHUNK: usize = 64 * 1024;

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
    let mut rest = &early[..];
    while !rest.is_empty() {
        to.writable().await?;
        match to.try_write(rest) {
            Ok(n) => {
                meter.moved(&meter.egress, n);
                rest = &rest[n..];
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            Err(err) => return Err(err),
        }
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
        Ok(Self { read, write })
    }
}

/// Moves bytes `from` → `to` until EOF, then half-closes `to`.
async fn pump(
    from: &TcpStream,
    to: &TcpStream,
    meter: &Meter,
    direction: &AtomicU64,
) -> io::Result<()> {
    let flags = SpliceFFlags::SPLICE_F_NONBLOCK | SpliceFFlags::SPLICE_F_MOVE;
    let mut pipe: Option<Pipe> = None;
    loop {
        from.readable().await?;
        if pipe.is_none() {
            pipe = Some(Pipe::new()?);
        }
        let Some(p) = pipe.as_ref() else { continue };
        // The pipe is always empty here, so EAGAIN can only mean the socket has nothing.
        let filled = from.try_io(Interest::READABLE, || {
            splice(from.as_fd(), None, p.write.as_fd(), None, CHUNK, flags).map_err(io::Error::from)
        });
        let n = match filled {
            Ok(0) => {
                // EOF from `from`: pass the half-close on.
                let _ = shutdown(to.as_raw_fd(), Shutdown::Write);
                return Ok(());
            }
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
            Err(err) => return Err(err),
        };
        let mut left = n;
        while left > 0 {
            to.writable().await?;
            let drained = to.try_io(Interest::WRITABLE, || {
                splice(p.read.as_fd(), None, to.as_fd(), None, left, flags).map_err(io::Error::from)
            });
            match drained {
                Ok(m) => left -= m,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => return Err(err),
            }
        }
        meter.moved(direction, n);
    }
}
