//! Parsing an HTTP/1.1 proxy request head (`CONNECT host:port HTTP/1.1` and its headers).
//!
//! Pure and total over `&[u8]`: answers "need more", a parsed request, or a precise refusal.
//! It never allocates per byte and never panics; a fuzz target runs it on arbitrary input.
//! It knows nothing about tenants or policy.

use crate::names::{Host, NameError, Target};

/// Most headers accepted in one request head.
const MAX_HEADERS: usize = 64;

/// A complete request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyRequest {
    /// `CONNECT authority`: open a tunnel to `target`.
    Connect {
        /// Where the tunnel goes, normalised.
        target: Target,
        /// Bytes of `buf` the head occupies; anything after it is early tunnel data.
        head_len: usize,
    },
    /// Any other method: an absolute-form `http://` request is proxied by the HTTP front end;
    /// anything else gets `405`.
    Other {
        /// Bytes of `buf` the head occupies.
        head_len: usize,
        /// The request target is an absolute `http://` URI (a forward-proxy request).
        absolute_http: bool,
    },
}

/// Why a request head is refused; each maps to a status code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// The head grew past `max_request_head_bytes` (or has too many headers).
    #[error("request head larger than the limit")]
    TooLarge,
    /// Not a well-formed HTTP/1.x request head.
    #[error("malformed request head: {0}")]
    Malformed(&'static str),
    /// The CONNECT authority lacks `:port`.
    #[error("CONNECT target has no port")]
    MissingPort,
    /// The port is not a number in 1–65535.
    #[error("CONNECT port is not in 1-65535")]
    BadPort,
    /// The host is not a valid DNS name or IP literal.
    #[error("CONNECT host is invalid: {0}")]
    BadHost(NameError),
}

impl HeadError {
    /// The HTTP status for this refusal.
    pub const fn status(&self) -> u16 {
        match self {
            Self::TooLarge => 431,
            _ => 400,
        }
    }
}

/// Parses `buf`; `Ok(None)` means the head is incomplete and below `max_bytes`.
pub fn parse(buf: &[u8], max_bytes: usize) -> Result<Option<ProxyRequest>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let head_len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len > max_bytes => return Err(HeadError::TooLarge),
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= max_bytes => return Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(err) => return Err(HeadError::Malformed(parse_error_name(err))),
    };
    let method = request.method.unwrap_or_default();
    if !method.eq_ignore_ascii_case("CONNECT") {
        let path = request.path.unwrap_or_default().as_bytes();
        let absolute_http = path.len() > 7 && path[..7].eq_ignore_ascii_case(b"http://");
        return Ok(Some(ProxyRequest::Other {
            head_len,
            absolute_http,
        }));
    }
    let authority = request.path.unwrap_or_default();
    let target = parse_authority(authority)?;
    Ok(Some(ProxyRequest::Connect { target, head_len }))
}

/// `host:port`, `[v6]:port`; no userinfo, no path. Brackets hold exactly an IPv6 address
/// (RFC 3986 §3.2.2) and an IPv6 address needs them: `::1:443` could be `[::1]:443` or
/// `[::1:443]` with the port missing, and `[name]` is not a host, so both are malformed.
pub fn parse_authority(authority: &str) -> Result<Target, HeadError> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (v6, after) = rest
            .split_once(']')
            .ok_or(HeadError::Malformed("unclosed IPv6 literal"))?;
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(HeadError::Malformed(
                "brackets hold something other than IPv6",
            ));
        }
        let port = after.strip_prefix(':').ok_or(HeadError::MissingPort)?;
        (v6, port)
    } else {
        let (host, port) = authority.rsplit_once(':').ok_or(HeadError::MissingPort)?;
        if host.contains(':') {
            return Err(HeadError::Malformed("IPv6 literal without brackets"));
        }
        (host, port)
    };
    if port.is_empty() {
        return Err(HeadError::MissingPort);
    }
    if !port.bytes().all(|b| b.is_ascii_digit()) || port.len() > 5 {
        return Err(HeadError::BadPort);
    }
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or(HeadError::BadPort)?;
    let host = Host::parse(host).map_err(HeadError::BadHost)?;
    Ok(Target { host, port })
}

fn parse_error_name(err: httparse::Error) -> &'static str {
    match err {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status",
        httparse::Error::Token => "invalid method or token",
        httparse::Error::TooManyHeaders => "too many headers",
        httparse::Error::Version => "invalid HTTP version",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(raw: &str) -> Result<Option<ProxyRequest>, HeadError> {
        parse(raw.as_bytes(), 16384)
    }

    #[test]
    fn parses_connect_with_early_data() {
        let raw = "CONNECT API.example.com.:443 HTTP/1.1\r\nHost: x\r\n\r\nEARLY";
        let Ok(Some(ProxyRequest::Connect { target, head_len })) = connect(raw) else {
            panic!("expected CONNECT");
        };
        assert_eq!(target.to_string(), "api.example.com:443");
        assert_eq!(&raw[head_len..], "EARLY");
    }

    #[test]
    fn incomplete_heads_need_more_until_the_limit() {
        assert_eq!(connect("CONNECT a.example:443 HTTP/1.1\r\n"), Ok(None));
        let big = format!("CONNECT a:1 HTTP/1.1\r\nX: {}", "a".repeat(100));
        assert_eq!(parse(big.as_bytes(), 64), Err(HeadError::TooLarge));
    }

    #[test]
    fn bad_targets_are_refused_precisely() {
        let cases = [
            (
                "CONNECT example.com HTTP/1.1\r\n\r\n",
                HeadError::MissingPort,
            ),
            (
                "CONNECT example.com: HTTP/1.1\r\n\r\n",
                HeadError::MissingPort,
            ),
            ("CONNECT example.com:0 HTTP/1.1\r\n\r\n", HeadError::BadPort),
            (
                "CONNECT example.com:70000 HTTP/1.1\r\n\r\n",
                HeadError::BadPort,
            ),
            (
                "CONNECT example.com:+80 HTTP/1.1\r\n\r\n",
                HeadError::BadPort,
            ),
            (
                "CONNECT [::1 HTTP/1.1\r\n\r\n",
                HeadError::Malformed("unclosed IPv6 literal"),
            ),
            (
                "CONNECT a..b:1 HTTP/1.1\r\n\r\n",
                HeadError::BadHost(NameError::BadLabel),
            ),
            (
                "CONNECT ::1:443 HTTP/1.1\r\n\r\n",
                HeadError::Malformed("IPv6 literal without brackets"),
            ),
            (
                "CONNECT [a.example]:443 HTTP/1.1\r\n\r\n",
                HeadError::Malformed("brackets hold something other than IPv6"),
            ),
            (
                "CONNECT [127.0.0.1]:443 HTTP/1.1\r\n\r\n",
                HeadError::Malformed("brackets hold something other than IPv6"),
            ),
        ];
        for (raw, expected) in cases {
            assert_eq!(connect(raw), Err(expected), "{raw:?}");
        }
        assert!(matches!(
            connect("\x16\x03\x01garbage\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
    }

    #[test]
    fn ipv6_literals_and_other_methods() {
        let Ok(Some(ProxyRequest::Connect { target, .. })) =
            connect("CONNECT [::1]:8443 HTTP/1.1\r\n\r\n")
        else {
            panic!("expected CONNECT");
        };
        assert_eq!(target.to_string(), "[::1]:8443");
        assert!(matches!(
            connect("GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n"),
            Ok(Some(ProxyRequest::Other {
                absolute_http: true,
                ..
            }))
        ));
        assert!(matches!(
            connect("GET / HTTP/1.1\r\nHost: a.example\r\n\r\n"),
            Ok(Some(ProxyRequest::Other {
                absolute_http: false,
                ..
            }))
        ));
    }
}
