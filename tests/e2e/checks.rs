//! Checks: every failure is collected, the test fails at the end listing all of them; and the
//! helpers the checks read with (access-log expectations, JSON-lines logs, forbidden upstreams).

use serde_json::Value;

use crate::harness::Gateway;
use crate::Pod;

#[derive(Default)]
pub struct Checks {
    pub failed: Vec<String>,
    pub passed: usize,
}

impl Checks {
    pub fn check(&mut self, ok: bool, what: impl FnOnce() -> String) -> bool {
        if ok {
            self.passed += 1;
        } else {
            let what = what();
            eprintln!("e2e: FAILED: {what}");
            self.failed.push(what);
        }
        ok
    }

    /// Waits for the access-log line of the connection just made from `pod` to `host` (at index
    /// `from` or later) and checks its fields against `expect` (`null` for absent).
    pub fn access(
        &mut self,
        gw: &Gateway,
        from: usize,
        pod: Pod,
        host: &str,
        expect: &[(&str, Value)],
    ) {
        let src_prefix = format!("{}:", pod.addr);
        let line = gw.access_after(from, |v| {
            v["host"] == host
                && v["src"]
                    .as_str()
                    .is_some_and(|s| s.starts_with(&src_prefix))
        });
        let Some(line) = line else {
            self.check(false, || {
                format!(
                    "[{}] no access-log line for {host} from {}; lines since #{from}:\n{}",
                    gw.name,
                    pod.addr,
                    gw.stdout.snapshot()[from.min(gw.mark())..].join("\n")
                )
            });
            return;
        };
        self.fields(&line, expect, || {
            format!("[{}] access log for {host} from {}", gw.name, pod.addr)
        });
    }

    /// Checks an access-log line's fields against `expect`; `what` names the line in a failure.
    pub fn fields(
        &mut self,
        line: &Value,
        expect: &[(&str, Value)],
        what: impl FnOnce() -> String,
    ) {
        let wrong: Vec<String> = expect
            .iter()
            .filter(|(key, value)| &line[*key] != value)
            .map(|(key, value)| format!("{key}: want {value}, got {}", line[*key]))
            .collect();
        self.check(wrong.is_empty(), || {
            format!("{}: {}\n  line: {line}", what(), wrong.join("; "))
        });
    }
}

pub fn s(v: &str) -> Value {
    Value::from(v)
}

pub fn read_jsonl(path: &str) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

pub fn is_forbidden_upstream(upstream: &str) -> bool {
    let ip = upstream
        .rsplit_once(':')
        .map_or(upstream, |(ip, _)| ip)
        .trim_matches(['[', ']']);
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => {
            v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified()
        }
        Ok(std::net::IpAddr::V6(v6)) => {
            v6.to_ipv4_mapped().is_some() || v6.is_loopback() || v6.is_unspecified()
        }
        Err(_) => true,
    }
}
