//! TLS ClientHello parser: finds SNI, ALPN and the ECH flag in the first bytes a tenant sends.
//!
//! Owns the wire format of the records that carry a ClientHello (RFC 8446 §5.1 and §4.1.2,
//! RFC 6066 `server_name`, RFC 7301 ALPN). [`parse`] is a pure, total function over `&[u8]`: no
//! I/O, no clock, no panics, no recursion, and no allocation except one copy of the handshake
//! when it spans several records. It must not normalise or judge the names it returns (that is
//! `names` and `policy`), read sockets (that is `hello_reader`), log, or count metrics.

use std::borrow::Cow;

/// Largest TLS plaintext fragment (RFC 8446 §5.1); a longer record is a protocol violation.
const MAX_FRAGMENT: usize = 1 << 14;
const RECORD_HEADER: usize = 5;
const HANDSHAKE_HEADER: usize = 4;
const CONTENT_HANDSHAKE: u8 = 22;
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;
const EXT_ECH: u16 = 0xfe0d;
const SNI_HOST_NAME: u8 = 0;
/// Smallest ClientHello body: version, random, empty session id, one suite, one compression.
const MIN_HELLO_BODY: usize = 2 + 32 + 1 + 2 + 2 + 1 + 1;

/// Outcome of looking at the bytes received so far; the caller reads more only on `NeedMore`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sniffed<'a> {
    /// Everything so far is a plausible prefix of a ClientHello; read more bytes and ask again.
    NeedMore,
    /// A complete ClientHello; `record_bytes` says where it ends.
    Hello(ClientHello<'a>),
    /// The bytes cannot be (the start of) an acceptable ClientHello; reading more will not help.
    Refused(HelloError),
}

/// What the gateway needs from a ClientHello to decide, borrowed from the input when the hello
/// sits in one record and owned only when it had to be reassembled from several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello<'a> {
    /// First `host_name` entry of the `server_name` extension, exactly as sent (the caller
    /// normalises case and trailing dot); `None` when the client sent no SNI.
    pub server_name: Option<Cow<'a, str>>,
    /// Entries in the SNI list: RFC 6066 allows one host name, so policy may refuse more.
    pub server_name_count: usize,
    /// Protocols offered by ALPN, in the client's order; empty when the extension is absent.
    pub alpn: AlpnList<'a>,
    /// The `encrypted_client_hello` extension is present: the SNI is then only the public name.
    pub ech: bool,
    /// Bytes of input taken by the records carrying the hello; the caller replays the buffer
    /// from offset 0 (this prefix and anything after it) upstream unchanged.
    pub record_bytes: usize,
}

/// The ALPN `ProtocolNameList`, validated once so that iterating it cannot fail or allocate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlpnList<'a> {
    /// Concatenated `u8`-length-prefixed, non-empty protocol names.
    raw: Cow<'a, [u8]>,
}

impl AlpnList<'_> {
    /// Walks the offered protocol names without copying them.
    pub fn iter(&self) -> AlpnIter<'_> {
        AlpnIter { rest: &self.raw }
    }

    /// Number of offered protocols; cheap enough for a log field.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// True when the client offered no ALPN, which usually means HTTP/1.1 or a non-HTTP protocol.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Whether the client offered `protocol`, e.g. `b"h2"` when choosing how to terminate.
    pub fn contains(&self, protocol: &[u8]) -> bool {
        self.iter().any(|p| p == protocol)
    }
}

/// Iterator over [`AlpnList`]; stops (rather than panicking) if the list were ever inconsistent.
#[derive(Debug, Clone)]
pub struct AlpnIter<'b> {
    rest: &'b [u8],
}

impl<'b> Iterator for AlpnIter<'b> {
    type Item = &'b [u8];

    fn next(&mut self) -> Option<&'b [u8]> {
        let mut r = Reader(self.rest);
        let name = r.vec_u8();
        self.rest = if name.is_some() { r.0 } else { &[] };
        name
    }
}

/// Why bytes were refused as a ClientHello; one variant per thing a peer can get wrong, so each
/// maps to a bounded end reason without parsing error text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HelloError {
    /// The first bytes are not a TLS record at all (plain HTTP, SSH, CONNECT, …).
    #[error("not TLS")]
    NotTls,
    /// An SSL 2.0-compatible hello, which carries no extensions and so no SNI.
    #[error("SSLv2-compatible ClientHello (no extensions possible)")]
    SslV2,
    /// A TLS record, but not a handshake record (alert, application data, …).
    #[error("first TLS record is not a handshake record")]
    NotHandshake,
    /// A handshake message other than ClientHello opened the connection.
    #[error("first handshake message is not a ClientHello")]
    NotClientHello,
    /// A length field disagrees with the bytes around it.
    #[error("inconsistent length field in ClientHello")]
    BadLength,
    /// The hello's records stopped before the hello did (another record type cut in).
    #[error("ClientHello truncated by a non-handshake record")]
    Truncated,
    /// The hello needs more than the configured `max_client_hello_bytes`.
    #[error("ClientHello larger than the configured limit")]
    TooLarge,
    /// A field holds a value the RFCs forbid; the text says which.
    #[error("malformed ClientHello: {0}")]
    Malformed(&'static str),
}

impl HelloError {
    /// Stable short name for logs and metric labels (never the Display text).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::NotTls => "not_tls",
            Self::SslV2 => "sslv2",
            Self::NotHandshake => "not_handshake",
            Self::NotClientHello => "not_client_hello",
            Self::BadLength => "bad_length",
            Self::Truncated => "truncated",
            Self::TooLarge => "too_large",
            Self::Malformed(_) => "malformed",
        }
    }
}

/// Looks at the bytes received so far (from the first byte of the connection) and says whether
/// they hold a complete ClientHello, need more bytes, or can never become one.
///
/// `max_bytes` bounds the records carrying the hello, headers included; a hello that is known
/// to need more is refused as [`HelloError::TooLarge`] as soon as its lengths say so.
pub fn parse(buf: &[u8], max_bytes: usize) -> Sniffed<'_> {
    let span = match locate(buf, max_bytes) {
        Ok(span) => span,
        Err(Stop::NeedMore) => return Sniffed::NeedMore,
        Err(Stop::Refused(e)) => return Sniffed::Refused(e),
    };
    let result = if span.records == 1 {
        // Zero-copy: the whole handshake message sits in the first record's fragment.
        let body = buf
            .get(RECORD_HEADER + HANDSHAKE_HEADER..RECORD_HEADER + span.handshake_len)
            .unwrap_or_default();
        parse_body(body).map(|f| f.borrowed(span.record_bytes))
    } else {
        let handshake = reassemble(buf.get(..span.record_bytes).unwrap_or_default(), span);
        let body = handshake.get(HANDSHAKE_HEADER..).unwrap_or_default();
        parse_body(body).map(|f| f.owned(span.record_bytes))
    };
    match result {
        Ok(hello) => Sniffed::Hello(hello),
        Err(e) => Sniffed::Refused(e),
    }
}

/// Why [`locate`] stopped before finding a whole hello.
enum Stop {
    NeedMore,
    Refused(HelloError),
}

impl From<HelloError> for Stop {
    fn from(e: HelloError) -> Self {
        Stop::Refused(e)
    }
}

/// Where a complete ClientHello handshake message lies in the input.
#[derive(Clone, Copy)]
struct Span {
    /// End of the last record holding part of the hello.
    record_bytes: usize,
    /// Handshake header plus body.
    handshake_len: usize,
    /// Records the hello spans.
    records: usize,
}

/// Walks record headers until the ClientHello handshake message is complete, refusing as early
/// as the bytes allow (one byte decides "not TLS"; lengths decide "too large" before the data).
fn locate(buf: &[u8], max_bytes: usize) -> Result<Span, Stop> {
    let first = *buf.first().ok_or(Stop::NeedMore)?;
    if first & 0x80 != 0 {
        // SSLv2 framing: two length bytes with the high bit set, then msg type 1 (CLIENT-HELLO).
        return Err(match buf.get(2) {
            None => Stop::NeedMore,
            Some(1) => HelloError::SslV2.into(),
            Some(_) => HelloError::NotTls.into(),
        });
    }
    if !(20..=24).contains(&first) {
        return Err(HelloError::NotTls.into());
    }
    if *buf.get(1).ok_or(Stop::NeedMore)? != 3 {
        return Err(HelloError::NotTls.into());
    }
    if first != CONTENT_HANDSHAKE {
        return Err(HelloError::NotHandshake.into());
    }

    let mut pos = 0;
    let mut records = 0;
    let mut seen = 0; // handshake bytes in complete records before `pos`
    let mut head = [0u8; HANDSHAKE_HEADER];
    let mut head_len = 0;
    let mut total: Option<usize> = None; // handshake header + body, once known
    loop {
        let avail = buf.get(pos..).unwrap_or_default();
        match avail.first() {
            Some(&CONTENT_HANDSHAKE) | None => {}
            Some(_) => return Err(HelloError::Truncated.into()),
        }
        if avail.get(1).is_some_and(|&major| major != 3) {
            return Err(HelloError::Malformed("record version is not 3.x").into());
        }
        if avail.get(2).is_some_and(|minor| !(1..=3).contains(minor)) {
            return Err(HelloError::Malformed("record version is not TLS 1.0-1.2").into());
        }
        let header = avail.get(..RECORD_HEADER).ok_or(Stop::NeedMore)?;
        let fragment_len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if fragment_len == 0 {
            return Err(HelloError::Malformed("empty handshake record").into());
        }
        if fragment_len > MAX_FRAGMENT {
            return Err(HelloError::BadLength.into());
        }
        let record_end = pos + RECORD_HEADER + fragment_len;
        if record_end > max_bytes {
            return Err(HelloError::TooLarge.into());
        }
        let after_header = avail.get(RECORD_HEADER..).unwrap_or_default();
        let fragment = &after_header[..after_header.len().min(fragment_len)];
        for &b in fragment.iter().take(HANDSHAKE_HEADER - head_len) {
            head[head_len] = b;
            head_len += 1;
        }
        if head_len >= 1 && head[0] != HANDSHAKE_CLIENT_HELLO {
            return Err(HelloError::NotClientHello.into());
        }
        if head_len == HANDSHAKE_HEADER && total.is_none() {
            let body_len =
                usize::from(head[1]) << 16 | usize::from(head[2]) << 8 | usize::from(head[3]);
            if body_len < MIN_HELLO_BODY {
                return Err(HelloError::BadLength.into());
            }
            total = Some(HANDSHAKE_HEADER + body_len);
        }
        if let Some(total) = total {
            // Even if the rest fits in this record, the hello needs at least this much input.
            if (pos + RECORD_HEADER).saturating_add(total.saturating_sub(seen)) > max_bytes {
                return Err(HelloError::TooLarge.into());
            }
        }
        if fragment.len() < fragment_len {
            return Err(Stop::NeedMore);
        }
        records += 1;
        seen += fragment_len;
        pos = record_end;
        if let Some(total) = total.filter(|&t| seen >= t) {
            return Ok(Span {
                record_bytes: pos,
                handshake_len: total,
                records,
            });
        }
    }
}

/// Copies the handshake fragments of several records into one buffer; called once per hello,
/// only when [`locate`] found it complete.
fn reassemble(mut records: &[u8], span: Span) -> Vec<u8> {
    let mut out = Vec::with_capacity(span.handshake_len);
    while let Some(header) = records.get(..RECORD_HEADER) {
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        let end = (RECORD_HEADER + len).min(records.len());
        let fragment = records.get(RECORD_HEADER..end).unwrap_or_default();
        let wanted = span.handshake_len - out.len();
        out.extend_from_slice(&fragment[..fragment.len().min(wanted)]);
        records = records.get(end..).unwrap_or_default();
    }
    out
}

/// Fields found in a hello body, borrowed from wherever the body lives.
#[derive(Default)]
struct Fields<'b> {
    server_name: Option<&'b str>,
    server_name_count: usize,
    alpn: &'b [u8],
    ech: bool,
}

impl<'b> Fields<'b> {
    fn borrowed(self, record_bytes: usize) -> ClientHello<'b> {
        ClientHello {
            server_name: self.server_name.map(Cow::Borrowed),
            server_name_count: self.server_name_count,
            alpn: AlpnList {
                raw: Cow::Borrowed(self.alpn),
            },
            ech: self.ech,
            record_bytes,
        }
    }

    fn owned(self, record_bytes: usize) -> ClientHello<'static> {
        ClientHello {
            server_name: self.server_name.map(|s| Cow::Owned(s.to_owned())),
            server_name_count: self.server_name_count,
            alpn: AlpnList {
                raw: Cow::Owned(self.alpn.to_vec()),
            },
            ech: self.ech,
            record_bytes,
        }
    }
}

/// Parses a ClientHello body (after the 4-byte handshake header), which must be consumed exactly.
fn parse_body(body: &[u8]) -> Result<Fields<'_>, HelloError> {
    use HelloError::{BadLength, Malformed};
    let mut r = Reader(body);
    let version = r.u16().ok_or(BadLength)?;
    if version >> 8 != 3 {
        return Err(Malformed("client_version is not 3.x"));
    }
    r.take(32).ok_or(BadLength)?; // random
    if r.vec_u8().ok_or(BadLength)?.len() > 32 {
        return Err(Malformed("session id longer than 32 bytes"));
    }
    let suites = r.vec_u16().ok_or(BadLength)?;
    if suites.is_empty() || suites.len() % 2 != 0 {
        return Err(Malformed("cipher suite list empty or odd-sized"));
    }
    if r.vec_u8().ok_or(BadLength)?.is_empty() {
        return Err(Malformed("no compression methods"));
    }
    let mut fields = Fields::default();
    if r.0.is_empty() {
        return Ok(fields); // TLS 1.0-1.2 allow a hello without extensions
    }
    let mut extensions = Reader(r.vec_u16().ok_or(BadLength)?);
    if !r.0.is_empty() {
        return Err(BadLength);
    }
    let (mut sni_seen, mut alpn_seen) = (false, false);
    while !extensions.0.is_empty() {
        let kind = extensions.u16().ok_or(BadLength)?;
        let data = extensions.vec_u16().ok_or(BadLength)?;
        match kind {
            EXT_SERVER_NAME if sni_seen => {
                return Err(Malformed("duplicate server_name extension"))
            }
            EXT_SERVER_NAME => {
                sni_seen = true;
                parse_server_name(data, &mut fields)?;
            }
            EXT_ALPN if alpn_seen => return Err(Malformed("duplicate ALPN extension")),
            EXT_ALPN => {
                alpn_seen = true;
                fields.alpn = parse_alpn(data)?;
            }
            EXT_ECH if fields.ech => return Err(Malformed("duplicate ECH extension")),
            EXT_ECH => fields.ech = true,
            _ => {} // includes GREASE (RFC 8701) and everything we do not need
        }
    }
    Ok(fields)
}

/// RFC 6066 §3 `ServerNameList`: counts every entry, keeps the first `host_name`.
fn parse_server_name<'b>(data: &'b [u8], fields: &mut Fields<'b>) -> Result<(), HelloError> {
    let mut r = Reader(data);
    let mut list = Reader(r.vec_u16().ok_or(HelloError::BadLength)?);
    if !r.0.is_empty() {
        return Err(HelloError::BadLength);
    }
    if list.0.is_empty() {
        return Err(HelloError::Malformed("empty server_name list"));
    }
    while !list.0.is_empty() {
        let kind = list.u8().ok_or(HelloError::BadLength)?;
        let name = list.vec_u16().ok_or(HelloError::BadLength)?;
        fields.server_name_count += 1;
        if kind == SNI_HOST_NAME && fields.server_name.is_none() {
            if name.is_empty() {
                return Err(HelloError::Malformed("empty host_name"));
            }
            let name = std::str::from_utf8(name)
                .map_err(|_| HelloError::Malformed("host_name is not UTF-8"))?;
            fields.server_name = Some(name);
        }
    }
    Ok(())
}

/// RFC 7301 §3.1 `ProtocolNameList`: non-empty list of non-empty names; returns the list body.
fn parse_alpn(data: &[u8]) -> Result<&[u8], HelloError> {
    let mut r = Reader(data);
    let list = r.vec_u16().ok_or(HelloError::BadLength)?;
    if !r.0.is_empty() {
        return Err(HelloError::BadLength);
    }
    if list.is_empty() {
        return Err(HelloError::Malformed("empty ALPN list"));
    }
    let mut names = Reader(list);
    while !names.0.is_empty() {
        if names.vec_u8().ok_or(HelloError::BadLength)?.is_empty() {
            return Err(HelloError::Malformed("empty ALPN protocol name"));
        }
    }
    Ok(list)
}

/// A cursor that answers `None` instead of reading past its end.
struct Reader<'b>(&'b [u8]);

impl<'b> Reader<'b> {
    fn take(&mut self, n: usize) -> Option<&'b [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    fn vec_u8(&mut self) -> Option<&'b [u8]> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }

    fn vec_u16(&mut self) -> Option<&'b [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}

#[cfg(test)]
mod tests;
