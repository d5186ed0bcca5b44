//! `check` and `explain`: the offline commands, on exactly the load/compile/decide path `run` uses.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::app;
use crate::config::serviceentry::ServiceEntry;
use crate::config::LoadedConfig;
use crate::decide::{DialTarget, Inspection, Verdict};
use crate::names::{Host, Hostname, Namespace, Target};

/// Validates `dir`; prints the summary (stdout) or every problem (stderr). Returns the exit code.
pub fn check(dir: &Path) -> i32 {
    match app::load(dir, 1) {
        Ok((loaded, _)) => {
            for warning in &loaded.warnings {
                eprintln!("{warning}");
            }
            print!("{}", summary(&loaded));
            0
        }
        Err(problems) => {
            let errors = problems.iter().filter(|p| p.is_error()).count();
            for problem in &problems {
                eprintln!("{problem}");
            }
            eprintln!("config in {} is INVALID: {errors} error(s)", dir.display());
            1
        }
    }
}

/// The per-namespace summary `check` prints: entries, hosts, ports.
pub fn summary(loaded: &LoadedConfig) -> String {
    let mut by_namespace: BTreeMap<&str, Vec<&crate::config::SourcedEntry>> = BTreeMap::new();
    for entry in &loaded.entries {
        by_namespace
            .entry(entry.namespace.as_str())
            .or_default()
            .push(entry);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "config OK: {} ({} namespaces, {} ServiceEntries, {} files)",
        loaded.dir.display(),
        by_namespace.len(),
        loaded.entries.len(),
        loaded.files.len()
    );
    for (namespace, entries) in by_namespace {
        let _ = writeln!(out, "namespace {namespace}: {} entries", entries.len());
        for sourced in entries {
            let _ = writeln!(
                out,
                "  {}/{}  hosts: {}  ports: {}  ({})",
                namespace,
                sourced.name,
                hosts(&sourced.entry),
                ports(&sourced.entry),
                sourced.file.display()
            );
        }
    }
    out
}

fn hosts(entry: &ServiceEntry) -> String {
    let spec = entry.spec.as_ref();
    let mut list: Vec<String> = spec.map(|s| s.hosts.clone()).unwrap_or_default();
    if let Some(spec) = spec.filter(|s| !s.addresses.is_empty()) {
        list.push(format!("addresses {}", spec.addresses.join(",")));
    }
    list.join(",")
}

fn ports(entry: &ServiceEntry) -> String {
    entry
        .spec
        .iter()
        .flat_map(|s| s.ports.iter().flatten())
        .map(|p| {
            let protocol = p.protocol.as_deref().unwrap_or("TCP").to_ascii_uppercase();
            format!("{}/{protocol}", p.number)
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Dry-runs the policy for one request; returns the exit code (0 allow/audit, 1 deny, 2 error).
pub fn explain(dir: &Path, namespace: &str, host: &str, port: u16, sni: Option<&str>) -> i32 {
    let (_, snapshot) = match app::load(dir, 1) {
        Ok(ok) => ok,
        Err(problems) => {
            for problem in &problems {
                eprintln!("{problem}");
            }
            return 2;
        }
    };
    let namespace = match Namespace::parse(namespace) {
        Ok(ns) => ns,
        Err(message) => {
            eprintln!("--namespace: {message}");
            return 2;
        }
    };
    let target = match Host::parse(host) {
        Ok(host) => Target { host, port },
        Err(err) => {
            println!("DENY malformed_request: host {host:?}: {err}");
            return 1;
        }
    };
    let decision = snapshot.policy.decide(namespace.as_str(), &target);
    let mode = match decision.mode {
        crate::config::gateway::Mode::Enforce => "enforce",
        crate::config::gateway::Mode::Audit => "audit",
    };
    let mut verdict = decision.verdict;
    if let (Some(sni), true) = (sni, verdict.lets_through()) {
        if snapshot.require_sni_match && decision.inspection() == Inspection::Sni {
            let matches = match (&target.host, Hostname::parse(sni)) {
                (Host::Name(host), Ok(sni)) => *host == sni,
                _ => false,
            };
            if !matches {
                verdict = Verdict::deny_in(crate::decide::DenyReason::SniMismatch, decision.mode);
            }
        }
    }
    let entry = decision
        .rule
        .map(|r| format!(" via ServiceEntry {} ({})", r.label, r.file.display()))
        .unwrap_or_default();
    match verdict {
        Verdict::Allow => println!("ALLOW {namespace} -> {target}{entry} [mode {mode}]"),
        Verdict::Audit(reason) => println!(
            "AUDIT {namespace} -> {target}: would deny {reason}{entry}; namespace is in audit mode, so it is let through"
        ),
        Verdict::Deny(reason) => {
            println!("DENY {namespace} -> {target}: {reason} [mode {mode}]");
            return 1;
        }
    }
    for dial in decision.dial_targets(&target) {
        match dial {
            DialTarget::Trusted(addr) => println!("  dial {addr} (written in the entry, trusted)"),
            DialTarget::Checked(addr) => println!("  dial {addr} (deny-list checked)"),
            DialTarget::Resolve(name, port) => {
                println!("  resolve {name}, dial port {port} (every answer deny-list checked)")
            }
        }
    }
    0
}
