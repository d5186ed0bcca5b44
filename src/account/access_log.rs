//! The access log (SPEC §7): one JSON object per connection on stdout, written at close.

use std::io::Write;
use std::net::SocketAddr;
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
    /// Address dialled.
    pub upstream: Option<SocketAddr>,
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

/// What the writer thread is asked to do.
enum Message {
    Line(Vec<u8>),
    Flush(std::sync::mpsc::Sender<()>),
}

/// Writes access-log lines to stdout from its own thread, batching writes: a connection never
/// waits on stdout, and a burst of closes becomes a few large writes instead of one per line.
pub struct AccessLog {
    sender: std::sync::mpsc::Sender<Message>,
}

impl AccessLog {
    /// Starts the writer thread on stdout.
    pub fn stdout() -> Self {
        let (sender, receiver) = std::sync::mpsc::channel::<Message>();
        let spawned = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout());
                while let Ok(message) = receiver.recv() {
                    let mut pending = Some(message);
                    while let Some(message) = pending.take() {
                        match message {
                            Message::Line(line) => {
                                let _ = out.write_all(&line);
                            }
                            Message::Flush(done) => {
                                let _ = out.flush();
                                let _ = done.send(());
                            }
                        }
                        pending = receiver.try_recv().ok();
                    }
                    // A closed stdout must not take the gateway down.
                    let _ = out.flush();
                }
            });
        if let Err(err) = spawned {
            tracing::error!(error = %err, "cannot start the access-log writer");
        }
        Self { sender }
    }

    /// Queues one line.
    pub fn write(&self, line: &AccessLogLine<'_>) {
        if let Ok(mut json) = serde_json::to_vec(line) {
            json.push(b'\n');
            let _ = self.sender.send(Message::Line(json));
        }
    }

    /// Waits until every line queued so far is written (at shutdown).
    pub fn flush(&self) {
        let (done, wait) = std::sync::mpsc::channel();
        if self.sender.send(Message::Flush(done)).is_ok() {
            let _ = wait.recv_timeout(std::time::Duration::from_secs(5));
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
