//! `check` and `explain`: the offline commands, on exactly the load/compile path `run` uses;
//! `explain` prints the plan the planner makes for the same inputs a front end reads.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::app;
use crate::config::serviceentry::ServiceEntry;
use crate::config::LoadedConfig;
use std::net::IpAddr;

use crate::config::gateway::Mode;
use crate::names::{Host, Namespace, Target};
use crate::plan::{
    self, Ask, DenyReason, DialTarget, Listener, Obligation, Plan, Presented, Tenant, Verdict,
};
use crate::snapshot::Snapshot;
use crate::sniff::hello_reader::HelloSummary;

/// Validates `dir`; prints the summary (stdout) or every problem (stderr). Returns the exit code.
pub fn check(dir: &Path) -> i32 {
    match app::load(dir, 1) {
        Ok((loaded, snapshot)) => {
            for warning in &loaded.warnings {
                eprintln!("{warning}");
            }
            print!("{}", summary(&loaded, &snapshot));
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

/// The per-namespace summary `check` prints: entries, hosts, ports, and which entries have
/// expired (they load, but allow nothing).
pub fn summary(loaded: &LoadedConfig, snapshot: &Snapshot) -> String {
    let expired = |entry: &crate::config::SourcedEntry| {
        snapshot
            .expired
            .iter()
            .any(|gone| gone.namespace == entry.namespace && gone.name == entry.name)
    };
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
        "config OK: {} ({} namespaces, {} ServiceEntries, {} expired, {} files)",
        loaded.dir.display(),
        by_namespace.len(),
        loaded.entries.len(),
        snapshot.expired.len(),
        loaded.files.len()
    );
    for (namespace, entries) in by_namespace {
        let _ = writeln!(out, "namespace {namespace}: {} entries", entries.len());
        for sourced in entries {
            let _ = writeln!(
                out,
                "  {}/{}  hosts: {}  ports: {}  ({}){}",
                namespace,
                sourced.name,
                hosts(&sourced.entry),
                ports(&sourced.entry),
                sourced.file.display(),
                if expired(sourced) { "  EXPIRED" } else { "" }
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

/// What `explain` is asked: the same inputs a front end reads from a connection.
pub struct ExplainRequest<'a> {
    /// The listener the request would arrive on.
    pub listener: Listener,
    /// The tenant's namespace, taken on trust (when nothing is presented).
    pub namespace: Option<&'a str>,
    /// What the connection presents: a SPIFFE ID (certificate) or a source IP.
    pub presented: Option<&'a str>,
    /// Destination host (name or IP literal).
    pub host: &'a str,
    /// Destination port.
    pub port: u16,
    /// ClientHello SNI names, in order (several is itself a refusal).
    pub sni: &'a [String],
    /// Whether the ClientHello carries Encrypted Client Hello.
    pub ech: bool,
}

/// Dry-runs the planner for one request and prints its plan; returns the exit code (0 allow or
/// audit, 1 deny, 2 error).
pub fn explain(dir: &Path, request: &ExplainRequest<'_>) -> i32 {
    let (_, snapshot) = match app::load(dir, 1) {
        Ok(ok) => ok,
        Err(problems) => {
            for problem in &problems {
                eprintln!("{problem}");
            }
            return 2;
        }
    };
    let tenant = match tenant(&snapshot, request) {
        Ok(tenant) => tenant,
        Err(message) => {
            eprintln!("{message}");
            return 2;
        }
    };
    let who = tenant.namespace().map_or_else(
        || format!("unknown ({})", tenant.identity()),
        |ns| ns.to_string(),
    );
    let hello = HelloSummary {
        server_name: request.sni.first().cloned(),
        server_name_count: request.sni.len(),
        ech: request.ech,
        ..HelloSummary::default()
    };
    let mut sni_hello = hello.clone();
    if request.listener == Listener::Sni && request.sni.is_empty() {
        sni_hello.server_name = Some(request.host.to_owned());
        sni_hello.server_name_count = 1;
    }
    let target = match Host::parse(request.host) {
        Ok(host) => Some(Target {
            host,
            port: request.port,
        }),
        Err(_) => None,
    };
    let host_header = format!("{}:{}", request.host, request.port);
    let ask = Ask::as_listener_would(
        request.listener,
        target.as_ref(),
        &sni_hello,
        &host_header,
        request.port,
    );
    let ask = match ask {
        Some(ask) => ask,
        None => {
            println!(
                "DENY {who} -> {}: {} (host is not a valid name or IP literal)",
                request.host,
                DenyReason::MalformedRequest
            );
            return 1;
        }
    };
    let plan = plan::plan(&snapshot, &tenant, request.listener, &ask);
    let mut verdict = plan.decision.verdict;
    let checks_hello = matches!(plan.obligation, Obligation::Sni(_));
    if checks_hello && !request.sni.is_empty() && verdict.lets_through() {
        verdict = plan.after_hello(&hello);
    }
    print_plan(&plan, verdict, &who, request);
    i32::from(!verdict.lets_through())
}

fn tenant(snapshot: &Snapshot, request: &ExplainRequest<'_>) -> Result<Tenant, String> {
    match (request.presented, request.namespace) {
        (Some(presented), _) => {
            let presented = match presented.parse::<IpAddr>() {
                Ok(ip) => Presented::SourceAddress(ip),
                Err(_) => Presented::Certificate {
                    uri_sans: vec![presented.to_owned()],
                },
            };
            Ok(plan::identify(snapshot, request.listener, &presented))
        }
        (None, Some(namespace)) => Namespace::parse(namespace)
            .map(Tenant::assumed)
            .map_err(|message| format!("--namespace: {message}")),
        (None, None) => Err("give --namespace or --presented".to_owned()),
    }
}

fn print_plan(plan: &Plan<'_>, verdict: Verdict, who: &str, request: &ExplainRequest<'_>) {
    let target = plan
        .target
        .as_ref()
        .map_or_else(|| request.host.to_owned(), ToString::to_string);
    let mode = match plan.decision.mode {
        Mode::Enforce => "enforce",
        Mode::Audit => "audit",
    };
    let entry = plan
        .decision
        .rule
        .map(|r| format!(" via ServiceEntry {} ({})", r.label, r.file.display()))
        .unwrap_or_default();
    let listener = request.listener;
    match verdict {
        Verdict::Allow => println!("ALLOW {who} -> {target} on {listener}{entry} [mode {mode}]"),
        Verdict::Audit(reason) => println!(
            "AUDIT {who} -> {target} on {listener}: would deny {reason}{entry}; namespace is in audit mode, so it is let through"
        ),
        Verdict::Deny(reason) => {
            println!("DENY {who} -> {target} on {listener}: {reason} [mode {mode}]");
            return;
        }
    }
    if let Some(annotations) = plan.decision.rule.and_then(|r| r.annotations.as_deref()) {
        println!("  entry: {}", annotations.describe());
    }
    match &plan.obligation {
        Obligation::None => {}
        Obligation::Sni(name) if request.sni.is_empty() => {
            println!("  then: the tunnel's ClientHello SNI must name {name}");
        }
        Obligation::Sni(name) => println!("  checked: ClientHello SNI names {name}"),
        Obligation::Host(target) => {
            println!(
                "  then: every request in the tunnel must name Host {}",
                target.host
            );
        }
    }
    if let Some(host) = &plan.host_header {
        println!("  forwarded with Host: {host}");
    }
    if let Some(parent) = plan.parent {
        for dial in plan.dial_targets() {
            let authority = match dial {
                DialTarget::Trusted(addr) | DialTarget::Checked(addr) => addr.to_string(),
                DialTarget::Resolve(name, port) => format!("{name}:{port}"),
            };
            let over = if parent.tls.is_some() {
                " over TLS"
            } else {
                ""
            };
            println!(
                "  via parent proxy {}{over}: CONNECT {authority} (the parent resolves names)",
                parent.name
            );
        }
        return;
    }
    for dial in plan.dial_targets() {
        match dial {
            DialTarget::Trusted(addr) => println!("  dial {addr} (written in the entry, trusted)"),
            DialTarget::Checked(addr) => println!("  dial {addr} (deny-list checked)"),
            DialTarget::Resolve(name, port) => {
                println!("  resolve {name}, dial port {port} (every answer deny-list checked)")
            }
        }
    }
}
