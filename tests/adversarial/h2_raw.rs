//! A raw HTTP/2 client for attacks the `h2` crate will not send: hand-written frames (9-byte
//! header, RFC 9113 §4.1) and HPACK literals without indexing or Huffman (RFC 7541 §6.2.2), over
//! an mTLS stream with ALPN `h2`. A reader task collects the gateway's frames.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio_rustls::client::TlsStream;

/// The client connection preface.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Frame types (RFC 9113 §6).
pub const DATA: u8 = 0;
pub const HEADERS: u8 = 1;
pub const RST_STREAM: u8 = 3;
pub const SETTINGS: u8 = 4;
pub const PING: u8 = 6;
pub const GOAWAY: u8 = 7;
pub const CONTINUATION: u8 = 9;
/// Frame flags.
pub const END_STREAM: u8 = 1;
pub const END_HEADERS: u8 = 4;

/// One frame.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Frame type.
    pub kind: u8,
    /// Flags.
    pub flags: u8,
    /// Stream identifier.
    pub stream: u32,
    /// Payload.
    pub payload: Vec<u8>,
}

/// A frame's bytes.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A header block of literal fields (names and values shorter than 127 bytes).
pub fn block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0);
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
        out.push(value.len() as u8);
        out.extend_from_slice(value.as_bytes());
    }
    out
}

/// A raw HTTP/2 connection: write half, and the frames the gateway sent (`None` once closed).
pub struct RawH2 {
    write: WriteHalf<TlsStream<TcpStream>>,
    frames: UnboundedReceiver<Option<Frame>>,
    reader: tokio::task::JoinHandle<()>,
    /// Whether the gateway closed the connection.
    pub closed: bool,
}

impl RawH2 {
    /// Wraps an established TLS stream; sends nothing yet.
    pub fn new(tls: TlsStream<TcpStream>) -> Self {
        let (mut read, write) = tokio::io::split(tls);
        let (tx, frames) = unbounded_channel();
        let reader = tokio::spawn(async move {
            loop {
                let mut header = [0u8; 9];
                if read.read_exact(&mut header).await.is_err() {
                    let _ = tx.send(None);
                    return;
                }
                let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
                let mut payload = vec![0u8; len];
                if read.read_exact(&mut payload).await.is_err() {
                    let _ = tx.send(None);
                    return;
                }
                let stream =
                    u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff;
                let frame = Frame {
                    kind: header[3],
                    flags: header[4],
                    stream,
                    payload,
                };
                if tx.send(Some(frame)).is_err() {
                    return;
                }
            }
        });
        Self {
            write,
            frames,
            reader,
            closed: false,
        }
    }

    /// Writes `bytes`; false if the gateway stopped taking them within `within`.
    pub async fn send(&mut self, bytes: &[u8], within: Duration) -> bool {
        matches!(
            tokio::time::timeout(within, self.write.write_all(bytes)).await,
            Ok(Ok(()))
        )
    }

    /// Preface and an empty SETTINGS frame.
    pub async fn start(&mut self) {
        let mut hello = PREFACE.to_vec();
        hello.extend_from_slice(&frame(SETTINGS, 0, 0, &[]));
        assert!(self.send(&hello, crate::common::WAIT).await, "preface");
    }

    /// The next frame within `within`; `None` when the connection closed or nothing came.
    pub async fn next(&mut self, within: Duration) -> Option<Frame> {
        if self.closed {
            return None;
        }
        match tokio::time::timeout(within, self.frames.recv()).await {
            Ok(Some(Some(frame))) => Some(frame),
            Ok(_) => {
                self.closed = true;
                None
            }
            Err(_) => None,
        }
    }

    /// Frames until one on `stream` ends it (RST_STREAM, or END_STREAM), the connection goes
    /// away (GOAWAY or close), or `within` passes; returns every frame on `stream` and the
    /// GOAWAY if any.
    pub async fn until_stream_ends(&mut self, stream: u32, within: Duration) -> Vec<Frame> {
        let deadline = tokio::time::Instant::now() + within;
        let mut got = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(frame) = self.next(left).await else {
                return got;
            };
            let ends = frame.kind == GOAWAY
                || (frame.stream == stream
                    && (frame.kind == RST_STREAM || frame.flags & END_STREAM != 0));
            if frame.stream == stream || frame.kind == GOAWAY {
                got.push(frame);
            }
            if ends {
                return got;
            }
        }
    }

    /// Reads frames until the gateway closes the connection; false if it is still open after
    /// `within`.
    pub async fn until_closed(&mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while !self.closed {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            let _ = self.next(left).await;
        }
        true
    }
}

impl Drop for RawH2 {
    /// Dropping the client closes its connection: the read half lives in the reader task.
    fn drop(&mut self) {
        self.reader.abort();
    }
}
