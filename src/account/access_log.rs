//! The access log (SPEC §7): one JSON object per connection on stdout, written at close.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use std::time::SystemTime;

use serde::Serialize;

/// One access-log line; field names are the contract.
#[derive(Debug, Clone, Serialize)]
pub struct AccessLogLine<'a> {
    /// RFC 3339 time the connection ended.
    pub ts: String,
    /// Listener that accepted the connection.
    pub listener: &'a str,
    /// Tenant namespace, or `unknown`.
    pub namespace: &'a str,
    /// SPIFFE ID or source address the tenant was identified by.
    pub identity: &'a str,
    /// Peer address.
    pub src: SocketAddr,
    /// Requested host (as normalised), if one was read.
    pub host: Option<&'a str>,
    /// Requested port.
    pub port: Option<u16>,
    /// ClientHello SNI, if one was read.
    pub sni: Option<&'a str>,
    /// `allow`, `deny` or `audit`.
    pub decision: &'a str,
    /// Deny reason, or `none`.
    pub reason: &'a str,
    /// `namespace/name` of the allowing ServiceEntry.
    pub service_entry: Option<&'a str>,
    /// Address dialled: the destination's, or the parent proxy's when there is one.
    pub upstream: Option<SocketAddr>,
    /// The parent proxy (`host:port` as configured) the destination was reached through.
    pub parent: Option<&'a str>,
    /// Bytes tenant → world.
    pub bytes_egress: u64,
    /// Bytes world → tenant.
    pub bytes_ingress: u64,
    /// Connection lifetime in milliseconds.
    pub duration_ms: u64,
    /// Whether the ClientHello carried an encrypted_client_hello extension.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ech: bool,
}

/// How often queued lines are written out.
const WRITE_EVERY: Duration = Duration::from_millis(25);

/// Lines queued for stdout, and the lock that keeps batches in order.
#[derive(Default)]
struct Queue {
    pending: Mutex<Vec<u8>>,
    output: Mutex<()>,
}

impl Queue {
    /// Writes everything queued so far, in order; a closed stdout must not take the gateway down.
    fn drain(&self) {
        let _in_order = self.output.lock().unwrap_or_else(|e| e.into_inner());
        let batch = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        if !batch.is_empty() {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&batch);
            let _ = out.flush();
        }
    }
}

/// Writes access-log lines to stdout in batches from its own thread: a connection only appends
/// to a buffer (no syscall, no thread wake-up), and a burst of closes becomes one write.
pub struct AccessLog {
    queue: Arc<Queue>,
}

impl AccessLog {
    /// Starts the writer thread on stdout.
    pub fn stdout() -> Self {
        let queue = Arc::new(Queue::default());
        let writer = queue.clone();
        let spawned = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || loop {
                std::thread::sleep(WRITE_EVERY);
                writer.drain();
            });
        if let Err(err) = spawned {
            tracing::error!(error = %err, "cannot start the access-log writer");
        }
        Self { queue }
    }

    /// Queues one line.
    pub fn write(&self, line: &AccessLogLine<'_>) {
        if let Ok(mut json) = serde_json::to_vec(line) {
            json.push(b'\n');
            self.queue
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(&json);
        }
    }

    /// Writes every line queued so far (at shutdown).
    pub fn flush(&self) {
        self.queue.drain();
    }
}

/// Formats a time as RFC 3339 UTC with millisecond precision.
pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_rfc3339() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_849_445_123);
        assert_eq!(rfc3339(t), "2026-11-28T07:04:05.123Z");
    }
}
