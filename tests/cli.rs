//! The offline commands of the real binary (docs/cli.md): `check` accepts the repository's example
//! `config/` with a per-namespace summary and rejects a broken directory with
//! `FILE:LINE:COL: message` on stderr and exit 1; `explain` prints ALLOW with the matching
//! `namespace/name` and file (exit 0) or DENY with the reason (exit 1), including the `--sni`
//! check; `--version` prints the version.

use std::path::Path;
use std::process::{Command, Output};

const EXAMPLE_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config");

fn gateway(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_egress-gateway"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run egress-gateway")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn explain(args: &[&str]) -> Output {
    let mut all = vec!["explain", "--config", EXAMPLE_CONFIG];
    all.extend_from_slice(args);
    gateway(&all)
}

#[test]
fn check_accepts_the_example_config_with_a_per_namespace_summary() {
    let output = gateway(&["check", "--config", EXAMPLE_CONFIG]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{out}\n{}", stderr(&output));
    assert!(out.contains("config OK"), "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("namespace app1:")),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with("namespace app2:")),
        "{out}"
    );
    for entry in [
        "app1/github-api",
        "app1/googleapis",
        "app1/orders-db",
        "app2/pypi",
    ] {
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with(entry))
            .unwrap_or_else(|| panic!("no summary line for {entry}:\n{out}"));
        assert!(line.contains("hosts:") && line.contains("ports:"), "{line}");
    }
    let pypi = out.lines().find(|l| l.contains("app2/pypi")).expect("pypi");
    assert!(
        pypi.contains("pypi.org") && pypi.contains("443/TLS"),
        "{pypi}"
    );
}

#[test]
fn check_rejects_a_broken_config_with_file_line_col() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("gateway.yaml"),
        "listeners:\n  connect: {address: \"127.0.0.1:0\"}\n",
    )
    .expect("write");
    let entries = dir.path().join("serviceentries/app1");
    std::fs::create_dir_all(&entries).expect("mkdir");
    std::fs::write(
        entries.join("broken.yaml"),
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: broken}\nspec:\n  hosts: [\"*\"]\n  ports:\n    - {number: 70000, name: big, protocol: TCP}\n",
    )
    .expect("write");

    let output = gateway(&["check", "--config", &dir.path().display().to_string()]);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{}\n{err}", stdout(&output));
    assert!(!stdout(&output).contains("config OK"));
    let file = Path::new("serviceentries/app1/broken.yaml");
    let problems: Vec<(usize, usize, &str)> = err
        .lines()
        .filter(|l| l.contains(&*file.display().to_string()))
        .map(|l| {
            let mut parts = l.splitn(4, ':');
            let _file = parts.next();
            let line = parts.next().and_then(|p| p.parse().ok());
            let col = parts.next().and_then(|p| p.parse().ok());
            let message = parts.next().map(str::trim);
            match (line, col, message) {
                (Some(line), Some(col), Some(message)) => (line, col, message),
                _ => panic!("not FILE:LINE:COL: message: {l}"),
            }
        })
        .collect();
    assert!(
        problems
            .iter()
            .any(|(line, _, m)| *line == 5 && m.contains("bare `*`")),
        "{err}"
    );
    assert!(
        problems
            .iter()
            .any(|(line, _, m)| *line == 7 && m.contains("70000")),
        "{err}"
    );
    assert!(err.contains("INVALID"), "{err}");
}

#[test]
fn explain_allow_names_the_entry_and_its_file() {
    let output = explain(&[
        "--namespace",
        "app1",
        "--host",
        "api.github.com",
        "--port",
        "443",
    ]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{out}{}", stderr(&output));
    assert!(out.starts_with("ALLOW"), "{out}");
    assert!(out.contains("app1/github-api"), "{out}");
    assert!(out.contains("serviceentries/app1/github.yaml"), "{out}");

    // A wildcard entry, and an SNI that names the host.
    let output = explain(&[
        "--namespace",
        "app1",
        "--host",
        "storage.googleapis.com",
        "--sni",
        "storage.googleapis.com",
    ]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{out}{}", stderr(&output));
    assert!(
        out.starts_with("ALLOW") && out.contains("app1/googleapis"),
        "{out}"
    );

    // An IP literal through `addresses`.
    let output = explain(&[
        "--namespace",
        "app1",
        "--host",
        "203.0.113.5",
        "--port",
        "5432",
    ]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{out}{}", stderr(&output));
    assert!(
        out.starts_with("ALLOW") && out.contains("app1/orders-db"),
        "{out}"
    );
}

#[test]
fn explain_deny_names_the_reason() {
    let cases: [(&[&str], &str); 5] = [
        (
            &["--namespace", "app2", "--host", "api.github.com"],
            "not_allowlisted",
        ),
        (
            &[
                "--namespace",
                "app1",
                "--host",
                "api.github.com",
                "--port",
                "80",
            ],
            "port_not_allowed",
        ),
        (
            &[
                "--namespace",
                "app1",
                "--host",
                "api.github.com",
                "--sni",
                "evil.example.com",
            ],
            "sni_mismatch",
        ),
        (
            &["--namespace", "app1", "--host", "googleapis.com"],
            "not_allowlisted",
        ),
        (
            &[
                "--namespace",
                "app1",
                "--host",
                "203.0.113.99",
                "--port",
                "5432",
            ],
            "not_allowlisted",
        ),
    ];
    for (args, reason) in cases {
        let output = explain(args);
        let out = stdout(&output);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{args:?}: {out}{}",
            stderr(&output)
        );
        assert!(out.starts_with("DENY"), "{args:?}: {out}");
        assert!(out.contains(reason), "{args:?}: expected {reason}: {out}");
    }
}

#[test]
fn version_prints_the_version() {
    let output = gateway(&["--version"]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        stdout(&output).trim(),
        format!("egress-gateway {}", env!("CARGO_PKG_VERSION"))
    );
}
