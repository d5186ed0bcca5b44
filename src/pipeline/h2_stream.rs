//! One HTTP/2 CONNECT stream as a byte stream (`AsyncRead + AsyncWrite`), so tunnels over HTTP/2
//! reuse the same sniffing and splicing as HTTP/1.1 tunnels.
//!
//! Flow control is respected both ways: received data is released back to the peer only as it
//! is handed to the reader, and writes wait for send capacity, so one slow upstream stalls only
//! its own stream.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use h2::{Reason, RecvStream, SendStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A CONNECT stream's two halves.
pub struct H2Stream {
    recv: RecvStream,
    send: SendStream<Bytes>,
    /// Received but not yet read.
    pending: Bytes,
}

impl H2Stream {
    /// Joins the request body (tenant → gateway) and the response body (gateway → tenant).
    pub fn new(recv: RecvStream, send: SendStream<Bytes>) -> Self {
        Self {
            recv,
            send,
            pending: Bytes::new(),
        }
    }
}

fn to_io(err: h2::Error) -> io::Error {
    if err.reason() == Some(Reason::NO_ERROR) {
        io::Error::new(io::ErrorKind::UnexpectedEof, err)
    } else {
        io::Error::new(io::ErrorKind::ConnectionReset, err)
    }
}

impl AsyncRead for H2Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        while self.pending.is_empty() {
            match ready!(self.recv.poll_data(cx)) {
                Some(Ok(data)) => self.pending = data,
                Some(Err(err)) if err.reason() == Some(Reason::NO_ERROR) => {
                    return Poll::Ready(Ok(()))
                }
                Some(Err(err)) => return Poll::Ready(Err(to_io(err))),
                None => return Poll::Ready(Ok(())),
            }
        }
        let n = self.pending.len().min(buf.remaining());
        buf.put_slice(&self.pending[..n]);
        self.pending.advance(n);
        let _ = self.recv.flow_control().release_capacity(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for H2Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        self.send.reserve_capacity(buf.len());
        let granted = match ready!(self.send.poll_capacity(cx)) {
            Some(Ok(granted)) => granted,
            Some(Err(err)) => return Poll::Ready(Err(to_io(err))),
            None => {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "HTTP/2 stream closed",
                )))
            }
        };
        let n = granted.min(buf.len());
        self.send
            .send_data(Bytes::copy_from_slice(&buf[..n]), false)
            .map_err(to_io)?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // END_STREAM: the tunnel's half-close.
        let _ = self.send.send_data(Bytes::new(), true);
        Poll::Ready(Ok(()))
    }
}
