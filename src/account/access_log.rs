//! The access log (docs/access-log.md): one JSON object per connection on stdout, written at close, through
//! a bounded buffer so that a stdout nobody reads never holds up a connection.

use std::io::Write;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;
use std::time::SystemTime;

use metrics::{counter, Counter};
use serde::Serialize;

use super::metrics::ACCESS_LOG_DROPPED;

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
    /// That entry's `egress-gateway.io/owner`: who to ask about the flow.
    pub owner: Option<&'a str>,
    /// That entry's `egress-gateway.io/ticket`: why the flow is allowed.
    pub ticket: Option<&'a str>,
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
/// How long the final flush at shutdown waits for stdout before giving up on the last lines.
const FLUSH_WAIT: Duration = Duration::from_secs(2);

/// Lines waiting for the writer thread.
#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    lines: usize,
}

/// The bounded queue between connections and the writer thread.
struct Queue {
    pending: Mutex<Pending>,
    /// Most lines queued at once; a line beyond it is dropped and counted.
    limit: usize,
    dropped: Counter,
}

impl Queue {
    /// Writes everything queued so far; a closed stdout must not take the gateway down. Only the
    /// writer thread calls this, so a stdout that blocks stalls that thread and nothing else.
    fn drain(&self) {
        let batch = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        if !batch.bytes.is_empty() {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&batch.bytes);
            let _ = out.flush();
        }
    }
}

/// Writes access-log lines to stdout in batches from its own thread: a connection only appends
/// to a bounded buffer (no syscall, no thread wake-up, never a wait on stdout), and a burst of
/// closes becomes one write. When stdout stops taking lines and the buffer is full, new lines are
/// dropped and counted in `egress_access_log_dropped_total`.
pub struct AccessLog {
    queue: Arc<Queue>,
    flushes: Option<mpsc::Sender<mpsc::Sender<()>>>,
}

impl AccessLog {
    /// Starts the writer thread on stdout, buffering at most `buffer_lines` lines.
    pub fn stdout(buffer_lines: NonZeroUsize) -> Self {
        let queue = Arc::new(Queue {
            pending: Mutex::default(),
            limit: buffer_lines.get(),
            dropped: counter!(ACCESS_LOG_DROPPED),
        });
        let writer = queue.clone();
        let (flushes, requests) = mpsc::channel::<mpsc::Sender<()>>();
        let spawned = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || loop {
                let request = requests.recv_timeout(WRITE_EVERY);
                writer.drain();
                match request {
                    Ok(done) => {
                        let _ = done.send(());
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
            });
        let flushes = match spawned {
            Ok(_) => Some(flushes),
            Err(err) => {
                tracing::error!(error = %err, "cannot start the access-log writer");
                None
            }
        };
        Self { queue, flushes }
    }

    /// Queues one line, or drops and counts it when the buffer is full.
    pub fn write(&self, line: &AccessLogLine<'_>) {
        let Ok(mut json) = serde_json::to_vec(line) else {
            return;
        };
        json.push(b'\n');
        let mut pending = self.queue.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.lines >= self.queue.limit {
            drop(pending);
            self.queue.dropped.increment(1);
            return;
        }
        pending.lines += 1;
        pending.bytes.extend_from_slice(&json);
    }

    /// Writes every line queued so far (at shutdown), waiting at most a bounded time for a
    /// stdout that does not take them.
    pub fn flush(&self) {
        let Some(flushes) = &self.flushes else {
            return;
        };
        let (done, finished) = mpsc::channel();
        if flushes.send(done).is_err() || finished.recv_timeout(FLUSH_WAIT).is_err() {
            let lines = self.queue.pending.lock().map_or(0, |p| p.lines);
            tracing::warn!(
                lines,
                "stdout does not take the access log: its last lines are not written"
            );
        }
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
