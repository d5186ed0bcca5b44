//! The portable copy engine: read into a buffer, write it out. Used whenever one side is not a
//! plain TCP socket (TLS, HTTP/2 streams) or zero-copy is switched off.

use std::io;
use std::sync::atomic::AtomicU64;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::Meter;

/// Per-direction buffer size.
const BUFFER_BYTES: usize = 16 * 1024;

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
    let mut buf = vec![0u8; BUFFER_BYTES];
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            writer.shutdown().await?;
            return Ok(());
        }
        writer.write_all(&buf[..n]).await?;
        meter.moved(direction, n);
    }
}
