//! What a tenant is told: HTTP answers on proxy listeners, TLS alerts where the tenant speaks TLS.

use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::decide::DenyReason;

/// The answer that opens a tunnel.
pub const TUNNEL_ESTABLISHED: &[u8] = b"HTTP/1.1 200 Connection Established\r\n\r\n";

/// TLS alert descriptions we send (RFC 8446 §6).
#[derive(Debug, Clone, Copy)]
pub enum Alert {
    /// `access_denied` (49): policy refused the destination.
    AccessDenied = 49,
    /// `unrecognized_name` (112): no SNI to decide on.
    UnrecognizedName = 112,
    /// `internal_error` (80): the gateway could not reach the destination.
    InternalError = 80,
}

impl Alert {
    /// The alert that fits a deny reason.
    pub fn for_reason(reason: DenyReason) -> Self {
        match reason {
            DenyReason::MissingSni => Self::UnrecognizedName,
            DenyReason::DnsFailure
            | DenyReason::UpstreamUnreachable
            | DenyReason::UpstreamTimeout => Self::InternalError,
            _ => Self::AccessDenied,
        }
    }

    /// A fatal alert record (TLS 1.2 record version, as servers send before a version is agreed).
    pub fn record(self) -> [u8; 7] {
        [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, self as u8]
    }
}

/// Writes a fatal TLS alert and shuts the write half; errors are ignored (the peer may be gone).
pub async fn send_alert<W: AsyncWrite + Unpin>(io: &mut W, alert: Alert) {
    let _ = io.write_all(&alert.record()).await;
    let _ = io.shutdown().await;
}

/// Writes an HTTP/1.1 error answer carrying the deny reason, then closes the write half.
pub async fn send_http_deny<W: AsyncWrite + Unpin>(io: &mut W, status: u16, reason: DenyReason) {
    let body = format!("egress-gateway: denied: {}\n", reason.as_str());
    let head = format!(
        "HTTP/1.1 {status} {}\r\nX-Egress-Deny-Reason: {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        status_text(status),
        reason.as_str(),
        body.len()
    );
    let _ = io.write_all(head.as_bytes()).await;
    let _ = io.write_all(body.as_bytes()).await;
    let _ = io.shutdown().await;
}

/// Writes an HTTP/1.1 error answer that is not a policy decision (e.g. 405).
pub async fn send_http_status<W: AsyncWrite + Unpin>(io: &mut W, status: u16, extra_headers: &str) {
    let body = format!("egress-gateway: {}\n", status_text(status));
    let head = format!(
        "HTTP/1.1 {status} {}\r\n{extra_headers}Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        status_text(status),
        body.len()
    );
    let _ = io.write_all(head.as_bytes()).await;
    let _ = io.write_all(body.as_bytes()).await;
    let _ = io.shutdown().await;
}

fn status_text(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        403 => "Forbidden",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    }
}
