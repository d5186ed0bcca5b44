//! Small stream adapters the front ends need: replaying bytes already read, counting bytes, and
//! holding request heads back until their framing is checked.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::sniff::http_framing::{Advance, RequestFraming};

/// Writes go straight to the wrapped stream: these adapters only change what is read.
macro_rules! write_through {
    ($wrapper:ident) => {
        impl<T: AsyncWrite + Unpin> AsyncWrite for $wrapper<T> {
            fn poll_write(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                Pin::new(&mut self.inner).poll_write(cx, buf)
            }

            fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Pin::new(&mut self.inner).poll_flush(cx)
            }

            fn poll_shutdown(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<io::Result<()>> {
                Pin::new(&mut self.inner).poll_shutdown(cx)
            }
        }
    };
}

/// A stream whose first reads return `prefix` (bytes consumed while sniffing), then the stream.
pub struct Rewind<T> {
    prefix: Bytes,
    inner: T,
}

impl<T> Rewind<T> {
    /// Replays `prefix` before reading from `inner`.
    pub fn new(prefix: Bytes, inner: T) -> Self {
        Self { prefix, inner }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewind<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

write_through!(Rewind);

/// Bytes read from and written to a stream, readable while it is in use elsewhere.
#[derive(Debug, Default)]
pub struct ByteCounts {
    /// Bytes read from the stream.
    pub read: AtomicU64,
    /// Bytes written to the stream.
    pub written: AtomicU64,
}

/// A stream that counts what passes through it.
pub struct Counted<T> {
    inner: T,
    counts: Arc<ByteCounts>,
}

impl<T> Counted<T> {
    /// Counts into `counts`.
    pub fn new(inner: T, counts: Arc<ByteCounts>) -> Self {
        Self { inner, counts }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        self.counts.read.fetch_add(n, Ordering::Relaxed);
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = result {
            self.counts.written.fetch_add(n as u64, Ordering::Relaxed);
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A tenant stream whose request heads are checked before the HTTP server reads them: bytes are
/// released only as far as [`RequestFraming`] has followed the framing, and a head with
/// conflicting framing ends the stream there (the server sees a clean end, the caller answers 400).
pub struct FramingGuard<T> {
    inner: T,
    framing: RequestFraming,
    pending: BytesMut,
    releasable: usize,
    refused: bool,
    eof: bool,
}

impl<T> FramingGuard<T> {
    /// Guards `inner`; heads longer than `max_head` are left to the server to refuse.
    pub fn new(inner: T, max_head: usize) -> Self {
        Self {
            inner,
            framing: RequestFraming::new(max_head),
            pending: BytesMut::new(),
            releasable: 0,
            refused: false,
            eof: false,
        }
    }

    /// Whether a request was refused for conflicting framing.
    pub fn refused(&self) -> bool {
        self.refused
    }

    /// The guarded stream, to answer on after the server is done.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for FramingGuard<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.releasable > 0 {
                let n = this.releasable.min(buf.remaining());
                buf.put_slice(&this.pending[..n]);
                this.pending.advance(n);
                this.releasable -= n;
                return Poll::Ready(Ok(()));
            }
            if this.refused {
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                // An unfinished head at EOF goes to the server, which reports it.
                this.releasable = this.pending.len();
                if this.releasable == 0 {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            match this.framing.advance(&this.pending) {
                Advance::Release(n) => {
                    this.releasable = n;
                    continue;
                }
                Advance::Refuse => {
                    this.refused = true;
                    continue;
                }
                Advance::NeedMore => {}
            }
            let mut chunk = [0u8; 8192];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                this.eof = true;
            } else {
                this.pending.extend_from_slice(read.filled());
            }
        }
    }
}

write_through!(FramingGuard);
