//! What a tenant is told: HTTP answers on proxy listeners, TLS alerts where the tenant speaks TLS.

use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::plan::{Alert, DenyReason, Refusal};

/// The answer that opens a tunnel.
pub const TUNNEL_ESTABLISHED: &[u8] = b"HTTP/1.1 200 Connection Established\r\n\r\n";

/// Writes a fatal TLS alert and shuts the write half; errors are ignored (the peer may be gone).
pub async fn send_alert<W: AsyncWrite + Unpin>(io: &mut W, alert: Alert) {
    let _ = io.write_all(&alert.record()).await;
    let _ = io.shutdown().await;
}

/// Tells the tenant a refusal the plan chose: an HTTP answer or a TLS alert, then close.
pub async fn send_refusal<W: AsyncWrite + Unpin>(io: &mut W, refusal: Refusal, reason: DenyReason) {
    match refusal {
        Refusal::Status(status) => send_http_deny(io, status, reason).await,
        Refusal::Alert(alert) => send_alert(io, alert).await,
    }
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
