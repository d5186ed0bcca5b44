//! What every attack checks after it ran: one new access-log line with the expected listener,
//! namespace, decision and reason, the matching `egress_connections_total` series one higher,
//! and nothing leaked (see `baseline`).

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::baseline::Baseline;
use crate::common::{connect_from, Gateway, WAIT};

/// The outcome an attack must produce.
#[derive(Debug, Clone, Copy)]
pub struct Outcome<'a> {
    /// `listener` label and log field.
    pub listener: &'a str,
    /// `namespace` label and log field.
    pub namespace: &'a str,
    /// `allow`, `deny` or `audit`.
    pub decision: &'a str,
    /// Deny reason, or `none`.
    pub reason: &'a str,
}

impl<'a> Outcome<'a> {
    /// A deny of `reason` for `namespace` on `listener`.
    pub const fn deny(listener: &'a str, namespace: &'a str, reason: &'a str) -> Self {
        Self {
            listener,
            namespace,
            decision: "deny",
            reason,
        }
    }

    /// An allowed connection of `namespace` on `listener`.
    pub const fn allow(listener: &'a str, namespace: &'a str) -> Self {
        Self {
            listener,
            namespace,
            decision: "allow",
            reason: "none",
        }
    }

    fn labels(&self) -> [(&'a str, &'a str); 4] {
        [
            ("namespace", self.namespace),
            ("listener", self.listener),
            ("decision", self.decision),
            ("reason", self.reason),
        ]
    }
}

/// The state before one attack: log lines and the counter it must move.
pub struct Probe<'a> {
    outcome: Outcome<'a>,
    lines: usize,
    counted: f64,
    baseline: Baseline,
}

impl<'a> Probe<'a> {
    /// Notes the access log, the counter for `outcome` and the baseline before an attack.
    pub fn before(gw: &Gateway, outcome: Outcome<'a>) -> Self {
        Self {
            outcome,
            lines: gw.access_log().len(),
            counted: gw
                .metric("egress_connections_total", &outcome.labels())
                .unwrap_or(0.0),
            baseline: Baseline::take(gw),
        }
    }

    /// Checks the attack's access-log line and counter, then that nothing leaked; returns the
    /// line.
    pub fn confirm(&self, gw: &Gateway, what: &str) -> Value {
        let want = self.outcome;
        let lines = gw.wait_access_logs(self.lines + 1, |_| true);
        let line = lines[self.lines].clone();
        for (field, value) in [
            ("listener", want.listener),
            ("namespace", want.namespace),
            ("decision", want.decision),
        ] {
            assert_eq!(line[field], value, "{what}: access log {field}: {line}");
        }
        let reason = line["reason"].as_str().unwrap_or("none");
        assert_eq!(reason, want.reason, "{what}: access log reason: {line}");
        let counted = self.counted;
        gw.wait_metric("egress_connections_total", &want.labels(), |v| {
            v == counted + 1.0
        });
        self.baseline.settle(gw, what);
        let all = gw.access_log();
        assert_eq!(
            all.len(),
            self.lines + 1,
            "{what}: exactly one access-log line: {:?}",
            &all[self.lines..]
        );
        line
    }
}

impl Probe<'_> {
    /// Checks an attack refused below the planner (the protocol library reset it, so no
    /// request was ever planned): nothing leaked, no access-log line, the counter unmoved.
    pub fn confirm_unlogged(&self, gw: &Gateway, what: &str) {
        self.baseline.settle(gw, what);
        let all = gw.access_log();
        assert_eq!(
            all.len(),
            self.lines,
            "{what}: no request was planned: {:?}",
            &all[self.lines..]
        );
        let counted = gw
            .metric("egress_connections_total", &self.outcome.labels())
            .unwrap_or(0.0);
        assert_eq!(counted, self.counted, "{what}: counter unmoved");
    }
}

/// Sends `bytes` from tenant address `from` to `to` and reads what comes back until the gateway
/// closes (bounded by [`WAIT`]).
pub async fn raw_exchange(from: &str, to: std::net::SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = connect_from(from, to).await;
    let _ = stream.write_all(bytes).await;
    read_to_close(&mut stream).await
}

/// Reads until EOF or reset, failing the test if the gateway keeps the connection open past
/// [`WAIT`].
pub async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let reading = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(WAIT, reading)
        .await
        .expect("the gateway closes the connection in time");
    got
}

/// The status code of an HTTP answer (0 when there is none).
pub fn status_of(answer: &[u8]) -> u16 {
    String::from_utf8_lossy(answer)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The `X-Egress-Deny-Reason` of an HTTP answer, matched case-insensitively.
pub fn deny_header(answer: &[u8]) -> Option<String> {
    String::from_utf8_lossy(answer).lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("x-egress-deny-reason")
            .then(|| value.trim().to_owned())
    })
}

/// Polls `ok` every 20 ms until it holds, failing with `what` after `within`.
pub async fn eventually(what: &str, within: Duration, ok: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !ok() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
