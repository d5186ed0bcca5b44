//! The portable copy engine: read into a buffer, write it out. Used whenever one side is not a
//! plain TCP socket (TLS, HTTP/2 streams) or zero-copy is switched off.

use std::future::poll_fn;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::task::{ready, Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::Meter;

/// Bytes one read may take; for plain TCP a read that fills it marks a bulk transfer.
pub(super) const BUFFER_BYTES: usize = 16 * 1024;

/// Sends `early` first (then frees it), then copies like [`copy`].
pub(super) async fn copy_with_early<R, W>(
    reader: &mut R,
    writer: &mut W,
    early: BytesMut,
    meter: &Meter,
    direction: &AtomicU64,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    if !early.is_empty() {
        writer.write_all(&early).await?;
        meter.moved(direction, early.len());
    }
    drop(early);
    copy(reader, writer, meter, direction).await
}

/// Copies one direction until EOF, then shuts down the writer (half-close).
///
/// Each read lands in a buffer on the poll's stack and is written straight on; only bytes the
/// writer could not take yet are kept, on the heap, until it can. So a waiting tunnel holds no
/// buffer, and no buffer is allocated or zeroed per tunnel.
pub(super) async fn copy<R, W>(
    reader: &mut R,
    writer: &mut W,
    meter: &Meter,
    direction: &AtomicU64,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut unwritten = Vec::new();
    loop {
        if !unwritten.is_empty() {
            writer.write_all(&unwritten).await?;
            unwritten = Vec::new();
        }
        let n = poll_fn(|cx| read_and_write(cx, reader, writer, &mut unwritten)).await?;
        if n == 0 {
            writer.shutdown().await?;
            return Ok(());
        }
        meter.moved(direction, n);
    }
}

/// One read into a stack buffer, written on at once as far as `writer` takes it; the rest goes
/// to `unwritten`. Returns the bytes read (0 at EOF).
pub(super) fn read_and_write<R, W>(
    cx: &mut Context<'_>,
    reader: &mut R,
    writer: &mut W,
    unwritten: &mut Vec<u8>,
) -> Poll<io::Result<usize>>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut stack = [MaybeUninit::<u8>::uninit(); BUFFER_BYTES];
    let mut buf = ReadBuf::uninit(&mut stack);
    ready!(Pin::new(&mut *reader).poll_read(cx, &mut buf))?;
    let read = buf.filled();
    let mut written = 0;
    while written < read.len() {
        match Pin::new(&mut *writer).poll_write(cx, &read[written..]) {
            Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            Poll::Ready(Ok(n)) => written += n,
            Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
            Poll::Pending => break,
        }
    }
    unwritten.extend_from_slice(&read[written..]);
    Poll::Ready(Ok(read.len()))
}
