//! `suggest --access-log FILE...`: ServiceEntry files for what tenants asked for and were denied
//! as not allowlisted (or let through only by audit mode), one folder per namespace and one file
//! per registrable domain, each carrying its evidence; with `--config`, only what the current
//! tree does not already allow, and the entries no allowed flow matched (pruning candidates).
//! Every flow is decided by the planner (`observed::verdict`), never by matching here.

pub mod group;
pub mod write;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use crate::names::{Host, Hostname, Namespace};
use crate::observed::verdict::replay;
use crate::observed::{Flow, Observed, Seen, MAX_FLOWS};
use crate::plan::{DenyReason, Verdict};
use crate::policy_diff::exposure::{label, Tree};
use group::{Ports, Protocol};

/// What `suggest` was asked.
#[derive(Debug, Clone)]
pub struct Options {
    /// Access-log files, plain or gzip.
    pub access_logs: Vec<PathBuf>,
    /// Only this namespace.
    pub namespace: Option<String>,
    /// Where the files go (`<out>/<namespace>/<domain>.yaml`).
    pub out: PathBuf,
    /// The current config tree: what it allows is not suggested, and its unused entries listed.
    pub config: Option<PathBuf>,
    /// Distinct names under a suffix needed before it becomes `*.suffix`.
    pub wildcard_min: usize,
}

/// Flows left out, by why.
#[derive(Debug, Default)]
struct Left {
    other_outcome: u64,
    other_namespace: u64,
    address: u64,
    invalid: u64,
    allowed: u64,
}

/// What one name was asked for on which ports, and the flows that asked.
#[derive(Default)]
struct Want<'a> {
    ports: Ports,
    flows: Vec<(&'a Flow, &'a Seen)>,
}

type Wanted<'a> = BTreeMap<Namespace, BTreeMap<String, BTreeMap<Hostname, Want<'a>>>>;

/// Runs `suggest`; returns the exit code (0 written, 2 unusable config, namespace or `--out`).
pub fn run(options: &Options) -> i32 {
    let only = match options.namespace.as_deref().map(Namespace::parse) {
        Some(Err(message)) => {
            eprintln!("--namespace: {message}");
            return 2;
        }
        Some(Ok(namespace)) => Some(namespace),
        None => None,
    };
    if let Err(message) = fresh_out(&options.out) {
        eprintln!("--out {}: {message}", options.out.display());
        return 2;
    }
    let current = match options.config.as_deref().map(crate::policy_diff::load) {
        Some(None) => return 2,
        Some(Some(tree)) => Some(tree),
        None => None,
    };
    let observed = Observed::read(&options.access_logs);
    for example in &observed.diagnostics.examples {
        eprintln!("{example}");
    }
    let mut left = Left::default();
    let wanted = wanted(&observed, only.as_ref(), current.as_ref(), &mut left);
    let written = match write_all(&wanted, current.as_ref(), options) {
        Ok(written) => written,
        Err(message) => {
            eprintln!("{message}");
            return 2;
        }
    };
    print!("{}", report(&observed, &left, &written, options));
    if let Some(tree) = &current {
        print!("{}", prune(tree, &observed, only.as_ref()));
    }
    0
}

/// Collapses each (namespace, domain) group into destinations and writes its file.
fn write_all(
    wanted: &Wanted<'_>,
    current: Option<&Tree>,
    options: &Options,
) -> Result<Vec<write::File>, String> {
    let mut written = Vec::new();
    for (namespace, domains) in wanted {
        let mut taken = current
            .map(|tree| names_in(tree, namespace))
            .unwrap_or_default();
        for (domain, names) in domains {
            let ports = names
                .iter()
                .map(|(name, want)| (name.clone(), want.ports.clone()))
                .collect();
            let destinations: Vec<write::Evidenced<'_>> =
                group::collapse(domain, &ports, options.wildcard_min)
                    .into_iter()
                    .map(|destination| {
                        let flows = destination
                            .names
                            .iter()
                            .flat_map(|name| names[name].flows.iter().copied())
                            .collect();
                        (destination, flows)
                    })
                    .collect();
            let file = write::render(namespace, domain, &destinations, &mut taken)?;
            written.push(save(&options.out, file)?);
        }
    }
    Ok(written)
}

/// The flows to suggest for, by namespace, registrable domain and name.
fn wanted<'a>(
    observed: &'a Observed,
    only: Option<&Namespace>,
    current: Option<&Tree>,
    left: &mut Left,
) -> Wanted<'a> {
    let mut wanted = Wanted::new();
    for (flow, seen) in observed.sorted() {
        let suggestible = match (&*seen.decision, &*seen.reason) {
            ("audit", _) => true,
            ("deny", reason) => {
                reason == DenyReason::NotAllowlisted.as_str()
                    || reason == DenyReason::PortNotAllowed.as_str()
            }
            _ => false,
        };
        if !suggestible {
            left.other_outcome += 1;
            continue;
        }
        let Ok(namespace) = Namespace::parse(&flow.namespace) else {
            left.invalid += 1;
            continue;
        };
        if only.is_some_and(|only| *only != namespace) {
            left.other_namespace += 1;
            continue;
        }
        let name = match Host::parse(&flow.host) {
            Ok(Host::Name(name)) => name,
            Ok(Host::Ip(_)) => {
                left.address += 1;
                continue;
            }
            Err(_) => {
                left.invalid += 1;
                continue;
            }
        };
        if flow
            .sni
            .as_deref()
            .is_some_and(|sni| Hostname::parse(sni).is_err())
            || flow.listener.parse::<crate::plan::Listener>().is_err()
        {
            left.invalid += 1;
            continue;
        }
        let allowed = current.map(|tree| replay(&tree.snapshot, flow, seen).map(|r| r.verdict));
        if allowed == Some(Ok(Verdict::Allow)) {
            left.allowed += 1;
            continue;
        }
        let domain = group::registrable(&name).to_owned();
        let want = wanted
            .entry(namespace)
            .or_default()
            .entry(domain)
            .or_default()
            .entry(name)
            .or_default();
        group::merge(&mut want.ports, &Ports::from([(flow.port, protocol(flow))]));
        want.flows.push((flow, seen));
    }
    wanted
}

/// The protocol a flow is suggested with: TLS when a ClientHello was seen or it came to the SNI
/// listener, HTTP on the HTTP listener, else by the well-known ports 443 and 80, else TCP.
fn protocol(flow: &Flow) -> Protocol {
    match (&*flow.listener, flow.sni.is_some(), flow.port) {
        ("sni", _, _) | (_, true, _) => Protocol::Tls,
        ("http", _, _) => Protocol::Http,
        (_, _, 443) => Protocol::Tls,
        (_, _, 80) => Protocol::Http,
        _ => Protocol::Tcp,
    }
}

/// Entry names `namespace` already has in the current tree, so suggestions never reuse one.
fn names_in(tree: &Tree, namespace: &Namespace) -> BTreeSet<String> {
    tree.loaded
        .entries
        .iter()
        .filter(|e| e.namespace == *namespace)
        .map(|e| e.name.to_string())
        .collect()
}

/// `--out` must be new or an empty directory, and not a symlink: suggestions never overwrite a
/// file or land in one a symlink points elsewhere (say, a checkout's `.github/workflows`).
fn fresh_out(out: &Path) -> Result<(), String> {
    match std::fs::symlink_metadata(out) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err.to_string()),
        Ok(meta) if !meta.is_dir() => Err("exists and is not a directory".into()),
        Ok(_) => match std::fs::read_dir(out).map(|mut entries| entries.next().is_none()) {
            Ok(true) => Ok(()),
            Ok(false) => {
                Err("is not empty: suggest writes only into a new or empty directory".into())
            }
            Err(err) => Err(err.to_string()),
        },
    }
}

/// Writes `file` under `out`, refusing any path that is not plain folders below it, a folder
/// that is not a real directory, and a file that already exists (never followed, never
/// overwritten).
fn save(out: &Path, file: write::File) -> Result<write::File, String> {
    let plain = file
        .path
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    if !plain || file.path.components().count() != 2 {
        return Err(format!(
            "refusing to write {} outside {}",
            file.path.display(),
            out.display()
        ));
    }
    let path = out.join(&file.path);
    let folder = path.parent().unwrap_or(out);
    let real_dir = |dir: &Path| {
        std::fs::symlink_metadata(dir).and_then(|meta| match meta.is_dir() {
            true => Ok(()),
            false => Err(std::io::Error::other("not a directory (a symlink?)")),
        })
    };
    let written = std::fs::create_dir_all(out)
        .and_then(|()| real_dir(out))
        .and_then(|()| match std::fs::create_dir(folder) {
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => real_dir(folder),
            other => other,
        })
        .and_then(|()| {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
        })
        .and_then(|mut opened| std::io::Write::write_all(&mut opened, file.text.as_bytes()));
    written.map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(file)
}

fn report(observed: &Observed, left: &Left, written: &[write::File], options: &Options) -> String {
    let d = &observed.diagnostics;
    let entries: usize = written.iter().map(|f| f.entries).sum();
    let mut out = format!(
        "suggest: {} distinct flow(s) from {} line(s); wrote {} file(s) with {entries} entr{} under {}\n",
        observed.flows.len(),
        d.lines,
        written.len(),
        if entries == 1 { "y" } else { "ies" },
        options.out.display()
    );
    for file in written {
        out.push_str(&format!(
            "  {}: {}\n",
            file.path.display(),
            file.hosts.join(", ")
        ));
    }
    out.push_str(&format!(
        "not suggested: {} flow(s) allowed or denied for another reason, {} already allowed by --config, {} of another namespace, {} to an IP literal, {} with an invalid name or listener; {} malformed, {} over-long, {} tenant-less line(s), {} unreadable file(s), {} line(s) of flows beyond the first {MAX_FLOWS} distinct ones\n",
        left.other_outcome, left.allowed, left.other_namespace, left.address, left.invalid,
        d.malformed, d.too_long, d.skipped, d.unreadable, d.beyond_flow_cap
    ));
    out
}

/// The entries of the current tree that no flow let through in the log matched, by the log's
/// `service_entry` or by deciding the flow again.
fn prune(tree: &Tree, observed: &Observed, only: Option<&Namespace>) -> String {
    let mut used: BTreeSet<String> = observed
        .entries_used
        .iter()
        .map(|e| e.to_string())
        .collect();
    for (flow, seen) in &observed.flows {
        if let Ok(replayed) = replay(&tree.snapshot, flow, seen) {
            if replayed.verdict == Verdict::Allow {
                used.extend(replayed.entry);
            }
        }
    }
    let unused: Vec<String> = tree
        .loaded
        .entries
        .iter()
        .filter(|e| only.is_none_or(|ns| e.namespace == *ns))
        .filter(|e| !used.contains(&label(e)))
        .map(|e| format!("  {} ({})\n", label(e), e.file.display()))
        .collect();
    format!(
        "pruning candidates (no allowed flow in the log matched them): {}\n{}",
        unused.len(),
        unused.concat()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(listener: &str, port: u16, sni: Option<&str>) -> Flow {
        Flow {
            namespace: "app1".into(),
            listener: listener.into(),
            host: "a.example.com".into(),
            port,
            sni: sni.map(Into::into),
        }
    }

    #[test]
    fn the_protocol_follows_what_was_seen_then_the_well_known_ports() {
        let cases = [
            (flow("sni", 8443, None), Protocol::Tls),
            (flow("connect", 8443, Some("a.example.com")), Protocol::Tls),
            (flow("http", 8080, None), Protocol::Http),
            (flow("connect", 443, None), Protocol::Tls),
            (flow("connect_tls", 80, None), Protocol::Http),
            (flow("connect", 5432, None), Protocol::Tcp),
        ];
        for (flow, expected) in cases {
            assert_eq!(protocol(&flow), expected, "{flow:?}");
        }
    }
}
