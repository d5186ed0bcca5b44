//! One access-log line (docs/access-log.md) read back: only the fields replay and suggest use,
//! borrowed from the line where no JSON escape forces a copy. A line that is not one JSON object
//! with a valid `ts` is an error the caller counts, never a panic.

use std::borrow::Cow;
use std::time::SystemTime;

use serde::Deserialize;

use crate::config::serviceentry::annotations::unprintable;

/// The fields of an access-log line that describe the flow and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine<'a> {
    /// When the connection ended.
    pub ts: SystemTime,
    /// `connect`, `connect_tls`, `sni` or `http` (not checked here).
    pub listener: Cow<'a, str>,
    /// Tenant namespace, or `unknown`.
    pub namespace: Cow<'a, str>,
    /// Destination host as the gateway normalised it, when it read one.
    pub host: Option<Cow<'a, str>>,
    /// Destination port, when it read one.
    pub port: Option<u16>,
    /// ClientHello SNI, when the gateway read one.
    pub sni: Option<Cow<'a, str>>,
    /// `allow`, `deny` or `audit`.
    pub decision: Cow<'a, str>,
    /// Deny reason, or `none`.
    pub reason: Cow<'a, str>,
    /// `namespace/name` of the entry that matched.
    pub service_entry: Option<Cow<'a, str>>,
}

/// The wire shape; every other field of the line is ignored.
#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow)]
    ts: Cow<'a, str>,
    #[serde(borrow)]
    listener: Cow<'a, str>,
    #[serde(borrow)]
    namespace: Cow<'a, str>,
    #[serde(borrow, default)]
    host: Option<Cow<'a, str>>,
    #[serde(default)]
    port: Option<u16>,
    #[serde(borrow, default)]
    sni: Option<Cow<'a, str>>,
    #[serde(borrow)]
    decision: Cow<'a, str>,
    #[serde(borrow)]
    reason: Cow<'a, str>,
    #[serde(borrow, default)]
    service_entry: Option<Cow<'a, str>>,
}

/// Parses one line (without its newline); the error says why in a few words.
pub fn parse(line: &[u8]) -> Result<LogLine<'_>, String> {
    let wire: Wire<'_> =
        serde_json::from_slice(line).map_err(|e| format!("not a log line: {e}"))?;
    let ts = humantime::parse_rfc3339_weak(&wire.ts)
        .map_err(|e| format!("bad ts {:?}: {e}", printable(&wire.ts, 64)))?;
    Ok(LogLine {
        ts,
        listener: wire.listener,
        namespace: wire.namespace,
        host: wire.host,
        port: wire.port,
        sni: wire.sni,
        decision: wire.decision,
        reason: wire.reason,
        service_entry: wire.service_entry,
    })
}

/// `text` cut to `max` characters with every control character replaced, safe for one line of a
/// diagnostic, a Markdown cell or a YAML comment.
pub fn printable(text: &str, max: usize) -> String {
    text.chars()
        .take(max)
        .map(|c| if unprintable(c) { '?' } else { c })
        .collect()
}

/// What the `access_log_line` fuzz target runs: any bytes parse or fail without panicking, and a
/// parsed line keeps a timestamp that prints and parses back to the same time.
pub fn fuzz_one(data: &[u8]) {
    if let Ok(line) = parse(data) {
        let printed = humantime::format_rfc3339_nanos(line.ts).to_string();
        assert_eq!(humantime::parse_rfc3339_weak(&printed).ok(), Some(line.ts));
        assert!(printable(&line.namespace, 64)
            .chars()
            .all(|c| !c.is_control()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gateway_line_parses_and_other_fields_are_ignored() {
        let line = br#"{"ts":"2026-12-07T12:00:02.001Z","listener":"connect","namespace":"app2","identity":"10.2.0.9","src":"10.2.0.9:40110","host":"evil.example","port":443,"sni":null,"decision":"deny","reason":"not_allowlisted","service_entry":null,"upstream":null,"parent":null,"bytes_egress":0,"bytes_ingress":0,"duration_ms":0}"#;
        let parsed = parse(line).expect("parses");
        assert_eq!(parsed.host.as_deref(), Some("evil.example"));
        assert_eq!(parsed.port, Some(443));
        assert_eq!(parsed.sni, None);
        assert_eq!(parsed.reason, "not_allowlisted");
    }

    #[test]
    fn broken_lines_are_errors_and_the_fuzz_harness_takes_anything() {
        for bad in [
            &b""[..],
            b"{",
            b"[1]",
            b"\xff\xfe{}",
            br#"{"ts":"yesterday","listener":"connect","namespace":"a","decision":"deny","reason":"x"}"#,
            br#"{"ts":"2026-12-07T12:00:02Z","listener":"connect","namespace":"a","port":70000,"decision":"deny","reason":"x"}"#,
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
            fuzz_one(bad);
        }
        fuzz_one(br#"{"ts":"2026-12-07T12:00:02Z","listener":"c","namespace":"a\n","decision":"d","reason":"r"}"#);
        assert_eq!(printable("a\nb\u{7}cd", 5), "a?b?c");
    }
}
