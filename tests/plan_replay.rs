//! `plan --access-log` (issue 16, part 2): every flow of the gateway's access log, plain or gzip,
//! in several files given in any order, is replayed against both trees; the flows whose outcome
//! flips are reported as breaks (allow → deny) and unlocks (deny → allow) with their count and
//! first and last seen; malformed, over-long and tenant-less lines are counted with FILE:LINE and
//! never stop it; `--fail-on break` gates the exit code.

#[path = "common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{entry_yaml, line, write_gzip, write_plain, ConfigDir};
use serde_json::{json, Value};

/// A tree with app1's entries; `gateway_extra` is appended to gateway.yaml.
fn tree(gateway_extra: &str, entries: &[(&str, &str, &str)]) -> ConfigDir {
    let dir = ConfigDir::new(&format!(
        "listeners:\n  connect: {{address: \"127.0.0.1:0\"}}\n{gateway_extra}"
    ));
    for (file, name, spec) in entries {
        dir.entry(file, &entry_yaml(name, spec));
    }
    dir
}

const TLS_443: &str = "  ports: [{number: 443, name: tls, protocol: TLS}]\n";

fn spec(hosts: &str, ports: &str) -> String {
    format!("  hosts: [{hosts}]\n{ports}")
}

fn plan(base: &ConfigDir, head: &ConfigDir, logs: &[&Path], extra: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_egress-gateway"));
    command
        .arg("plan")
        .arg("--base")
        .arg(base.path())
        .arg("--head")
        .arg(head.path());
    if !logs.is_empty() {
        command.arg("--access-log").args(logs);
    }
    command
        .args(extra)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run plan")
}

fn json_replay(base: &ConfigDir, head: &ConfigDir, logs: &[&Path]) -> Value {
    let output = plan(base, head, logs, &["--format", "json"]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("json");
    report["replay"].clone()
}

/// Each row as `namespace listener host:port xCOUNT FIRST..LAST base reason -> head reason`.
fn flips(replay: &Value, list: &str) -> Vec<String> {
    let field = |row: &Value, key: &str| row[key].as_str().unwrap_or("-").to_owned();
    replay[list]
        .as_array()
        .expect("list")
        .iter()
        .map(|row| {
            format!(
                "{} {} {}:{} x{} {}..{} {} {} -> {} {}",
                field(row, "namespace"),
                field(row, "listener"),
                field(row, "host"),
                row["port"],
                row["count"],
                field(row, "first_seen"),
                field(row, "last_seen"),
                field(row, "base"),
                field(row, "base_reason"),
                field(row, "head"),
                field(row, "head_reason"),
            )
        })
        .collect()
}

/// Base allows api.example.com:443 for app1; head allows new.example.com:443 instead.
fn base_and_head() -> (ConfigDir, ConfigDir) {
    let base = tree(
        "",
        &[("app1/a.yaml", "api", &spec("\"api.example.com\"", TLS_443))],
    );
    let head = tree(
        "",
        &[("app1/a.yaml", "new", &spec("\"new.example.com\"", TLS_443))],
    );
    (base, head)
}

#[test]
fn plain_and_gzip_logs_in_any_order_give_breaks_and_unlocks_with_counts_and_last_seen() {
    let (base, head) = base_and_head();
    let logs = tempfile::tempdir().expect("tempdir");
    // The later file is given first: first and last seen come from `ts`, not file order.
    let later = write_gzip(
        logs.path(),
        "later.log.gz",
        &[
            line("2026-12-07T10:00:00.000Z connect app1 api.example.com 443 allow"),
            line("2026-12-07T11:30:00.500Z connect app1 api.example.com 443 allow"),
        ],
    );
    let earlier = write_plain(
        logs.path(),
        "earlier.jsonl",
        &[
            line("2026-12-06T09:00:00.000Z connect app1 api.example.com 443 allow"),
            line("2026-12-06T09:05:00.000Z connect app1 new.example.com 443 deny"),
            line("2026-12-06T09:06:00.000Z connect app2 new.example.com 443 deny"),
            line("2026-12-06T09:07:00.000Z connect app1 other.example.com 443 deny"),
        ],
    );
    let replay = json_replay(&base, &head, &[&later, &earlier]);
    assert_eq!(
        flips(&replay, "breaks"),
        ["app1 connect api.example.com:443 x3 2026-12-06T09:00:00.000Z..2026-12-07T11:30:00.500Z allow none -> deny not_allowlisted"]
    );
    assert_eq!(
        flips(&replay, "unlocks"),
        ["app1 connect new.example.com:443 x1 2026-12-06T09:05:00.000Z..2026-12-06T09:05:00.000Z deny not_allowlisted -> allow none"]
    );
    assert_eq!(replay["breaks"][0]["entry"], "app1/api");
    assert_eq!(replay["unlocks"][0]["entry"], "app1/new");
    assert_eq!(replay["summary"]["flows"], 4, "{replay:#}");
    assert_eq!(replay["summary"]["replayed"], 4);
    assert_eq!(replay["diagnostics"]["lines"], 6);
    assert_eq!(replay["diagnostics"]["malformed"], 0);

    let markdown =
        String::from_utf8(plan(&base, &head, &[&earlier, &later], &[]).stdout).expect("utf-8");
    assert!(
        markdown.contains("### Replay of the access log"),
        "{markdown}"
    );
    assert!(
        markdown.contains("**1 break(s), 1 unlock(s)** among 4 distinct flow(s) from 6 line(s)."),
        "{markdown}"
    );
    assert!(
        markdown.contains("| `app1` | connect | `api.example.com:443` | `api.example.com` | 3 | 2026-12-07T11:30:00.500Z | allow none | deny not_allowlisted | `app1/api` |"),
        "{markdown}"
    );
}

#[test]
fn each_listener_is_replayed_as_it_decides() {
    let http_80 = "  ports: [{number: 80, name: http, protocol: HTTP}]\n";
    let base = tree("", &[]);
    let head = tree(
        "",
        &[
            (
                "app1/tls.yaml",
                "tls",
                &spec("\"tls.example.com\"", TLS_443),
            ),
            (
                "app1/web.yaml",
                "web",
                &spec("\"web.example.com\"", http_80),
            ),
        ],
    );
    let logs = tempfile::tempdir().expect("tempdir");
    let mut sni_mismatch: Value = serde_json::from_str(&line(
        "2026-12-07T10:00:03.000Z connect app1 tls.example.com 443 deny",
    ))
    .expect("json");
    sni_mismatch["sni"] = json!("elsewhere.example.com");
    // A tunnel whose hello had no SNI stays denied (as missing_sni) whatever the tree; one that
    // was refused before its hello was read is judged with the host as SNI.
    let mut no_sni: Value = serde_json::from_str(&line(
        "2026-12-07T10:00:05.000Z connect app1 tls.example.com 443 deny",
    ))
    .expect("json");
    no_sni["sni"] = Value::Null;
    no_sni["reason"] = json!("missing_sni");
    let mut never_read = no_sni.clone();
    never_read["host"] = json!("TLS.example.com");
    never_read["reason"] = json!("not_allowlisted");
    let log = write_plain(
        logs.path(),
        "mixed.jsonl",
        &[
            line("2026-12-07T10:00:00.000Z sni app1 tls.example.com 443 deny"),
            line("2026-12-07T10:00:01.000Z http app1 web.example.com 80 deny"),
            line("2026-12-07T10:00:02.000Z connect app1 web.example.com 443 deny"),
            sni_mismatch.to_string(),
            line("2026-12-07T10:00:04.000Z carrier-pigeon app1 tls.example.com 443 deny"),
            no_sni.to_string(),
            never_read.to_string(),
        ],
    );
    let replay = json_replay(&base, &head, &[&log]);
    let unlocked: Vec<String> = flips(&replay, "unlocks")
        .iter()
        .map(|f| f.split(" x").next().unwrap_or_default().to_owned())
        .collect();
    // web.example.com is allowed on 80 only; the tunnel whose hello names another host stays
    // denied as sni_mismatch; an unknown listener is counted, not guessed.
    assert_eq!(
        unlocked,
        [
            "app1 connect TLS.example.com:443",
            "app1 sni tls.example.com:443",
            "app1 http web.example.com:80"
        ]
    );
    assert_eq!(replay["summary"]["unreplayable"], 1, "{replay:#}");
}

#[test]
fn malformed_long_and_tenantless_lines_are_counted_with_file_and_line() {
    let (base, head) = base_and_head();
    let logs = tempfile::tempdir().expect("tempdir");
    let path = logs.path().join("dirty.jsonl");
    let mut bytes = Vec::new();
    bytes.extend_from_slice(
        line("2026-12-07T10:00:00.000Z connect app1 api.example.com 443 allow").as_bytes(),
    );
    bytes.extend_from_slice(b"\nnot json at all\n\xff\xfe\x00{\"ts\":1}\n");
    bytes.extend_from_slice(&vec![b'x'; 100_000]);
    bytes.extend_from_slice(b"\n\n");
    bytes.extend_from_slice(
        line("2026-12-07T10:00:01.000Z connect unknown api.example.com 443 deny").as_bytes(),
    );
    bytes.push(b'\n');
    let mut no_host: Value = serde_json::from_str(&line(
        "2026-12-07T10:00:02.000Z connect app1 x.example 443 deny",
    ))
    .expect("json");
    no_host["host"] = Value::Null;
    bytes.extend_from_slice(no_host.to_string().as_bytes());
    bytes.push(b'\n');
    bytes.extend_from_slice(
        line("2026-12-07T10:00:03.000Z connect app1 api.example.com 443 allow").as_bytes(),
    );
    std::fs::write(&path, bytes).expect("write");
    let missing = logs.path().join("missing.jsonl");

    let replay = json_replay(&base, &head, &[&path, &missing]);
    let d = &replay["diagnostics"];
    assert_eq!(
        (
            &d["lines"],
            &d["malformed"],
            &d["too_long"],
            &d["skipped"],
            &d["unreadable"]
        ),
        (&json!(8), &json!(2), &json!(1), &json!(2), &json!(1)),
        "{d:#}"
    );
    let examples: Vec<&str> = d["examples"]
        .as_array()
        .expect("examples")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let file = path.display().to_string();
    for at in [
        ":2: not a log line",
        ":3: not a log line",
        ":4: line longer than 16384 bytes",
        ":6: namespace \"unknown\"",
    ] {
        assert!(
            examples
                .iter()
                .any(|e| e.starts_with(&format!("{file}{at}"))),
            "{at} in {examples:#?}"
        );
    }
    assert!(
        examples
            .iter()
            .any(|e| e.starts_with(&format!("{}:0: cannot open", missing.display()))),
        "{examples:#?}"
    );
    assert!(
        flips(&replay, "breaks")[0].contains(" x2 "),
        "the good lines around the bad ones count"
    );
}

#[test]
fn fail_on_break_gates_the_exit_code() {
    let (base, head) = base_and_head();
    let logs = tempfile::tempdir().expect("tempdir");
    let breaking = write_plain(
        logs.path(),
        "breaking.jsonl",
        &[line(
            "2026-12-07T10:00:00.000Z connect app1 api.example.com 443 allow",
        )],
    );
    let harmless = write_plain(
        logs.path(),
        "harmless.jsonl",
        &[line(
            "2026-12-07T10:00:00.000Z connect app1 new.example.com 443 deny",
        )],
    );
    let code = |logs: &[&Path], extra: &[&str]| plan(&base, &head, logs, extra).status.code();
    assert_eq!(code(&[&breaking], &["--fail-on", "break"]), Some(1));
    assert_eq!(
        code(&[&harmless], &["--fail-on", "break"]),
        Some(0),
        "an unlock is no break"
    );
    assert_eq!(
        code(&[&breaking], &[]),
        Some(0),
        "without --fail-on a valid plan exits 0"
    );
    let without = plan(&base, &head, &[], &["--fail-on", "break"]);
    assert_eq!(without.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&without.stderr).contains("--fail-on break needs --access-log"));
    let output = plan(&base, &head, &[], &["--format", "json"]);
    let report: Value = serde_json::from_slice(&output.stdout).expect("json");
    assert!(
        report.get("replay").is_none(),
        "no replay without logs: {report:#}"
    );
}
