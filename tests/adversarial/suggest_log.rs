//! Hostile access-log lines fed to `suggest`: whatever a log says, no YAML is injected (hosts go
//! through the gateway's host parser and the YAML is serialized), no wildcard is written at or
//! above a public suffix, nothing is written outside `--out`, and the output is exactly the
//! files the well-formed flows call for, each accepted by `check`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::common::{line, run_cli, ConfigDir};

/// A denied CONNECT line with `host`, `sni` and `namespace` replaced as given.
fn hostile(namespace: &str, host: &str, sni: Option<&str>) -> String {
    let mut value: Value = serde_json::from_str(&line(
        "2026-12-07T10:00:00.000Z connect app1 x.example 443 deny",
    ))
    .expect("json");
    value["namespace"] = json!(namespace);
    value["host"] = json!(host);
    value["sni"] = json!(sni);
    value.to_string()
}

/// Every file below `dir`, relative to it, sorted.
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path.strip_prefix(dir).expect("below").to_path_buf());
            }
        }
    }
    found.sort();
    found
}

/// `suggest --wildcard-min 2` on `log` into `out`, which must succeed; its stdout.
fn suggest(log: &Path, out: &Path) -> String {
    let (code, stdout, stderr) = run_cli(&[
        OsStr::new("suggest"),
        OsStr::new("--access-log"),
        log.as_os_str(),
        OsStr::new("--wildcard-min"),
        OsStr::new("2"),
        OsStr::new("--out"),
        out.as_os_str(),
    ]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    stdout
}

#[test]
fn hostile_lines_never_inject_widen_or_escape() {
    let work = tempfile::tempdir().expect("tempdir");
    let mut log: Vec<u8> = Vec::new();
    let mut push = |text: &str| {
        log.extend_from_slice(text.as_bytes());
        log.push(b'\n');
    };
    // Injection through the host, the SNI and the namespace.
    push(&hostile(
        "app1",
        "evil.example.com\nspec: {hosts: ['*']}",
        None,
    ));
    push(&hostile("app1", "evil.example.com\" ]\n- '*'", None));
    push(&hostile(
        "app1",
        "ok.example.net",
        Some("ok.example.net\n# hosts: ['*']"),
    ));
    push(&hostile("app1", "*.com", None));
    push(&hostile("app1", "*", None));
    push(&hostile("app1", "xn--\u{202e}moc.example", None));
    // Public suffixes, each with many children, and suffixes themselves.
    for child in ["a", "b", "c", "d", "e"] {
        push(&hostile("app1", &format!("{child}.github.io"), None));
        push(&hostile("app1", &format!("{child}.co.uk"), None));
    }
    push(&hostile("app1", "github.io", None));
    push(&hostile("app1", "com", None));
    // IP literals.
    for ip in ["10.0.0.1", "[2001:db8::1]", "169.254.169.254"] {
        push(&hostile("app1", ip, None));
    }
    // Namespaces that would escape --out or are no namespace.
    for namespace in ["../../escaped", "a/b", "..", "/abs", "App1", "unknown"] {
        push(&hostile(namespace, "escape.example.org", None));
    }
    // A huge line, invalid UTF-8, a NUL.
    push(&format!("{{\"ts\":\"{}\"}}", "x".repeat(1 << 20)));
    log.extend_from_slice(b"\xc3\x28\xff{\"ts\":\"2026-12-07T10:00:00Z\"}\n\0\n");
    let path = work.path().join("hostile.jsonl");
    std::fs::write(&path, log).expect("write log");
    let out = work.path().join("out");

    let stdout = suggest(&path, &out);
    let mut expected: Vec<PathBuf> = ["a", "b", "c", "d", "e"]
        .iter()
        .flat_map(|c| {
            [
                format!("app1/{c}.github.io.yaml"),
                format!("app1/{c}.co.uk.yaml"),
            ]
        })
        .chain(["app1/github.io.yaml", "app1/com.yaml"].map(str::to_owned))
        .map(PathBuf::from)
        .collect();
    expected.sort();
    assert_eq!(files_below(&out), expected, "{stdout}");
    assert_eq!(
        files_below(work.path()).len(),
        expected.len() + 1,
        "nothing but the log and the files under --out"
    );
    assert!(
        stdout.contains("3 to an IP literal, 6 with an invalid name or listener; 2 malformed, 1 over-long, 6 tenant-less line(s)"),
        "{stdout}"
    );

    for file in &expected {
        let text = std::fs::read_to_string(out.join(file)).expect("read");
        let documents: Vec<Value> = text
            .split("\n---\n")
            .map(|doc| serde_yaml::from_str(doc).expect("yaml"))
            .collect();
        for document in &documents {
            for host in document["spec"]["hosts"].as_array().expect("hosts") {
                let host = host.as_str().expect("host");
                assert!(!host.starts_with('*'), "{file:?}: {host}");
            }
            assert_eq!(document["spec"]["exportTo"], json!(["."]));
        }
        assert!(!text.contains("evil") && !text.contains("'*'"), "{text}");
    }
    let config = ConfigDir::new(&format!(
        "listeners: {{connect: {{address: \"127.0.0.1:0\"}}}}\nserviceentries: {{dir: \"{}\"}}\n",
        out.display()
    ));
    let (code, stdout, stderr) = run_cli(&[
        OsStr::new("check"),
        OsStr::new("--config"),
        config.path().as_os_str(),
    ]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
}

#[test]
fn a_wildcard_is_only_written_below_a_registrable_domain() {
    let work = tempfile::tempdir().expect("tempdir");
    let hosts = [
        "a.b.s3.amazonaws.com",
        "c.b.s3.amazonaws.com",
        "d.s3.amazonaws.com",
        "e.s3.amazonaws.com",
        "x.y.example.co.uk",
        "z.y.example.co.uk",
    ];
    let lines: Vec<String> = hosts.iter().map(|h| hostile("app1", h, None)).collect();
    let path = work.path().join("log.jsonl");
    std::fs::write(&path, lines.join("\n")).expect("write");
    let out = work.path().join("out");
    let stdout = suggest(&path, &out);
    // s3.amazonaws.com is a public suffix: b.s3.amazonaws.com is a site, d and e are others.
    for (file, hosts) in [
        ("app1/b.s3.amazonaws.com.yaml", "*.b.s3.amazonaws.com"),
        ("app1/d.s3.amazonaws.com.yaml", "d.s3.amazonaws.com"),
        ("app1/e.s3.amazonaws.com.yaml", "e.s3.amazonaws.com"),
        ("app1/example.co.uk.yaml", "*.y.example.co.uk"),
    ] {
        assert!(
            stdout.contains(&format!("  {file}: {hosts}\n")),
            "{file}: {stdout}"
        );
    }
    assert_eq!(files_below(&out).len(), 4, "{stdout}");
}
