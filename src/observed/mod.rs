//! What the gateway's own access log says was asked for: every distinct flow (namespace,
//! listener, host, port, SNI) with how often and when it was seen and what it got, read from any
//! number of plain or gzip files in a stream. Memory grows with distinct flows, never with lines,
//! and distinct flows are capped at [`MAX_FLOWS`]: tenants choose the names they ask for, so a
//! tenant spraying random names must not make the platform's review pipeline run out of memory.
//! A malformed or over-long line, or one of a flow beyond the cap, is counted and reported with
//! its file and line, never fatal.
//! `plan --access-log` (replay) and `suggest` read the log through here.

pub mod line;
pub mod reader;
pub mod verdict;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::names::Namespace;
use reader::Line;

/// Longest line read; the gateway's own lines are far shorter (hosts are at most 253 bytes).
pub const MAX_LINE: usize = 16 * 1024;

/// Most distinct flows kept (about 250 MB with everyday names, at most about 1 GB when every
/// name is as long as a name can be); lines of further new flows are counted, not kept.
pub const MAX_FLOWS: usize = 1_000_000;

/// The longest DNS name; a longer host or SNI names nothing and is not kept.
const MAX_NAME: usize = 253;

/// Most problems quoted by file and line; the rest are only counted.
const MAX_EXAMPLES: usize = 20;

/// One distinct flow: what a tenant asked for, on which listener.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Flow {
    /// Tenant namespace as logged.
    pub namespace: Box<str>,
    /// Listener as logged.
    pub listener: Box<str>,
    /// Destination host as logged.
    pub host: Box<str>,
    /// Destination port.
    pub port: u16,
    /// ClientHello SNI, when one was read.
    pub sni: Option<Box<str>>,
}

/// How often and when a flow was seen, and what it got the last time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Lines naming the flow.
    pub count: u64,
    /// Earliest `ts`.
    pub first: SystemTime,
    /// Latest `ts`.
    pub last: SystemTime,
    /// `decision` of the latest line.
    pub decision: Box<str>,
    /// `reason` of the latest line.
    pub reason: Box<str>,
}

/// Counts of what was read and skipped, and the first few problems by file and line.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostics {
    /// Lines read, good or not.
    pub lines: u64,
    /// Lines that are not access-log JSON (invalid UTF-8 included).
    pub malformed: u64,
    /// Lines over the length bound.
    pub too_long: u64,
    /// Lines of an `unknown` or invalid namespace, without a host or port, or with a host or
    /// SNI longer than a DNS name.
    pub skipped: u64,
    /// Files that could not be read to their end.
    pub unreadable: u64,
    /// Lines of new flows once the cap ([`MAX_FLOWS`]) of distinct flows was reached.
    pub beyond_flow_cap: u64,
    /// `FILE:LINE: problem`, for the first problems found.
    pub examples: Vec<String>,
}

impl Diagnostics {
    fn note(&mut self, file: &Path, line: u64, problem: &str) {
        if self.examples.len() < MAX_EXAMPLES {
            self.examples
                .push(format!("{}:{line}: {problem}", file.display()));
        }
    }
}

/// Everything read from the logs.
#[derive(Debug, Default)]
pub struct Observed {
    /// Distinct flows.
    pub flows: HashMap<Flow, Seen>,
    /// `namespace/name` of every entry that allowed a connection (`allow` lines).
    pub entries_used: BTreeSet<Box<str>>,
    /// What was read and skipped.
    pub diagnostics: Diagnostics,
    /// Most distinct flows kept.
    flow_cap: usize,
}

impl Observed {
    /// Reads every file in turn (order does not matter: first and last seen are by `ts`). An
    /// unreadable file is counted and reported, and the others are still read.
    pub fn read(files: &[PathBuf]) -> Self {
        Self::read_capped(files, MAX_FLOWS)
    }

    /// [`Observed::read`], keeping at most `flow_cap` distinct flows.
    pub fn read_capped(files: &[PathBuf], flow_cap: usize) -> Self {
        let mut observed = Self {
            flow_cap,
            ..Self::default()
        };
        for file in files {
            observed.read_file(file);
        }
        observed
    }

    /// Flows sorted by key, for output that does not depend on hashing.
    pub fn sorted(&self) -> Vec<(&Flow, &Seen)> {
        let mut flows: Vec<_> = self.flows.iter().collect();
        flows.sort_by(|a, b| a.0.cmp(b.0));
        flows
    }

    fn read_file(&mut self, file: &Path) {
        let mut input = match reader::open(file) {
            Ok(input) => input,
            Err(err) => {
                self.diagnostics.unreadable += 1;
                self.diagnostics
                    .note(file, 0, &format!("cannot open: {err}"));
                return;
            }
        };
        let mut buffer = Vec::new();
        let mut number = 0;
        loop {
            let read = reader::next_line(input.as_mut(), &mut buffer, MAX_LINE);
            let kind = match read {
                Ok(Some(kind)) => kind,
                Ok(None) => return,
                Err(err) => {
                    self.diagnostics.unreadable += 1;
                    let problem = format!("cannot read further: {err}");
                    self.diagnostics.note(file, number + 1, &problem);
                    return;
                }
            };
            number += 1;
            self.diagnostics.lines += 1;
            if kind == Line::TooLong {
                self.diagnostics.too_long += 1;
                let problem = format!("line longer than {MAX_LINE} bytes skipped");
                self.diagnostics.note(file, number, &problem);
                continue;
            }
            if buffer.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match line::parse(&buffer) {
                Ok(parsed) => self.add(&parsed, file, number),
                Err(problem) => {
                    self.diagnostics.malformed += 1;
                    self.diagnostics.note(file, number, &problem);
                }
            }
        }
    }

    fn add(&mut self, parsed: &line::LogLine<'_>, file: &Path, number: u64) {
        let (Some(host), Some(port)) = (&parsed.host, parsed.port) else {
            self.diagnostics.skipped += 1;
            return;
        };
        if Namespace::parse(&parsed.namespace).is_err() || parsed.namespace == Namespace::UNKNOWN {
            self.diagnostics.skipped += 1;
            let problem = format!(
                "namespace {:?} names no tenant",
                line::printable(&parsed.namespace, 64)
            );
            self.diagnostics.note(file, number, &problem);
            return;
        }
        let too_long = |name: &str| name.len() > MAX_NAME;
        if too_long(host) || parsed.sni.as_deref().is_some_and(too_long) {
            self.diagnostics.skipped += 1;
            let problem = format!("host or SNI longer than {MAX_NAME} bytes: no such name");
            self.diagnostics.note(file, number, &problem);
            return;
        }
        if parsed.decision == "allow" {
            if let Some(entry) = &parsed.service_entry {
                if !self.entries_used.contains(entry.as_ref()) {
                    self.entries_used.insert(entry.as_ref().into());
                }
            }
        }
        let flow = Flow {
            namespace: parsed.namespace.as_ref().into(),
            listener: parsed.listener.as_ref().into(),
            host: host.as_ref().into(),
            port,
            sni: parsed.sni.as_deref().map(Into::into),
        };
        if self.flows.len() >= self.flow_cap && !self.flows.contains_key(&flow) {
            if self.diagnostics.beyond_flow_cap == 0 {
                let problem = format!(
                    "more than {} distinct flows: new ones from here on are counted, not read",
                    self.flow_cap
                );
                self.diagnostics.note(file, number, &problem);
            }
            self.diagnostics.beyond_flow_cap += 1;
            return;
        }
        let ts = parsed.ts;
        let seen = self.flows.entry(flow).or_insert_with(|| Seen {
            count: 0,
            first: ts,
            last: ts,
            decision: parsed.decision.as_ref().into(),
            reason: parsed.reason.as_ref().into(),
        });
        seen.count += 1;
        seen.first = seen.first.min(ts);
        if ts >= seen.last {
            seen.last = ts;
            if *seen.decision != *parsed.decision {
                seen.decision = parsed.decision.as_ref().into();
            }
            if *seen.reason != *parsed.reason {
                seen.reason = parsed.reason.as_ref().into();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_flows_beyond_the_cap_and_names_too_long_are_counted_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.jsonl");
        let line = |host: &str| {
            format!(
                "{{\"ts\":\"2026-12-07T12:00:01.234Z\",\"listener\":\"connect\",\"namespace\":\"app1\",\"host\":\"{host}\",\"port\":443,\"sni\":null,\"decision\":\"deny\",\"reason\":\"not_allowlisted\",\"service_entry\":null}}\n"
            )
        };
        let long = format!("{}.example", "a".repeat(250));
        let text: String = [
            "a.example",
            "b.example",
            "a.example",
            &long,
            "c.example",
            "d.example",
        ]
        .map(line)
        .concat();
        std::fs::write(&log, text).unwrap();
        let observed = Observed::read_capped(std::slice::from_ref(&log), 2);
        assert_eq!(observed.flows.len(), 2);
        assert_eq!(observed.diagnostics.beyond_flow_cap, 2);
        assert_eq!(observed.diagnostics.skipped, 1, "a host no DNS name can be");
        let counted: u64 = observed.flows.values().map(|seen| seen.count).sum();
        assert_eq!(counted, 3, "lines of kept flows still count");
        assert_eq!(
            observed.diagnostics.examples,
            [
                format!(
                    "{}:4: host or SNI longer than 253 bytes: no such name",
                    log.display()
                ),
                format!(
                    "{}:5: more than 2 distinct flows: new ones from here on are counted, not read",
                    log.display()
                )
            ]
        );
    }
}
