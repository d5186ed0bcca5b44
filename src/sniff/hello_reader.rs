//! Bounded async reading of a ClientHello from a tenant connection.
//!
//! Owns the read loop around [`client_hello::parse`]: read into a capped buffer until the parser
//! answers, then hand back an owned summary while every byte read stays in the caller's buffer
//! for replay upstream. It must not consume or alter those bytes, apply a timeout (the caller
//! wraps it in `timeouts.sniff`), decide policy, log, or count metrics.

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::client_hello::{self, ClientHello, HelloError, Sniffed};

/// Largest single read; keeps the buffer growing in modest steps towards the limit.
const READ_STEP: usize = 2048;
/// A TLS record header: the slack past `max_bytes` that lets the parser see why a hello is big.
const RECORD_HEADER: usize = 5;

/// The parts of a ClientHello the pipeline decides on, owned so it outlives the read buffer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HelloSummary {
    /// First SNI host name exactly as sent (not yet normalised); `None` means `missing_sni`.
    pub server_name: Option<String>,
    /// Entries in the SNI list, so policy can refuse ambiguous hellos with several names.
    pub server_name_count: usize,
    /// ALPN protocols in the client's order, e.g. `b"h2"`; empty when not offered.
    pub alpn: Vec<Vec<u8>>,
    /// ECH present: the SNI is only the outer public name.
    pub ech: bool,
    /// Length of the buffer prefix holding the hello's records.
    pub record_bytes: usize,
}

impl From<&ClientHello<'_>> for HelloSummary {
    fn from(hello: &ClientHello<'_>) -> Self {
        HelloSummary {
            server_name: hello.server_name.as_deref().map(str::to_owned),
            server_name_count: hello.server_name_count,
            alpn: hello.alpn.iter().map(<[u8]>::to_vec).collect(),
            ech: hello.ech,
            record_bytes: hello.record_bytes,
        }
    }
}

/// Why no ClientHello summary could be produced; each maps to one end reason.
#[derive(Debug, thiserror::Error)]
pub enum SniffError {
    /// The bytes are not an acceptable ClientHello.
    #[error("client hello refused: {0}")]
    Refused(#[from] HelloError),
    /// The peer closed (EOF) before sending a complete hello.
    #[error("connection closed before a complete ClientHello")]
    Closed,
    /// Reading from the peer failed.
    #[error("reading ClientHello: {0}")]
    Io(#[from] std::io::Error),
}

impl SniffError {
    /// Stable short name for logs and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Refused(e) => e.as_str(),
            Self::Closed => "closed",
            Self::Io(_) => "io",
        }
    }
}

/// Reads from `io` into `buf` until a complete ClientHello is there or cannot be, holding at
/// most `max_bytes` plus one record header. Bytes already in `buf` count as the start of the
/// connection; on success and on failure every byte read is left in `buf` for replay.
pub async fn read_client_hello<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut BytesMut,
    max_bytes: usize,
) -> Result<HelloSummary, SniffError> {
    let cap = max_bytes.saturating_add(RECORD_HEADER);
    loop {
        match client_hello::parse(buf, max_bytes) {
            Sniffed::Hello(hello) => return Ok(HelloSummary::from(&hello)),
            Sniffed::Refused(e) => return Err(e.into()),
            Sniffed::NeedMore => {}
        }
        let room = cap.saturating_sub(buf.len()).min(READ_STEP);
        if room == 0 {
            return Err(HelloError::TooLarge.into());
        }
        buf.reserve(room);
        if io.read_buf(&mut (&mut *buf).limit(room)).await? == 0 {
            return Err(SniffError::Closed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    const CURL: &[u8] = include_bytes!("../../fuzz/corpus/client_hello/curl_sni_alpn.bin");
    const FRAGMENTED: &[u8] =
        include_bytes!("../../fuzz/corpus/client_hello/rustls_pq_keyshare_fragmented_512.bin");

    #[tokio::test]
    async fn reads_a_hello_arriving_one_byte_at_a_time() {
        // A one-byte pipe: every read sees at most one byte.
        let (mut client, mut server) = tokio::io::duplex(1);
        let writer = tokio::spawn(async move {
            for byte in CURL {
                client.write_all(std::slice::from_ref(byte)).await.unwrap();
            }
            client // kept open: the reader must stop on the hello, not on EOF
        });
        let mut buf = BytesMut::new();
        let summary = read_client_hello(&mut server, &mut buf, 16384)
            .await
            .unwrap();
        assert_eq!(summary.server_name.as_deref(), Some("curl.example.test"));
        assert_eq!(summary.alpn, [b"h2".to_vec(), b"http/1.1".to_vec()]);
        assert_eq!((summary.record_bytes, &buf[..]), (CURL.len(), CURL));
        drop(writer.await.unwrap());
    }

    #[tokio::test]
    async fn keeps_bytes_already_buffered_and_bytes_after_the_hello() {
        let (mut client, mut server) = tokio::io::duplex(4096);
        client.write_all(&CURL[10..]).await.unwrap();
        client.write_all(b"\x17\x03\x03\x00\x01\x00").await.unwrap();
        let mut buf = BytesMut::from(&CURL[..10]);
        let summary = read_client_hello(&mut server, &mut buf, 16384)
            .await
            .unwrap();
        assert_eq!(summary.record_bytes, CURL.len());
        assert_eq!(&buf[..CURL.len()], CURL);
    }

    #[tokio::test]
    async fn reassembles_a_hello_spread_over_records() {
        let (mut client, mut server) = tokio::io::duplex(100);
        let writer =
            tokio::spawn(async move { client.write_all(FRAGMENTED).await.map(|_| client) });
        let mut buf = BytesMut::new();
        let summary = read_client_hello(&mut server, &mut buf, 16384)
            .await
            .unwrap();
        assert_eq!(summary.server_name.as_deref(), Some("frag.example.test"));
        assert_eq!(&buf[..], FRAGMENTED);
        drop(writer.await.unwrap());
    }

    #[tokio::test]
    async fn eof_mid_hello_is_closed_with_the_bytes_kept() {
        let (mut client, mut server) = tokio::io::duplex(4096);
        client.write_all(&CURL[..200]).await.unwrap();
        drop(client);
        let mut buf = BytesMut::new();
        let err = read_client_hello(&mut server, &mut buf, 16384)
            .await
            .unwrap_err();
        assert!(matches!(err, SniffError::Closed), "{err:?}");
        assert_eq!((err.as_str(), &buf[..]), ("closed", &CURL[..200]));
    }

    #[tokio::test]
    async fn refusals_stop_reading_within_the_limit() {
        let (mut client, mut server) = tokio::io::duplex(8192);
        client.write_all(FRAGMENTED).await.unwrap();
        let mut buf = BytesMut::new();
        let err = read_client_hello(&mut server, &mut buf, 1000)
            .await
            .unwrap_err();
        assert!(
            matches!(err, SniffError::Refused(HelloError::TooLarge)),
            "{err:?}"
        );
        assert!(
            buf.len() <= 1000 + RECORD_HEADER,
            "read {} bytes",
            buf.len()
        );

        let (mut client, mut server) = tokio::io::duplex(8192);
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let mut buf = BytesMut::new();
        let err = read_client_hello(&mut server, &mut buf, 16384)
            .await
            .unwrap_err();
        assert_eq!(err.as_str(), "not_tls");
        assert!(buf.starts_with(b"GET"));
    }
}
