//! 200 000 ServiceEntries in one file load (issue 14): as `kubectl get serviceentries -A -o yaml`
//! writes them (one `kind: List` document) and as 200 000 documents of one file. `check` must
//! accept both within a generous bound even in a debug build; the release figures (time and peak
//! memory, before and after) are in `benches/README.md`.
//!
//! A large file where every document is refused must not take quadratic time either: each error
//! is placed at its line through one index of the file, not one index per error.
//!
//! Set `EGRESS_LARGE_CONFIG_KEEP=DIR` to keep the generated config directories in `DIR/list` and
//! `DIR/documents` for measuring a release build with `/usr/bin/time -v`.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Entries per file.
const ENTRIES: usize = 200_000;

/// Bound for a debug build on a busy machine; a release build takes a few seconds.
const WITHIN: Duration = Duration::from_secs(240);

/// The fields of entry `i`: 100 tenants, one wildcard host in ten.
fn entry_parts(i: usize) -> (String, &'static str) {
    if i % 10 == 0 {
        (format!("*.svc{i}.example.com"), "NONE")
    } else {
        (format!("api{i}.example.com"), "DNS")
    }
}

/// One `kind: List` document in kubectl's layout.
fn list_file() -> String {
    let mut text = String::from("apiVersion: v1\nitems:\n");
    for i in 0..ENTRIES {
        let (host, resolution) = entry_parts(i);
        let _ = write!(
            text,
            "- apiVersion: networking.istio.io/v1\n  kind: ServiceEntry\n  metadata:\n    name: e{i}\n    namespace: ns{}\n  spec:\n    hosts:\n    - \"{host}\"\n    ports:\n    - name: https\n      number: 443\n      protocol: TLS\n    resolution: {resolution}\n",
            i % 100
        );
    }
    text.push_str("kind: List\nmetadata:\n  resourceVersion: \"\"\n");
    text
}

/// 200 000 documents in one file.
fn documents_file() -> String {
    let mut text = String::new();
    for i in 0..ENTRIES {
        let (host, resolution) = entry_parts(i);
        let _ = write!(
            text,
            "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: e{i}\n  namespace: ns{}\nspec:\n  hosts:\n  - \"{host}\"\n  ports:\n  - number: 443\n    name: https\n    protocol: TLS\n  resolution: {resolution}\n",
            i % 100
        );
    }
    text
}

fn write_config(dir: &Path, allowlist: &str) {
    std::fs::create_dir_all(dir.join("serviceentries")).expect("mkdir");
    std::fs::write(
        dir.join("gateway.yaml"),
        "listeners:\n  connect: {address: \"127.0.0.1:0\"}\n",
    )
    .expect("write gateway.yaml");
    std::fs::write(dir.join("serviceentries/all.yaml"), allowlist).expect("write the allowlist");
}

fn assert_checks(name: &str, allowlist: String) {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = match std::env::var_os("EGRESS_LARGE_CONFIG_KEEP") {
        Some(keep) => Path::new(&keep).join(name),
        None => temp.path().to_path_buf(),
    };
    write_config(&dir, &allowlist);
    drop(allowlist);
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_egress-gateway"))
        .args(["check", "--config"])
        .arg(&dir)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run check");
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("config OK"),
        "{}",
        &stdout[..stdout.len().min(2000)]
    );
    let summaries = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("ns"))
        .filter(|l| l.contains("hosts:"))
        .count();
    assert_eq!(summaries, ENTRIES, "one summary line per entry");
    assert!(took < WITHIN, "{name}: check took {took:?}");
}

/// Both layouts, one after the other: two debug `check`s at once would share two busy cores.
#[test]
fn two_hundred_thousand_entries_in_one_file_check_as_a_list_and_as_documents() {
    assert_checks("list", list_file());
    assert_checks("documents", documents_file());
}

/// 20 000 documents, each with a misspelt key: 20 000 errors, each at its own line.
#[test]
fn twenty_thousand_refused_documents_are_each_placed_without_reindexing_the_file() {
    const REFUSED: usize = 20_000;
    let mut text = String::new();
    for i in 0..REFUSED {
        let _ = write!(
            text,
            "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: e{i}, namespace: ns1}}\nspec:\n  hosts: [api{i}.example.com]\n  portz: []\n"
        );
    }
    let temp = tempfile::tempdir().expect("tempdir");
    write_config(temp.path(), &text);
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_egress-gateway"))
        .args(["check", "--config"])
        .arg(temp.path())
        .env("RUST_LOG", "warn")
        .output()
        .expect("run check");
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("unknown field `portz`"))
        .collect();
    assert_eq!(errors.len(), REFUSED);
    assert!(
        errors[0].contains("all.yaml:7:3: spec.portz"),
        "{}",
        errors[0]
    );
    assert!(
        errors[REFUSED - 1].contains(&format!("all.yaml:{}:3: spec.portz", 7 * REFUSED)),
        "{}",
        errors[REFUSED - 1]
    );
    assert!(took < Duration::from_secs(60), "check took {took:?}");
}
