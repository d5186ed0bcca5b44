//! `egress-gateway plan --base DIR --head DIR` on real config trees (issue 16, part 1): what a
//! change opens and closes per namespace comes from the compiled policies (renaming a file or
//! reordering entries is no change), widening changes are risks, `--fail-on` gates the exit code,
//! an invalid tree is reported as `check` reports it (FILE:LINE:COL, exit 2), and the JSON has
//! stable fields.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/serviceentries");

/// A config tree under a temp dir: `gateway.yaml` plus files below `serviceentries/`.
struct Tree {
    root: PathBuf,
}

impl Tree {
    fn new(parent: &Path, name: &str, gateway_extra: &str) -> Self {
        let root = parent.join(name);
        std::fs::create_dir_all(root.join("serviceentries")).expect("mkdir serviceentries");
        let gateway =
            format!("listeners:\n  connect: {{address: \"127.0.0.1:0\"}}\n{gateway_extra}");
        std::fs::write(root.join("gateway.yaml"), gateway).expect("write gateway.yaml");
        Self { root }
    }

    fn write(&self, relative: &str, text: &str) -> &Self {
        let path = self.root.join("serviceentries").join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write entry");
        self
    }
}

/// One ServiceEntry document.
fn entry(name: &str, hosts: &[&str], ports: &[(u32, &str)], extra: &str) -> String {
    let hosts: Vec<String> = hosts.iter().map(|h| format!("\"{h}\"")).collect();
    let ports: Vec<String> = ports
        .iter()
        .map(|(n, p)| format!("{{number: {n}, name: p{n}, protocol: {p}}}"))
        .collect();
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}}}\nspec:\n  hosts: [{}]\n  ports: [{}]\n{extra}",
        hosts.join(", "),
        ports.join(", ")
    )
}

fn plan(base: &Tree, head: &Tree, extra: &[&str]) -> Output {
    let mut args = vec![
        "plan".to_owned(),
        "--base".to_owned(),
        base.root.display().to_string(),
        "--head".to_owned(),
        head.root.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    Command::new(env!("CARGO_BIN_EXE_egress-gateway"))
        .args(&args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run egress-gateway plan")
}

fn json_plan(base: &Tree, head: &Tree) -> Value {
    let output = plan(base, head, &["--format", "json"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("plan --format json prints JSON")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn namespace<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["namespaces"]
        .as_array()
        .expect("namespaces array")
        .iter()
        .find(|ns| ns["namespace"] == name)
        .unwrap_or_else(|| panic!("no namespace {name} in {report:#}"))
}

fn rows(ns: &Value, change: &str) -> Vec<(String, u64, String)> {
    ns[change]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| {
            (
                row["destination"].as_str().expect("destination").to_owned(),
                row["port"].as_u64().expect("port"),
                row["protocol"].as_str().expect("protocol").to_owned(),
            )
        })
        .collect()
}

fn risk_kinds(ns: &Value) -> Vec<String> {
    ns["risks"]
        .as_array()
        .expect("risks")
        .iter()
        .map(|r| r["kind"].as_str().expect("kind").to_owned())
        .collect()
}

fn github_and_pypi() -> [String; 2] {
    [
        entry("github", &["api.github.com"], &[(443, "TLS")], ""),
        entry("pypi", &["pypi.org"], &[(443, "TLS"), (80, "HTTP")], ""),
    ]
}

#[test]
fn a_renamed_file_and_reordered_entries_are_no_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let [github, pypi] = github_and_pypi();
    let base = Tree::new(dir.path(), "base", "");
    base.write("app1/egress.yaml", &format!("{github}---\n{pypi}"));
    let head = Tree::new(dir.path(), "head", "");
    head.write("app1/renamed.yaml", &format!("{pypi}---\n{github}"));

    let output = plan(&base, &head, &["--fail-on", "any"]);
    let out = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{out}{}",
        text(&output.stderr)
    );
    assert!(out.contains("No change"), "{out}");
    let report = json_plan(&base, &head);
    assert_eq!(report["summary"]["namespaces_changed"], 0, "{report:#}");
    assert_eq!(report["namespaces"], Value::Array(Vec::new()), "{report:#}");
}

#[test]
fn renaming_an_entry_widens_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let shared = |name: &str| {
        entry(
            name,
            &["cache.example.net"],
            &[(6379, "TCP")],
            "  exportTo: [\"*\"]\n",
        )
    };
    let base = Tree::new(dir.path(), "base", "");
    base.write("app1/cache.yaml", &shared("cache"));
    let head = Tree::new(dir.path(), "head", "");
    head.write("app1/redis.yaml", &shared("redis"));

    let output = plan(&base, &head, &["--fail-on", "any"]);
    let out = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{out}");
    assert!(out.contains("No change"), "{out}");
}

#[test]
fn an_added_host_opens_and_a_removed_port_closes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let [github, pypi] = github_and_pypi();
    let base = Tree::new(dir.path(), "base", "");
    base.write("app1/egress.yaml", &format!("{github}---\n{pypi}"));
    let head = Tree::new(dir.path(), "head", "");
    let github = entry(
        "github",
        &["api.github.com", "uploads.github.com"],
        &[(443, "TLS")],
        "",
    );
    let pypi = entry("pypi", &["pypi.org"], &[(443, "TLS")], "");
    head.write("app1/egress.yaml", &format!("{github}---\n{pypi}"));

    let report = json_plan(&base, &head);
    let app1 = namespace(&report, "app1");
    assert_eq!(
        rows(app1, "opened"),
        vec![("uploads.github.com".to_owned(), 443, "TLS".to_owned())]
    );
    assert_eq!(
        rows(app1, "closed"),
        vec![("pypi.org".to_owned(), 80, "HTTP".to_owned())]
    );
    assert_eq!(app1["opened"][0]["via"], "app1/github");
    assert_eq!(report["summary"]["opened"], 1);
    assert_eq!(report["summary"]["closed"], 1);
    let keys = |value: &Value| -> Vec<String> {
        let mut keys: Vec<String> = value.as_object().expect("object").keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(
        keys(&report),
        ["expiring", "gateway_risks", "namespaces", "summary"]
    );
    assert_eq!(
        keys(&report["summary"]),
        [
            "closed",
            "expiring",
            "namespaces_changed",
            "opened",
            "redundant",
            "risks"
        ]
    );
    assert_eq!(
        keys(app1),
        ["closed", "namespace", "opened", "redundant", "risks"]
    );
    assert_eq!(
        keys(&app1["opened"][0]),
        ["destination", "port", "protocol", "via"]
    );

    let markdown = text(&plan(&base, &head, &[]).stdout);
    assert!(markdown.contains("1 opened, 1 closed"), "{markdown}");
    assert!(
        markdown.contains("| opened | `uploads.github.com` | 443 | TLS | `app1/github` |"),
        "{markdown}"
    );
    assert!(
        markdown.contains("| closed | `pypi.org` | 80 | HTTP | `app1/pypi` |"),
        "{markdown}"
    );
}

#[test]
fn fail_on_sets_the_exit_code_for_its_condition_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let [github, pypi] = github_and_pypi();
    let base = Tree::new(dir.path(), "base", "");
    base.write("app1/egress.yaml", &format!("{github}---\n{pypi}"));
    let head = Tree::new(dir.path(), "head", "");
    head.write("app1/egress.yaml", &github);

    let code = |extra: &[&str]| plan(&base, &head, extra).status.code();
    assert_eq!(code(&[]), Some(0), "without --fail-on a valid pair exits 0");
    assert_eq!(code(&["--fail-on", "close"]), Some(1));
    assert_eq!(code(&["--fail-on", "any"]), Some(1));
    assert_eq!(
        code(&["--fail-on", "risk"]),
        Some(0),
        "closing is not a risk"
    );
    let same = plan(&base, &base, &["--fail-on", "any"]);
    assert_eq!(same.status.code(), Some(0));
}

#[test]
fn a_widened_wildcard_is_a_risk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = Tree::new(dir.path(), "base", "");
    base.write(
        "app1/a.yaml",
        &entry("api", &["*.api.example.com"], &[(443, "TLS")], ""),
    );
    let head = Tree::new(dir.path(), "head", "");
    head.write(
        "app1/a.yaml",
        &entry("api", &["*.example.com"], &[(443, "TLS")], ""),
    );

    let report = json_plan(&base, &head);
    let app1 = namespace(&report, "app1");
    assert_eq!(
        rows(app1, "opened"),
        vec![("*.example.com".to_owned(), 443, "TLS".to_owned())]
    );
    assert!(
        rows(app1, "closed").is_empty(),
        "the narrower wildcard is still covered"
    );
    assert_eq!(risk_kinds(app1), vec!["wildcard"]);
    assert_eq!(
        plan(&base, &head, &["--fail-on", "risk"]).status.code(),
        Some(1)
    );
}

#[test]
fn widening_export_to_is_a_risk_and_opens_in_other_namespaces() {
    let dir = tempfile::tempdir().expect("tempdir");
    let other = entry("own", &["other.example.org"], &[(443, "TLS")], "");
    let base = Tree::new(dir.path(), "base", "");
    base.write(
        "app1/a.yaml",
        &entry(
            "shared",
            &["db.example.com"],
            &[(443, "TLS")],
            "  exportTo: [\".\"]\n",
        ),
    )
    .write("app2/b.yaml", &other);
    let head = Tree::new(dir.path(), "head", "");
    head.write(
        "app1/a.yaml",
        &entry(
            "shared",
            &["db.example.com"],
            &[(443, "TLS")],
            "  exportTo: [\"*\"]\n",
        ),
    )
    .write("app2/b.yaml", &other);

    let report = json_plan(&base, &head);
    let app1 = namespace(&report, "app1");
    assert!(rows(app1, "opened").is_empty(), "app1 already reached it");
    assert_eq!(risk_kinds(app1), vec!["export_widened"]);
    for tenant in ["app2", "*"] {
        assert_eq!(
            rows(namespace(&report, tenant), "opened"),
            vec![("db.example.com".to_owned(), 443, "TLS".to_owned())],
            "{tenant}"
        );
    }
    let markdown = text(&plan(&base, &head, &[]).stdout);
    assert!(
        markdown.contains("### namespace `app2` and every other namespace (`*`)"),
        "namespaces with the same changes share one section: {markdown}"
    );
    assert_eq!(
        markdown.matches("| opened | `db.example.com` |").count(),
        1,
        "{markdown}"
    );
}

#[test]
fn every_risk_class_is_flagged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = Tree::new(dir.path(), "base", "");
    base.write(
        "app1/a.yaml",
        &entry("web", &["web.example.com"], &[(443, "TLS")], ""),
    );
    let head = Tree::new(
        dir.path(),
        "head",
        "enforcement:\n  default: audit\n  namespaces: {app1: audit, app2: enforce}\nlimits:\n  max_streams_per_connection: 1024\n  namespaces: {app1: 20000}\nupstream:\n  allow_cidrs: [\"10.20.0.0/16\"]\n",
    );
    let tcp = entry("db", &["db.example.com"], &[(5432, "TCP")], "");
    let internal = entry(
        "internal",
        &["internal.example.com"],
        &[(443, "TLS")],
        "  resolution: STATIC\n  endpoints: [{address: \"10.1.2.3\"}]\n",
    );
    let none = entry(
        "any",
        &["any.example.com"],
        &[(443, "TLS")],
        "  resolution: NONE\n",
    );
    head.write(
        "app1/a.yaml",
        &entry("web", &["web.example.com"], &[(443, "TLS")], ""),
    )
    .write("app1/b.yaml", &format!("{tcp}---\n{internal}---\n{none}"));

    let report = json_plan(&base, &head);
    let kinds = risk_kinds(namespace(&report, "app1"));
    for kind in [
        "tcp_without_addresses",
        "trusted_private_address",
        "resolution_none",
        "audit_mode",
        "limit_raised",
    ] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "{kind} missing from {kinds:?}"
        );
    }
    let gateway: Vec<&str> = report["gateway_risks"]
        .as_array()
        .expect("gateway_risks")
        .iter()
        .map(|r| r["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(
        gateway,
        vec!["limit_raised", "audit_mode", "allow_cidrs"],
        "{report:#}"
    );
    assert!(
        report["namespaces"]
            .as_array()
            .expect("namespaces")
            .iter()
            .all(|ns| ns["namespace"] == "app1"),
        "a namespace kept in enforce by its override has no risk: {report:#}"
    );
}

#[test]
fn a_port_whose_protocol_changes_closes_the_old_and_opens_the_new() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = Tree::new(dir.path(), "base", "");
    base.write(
        "app1/a.yaml",
        &entry("web", &["web.example.com"], &[(443, "TLS")], ""),
    );
    let head = Tree::new(dir.path(), "head", "");
    head.write(
        "app1/a.yaml",
        &entry("web", &["web.example.com"], &[(443, "TCP")], ""),
    );

    let report = json_plan(&base, &head);
    let app1 = namespace(&report, "app1");
    let row = |protocol: &str| vec![("web.example.com".to_owned(), 443, protocol.to_owned())];
    assert_eq!(rows(app1, "closed"), row("TLS"));
    assert_eq!(rows(app1, "opened"), row("TCP"));
    assert_eq!(risk_kinds(app1), vec!["tcp_without_addresses"]);
}

#[test]
fn an_entry_covered_by_another_of_its_namespace_is_reported_redundant() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = Tree::new(dir.path(), "base", "");
    base.write(
        "app1/a.yaml",
        &entry("api", &["api.example.com"], &[(443, "TLS")], ""),
    );
    let head = Tree::new(dir.path(), "head", "");
    let wide = entry("all", &["*.example.com"], &[(443, "TLS"), (80, "HTTP")], "");
    head.write(
        "app1/a.yaml",
        &entry("api", &["api.example.com"], &[(443, "TLS")], ""),
    )
    .write("app1/b.yaml", &wide);

    let report = json_plan(&base, &head);
    let redundant = &namespace(&report, "app1")["redundant"];
    assert_eq!(redundant[0]["entry"], "app1/api", "{report:#}");
    assert_eq!(redundant[0]["covered_by"][0], "app1/all", "{report:#}");
    assert_eq!(redundant.as_array().map(Vec::len), Some(1));
}

#[test]
fn real_corpus_files_narrowed_to_a_wildcard_flag_the_wildcard() {
    let dir = tempfile::tempdir().expect("tempdir");
    let corpus = |name: &str| {
        std::fs::read_to_string(Path::new(CORPUS).join(name)).expect("read the corpus file")
    };
    let base = Tree::new(dir.path(), "base", "");
    base.write(
        "wiki/www.yaml",
        &corpus("istio.io__wildcard-egress-hosts__www-wikipedia.yaml"),
    );
    let head = Tree::new(dir.path(), "head", "");
    head.write(
        "wiki/www.yaml",
        &corpus("istio.io__wildcard-egress-hosts__www-wikipedia.yaml"),
    )
    .write(
        "wiki/all.yaml",
        &corpus("istio.io__wildcard-egress-hosts__wikipedia.yaml"),
    );

    let report = json_plan(&base, &head);
    let wiki = namespace(&report, "wiki");
    assert_eq!(
        rows(wiki, "opened"),
        vec![("*.wikipedia.org".to_owned(), 443, "TLS".to_owned())]
    );
    assert_eq!(risk_kinds(wiki), vec!["wildcard"]);
    assert_eq!(wiki["redundant"][0]["entry"], "wiki/www-wikipedia");

    let unchanged = plan(&head, &head, &["--fail-on", "any"]);
    assert_eq!(
        unchanged.status.code(),
        Some(0),
        "{}",
        text(&unchanged.stdout)
    );
}

#[test]
fn an_invalid_head_tree_gives_file_line_col_and_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = Tree::new(dir.path(), "base", "");
    base.write(
        "app1/a.yaml",
        &entry("api", &["api.example.com"], &[(443, "TLS")], ""),
    );
    let head = Tree::new(dir.path(), "head", "");
    head.write(
        "app1/a.yaml",
        &entry("api", &["api.example.com"], &[(70000, "TLS")], ""),
    );

    let output = plan(&base, &head, &["--fail-on", "any"]);
    let err = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(output.stdout.is_empty(), "no plan for an invalid tree");
    let file = head.root.join("serviceentries/app1/a.yaml");
    let line = err
        .lines()
        .find(|l| l.starts_with(&format!("{}:", file.display())))
        .unwrap_or_else(|| panic!("no FILE:LINE:COL line: {err}"));
    let mut parts = line[file.display().to_string().len() + 1..].splitn(3, ':');
    let numbers: Vec<Option<u32>> = parts.by_ref().take(2).map(|p| p.parse().ok()).collect();
    assert!(numbers.iter().all(Option::is_some), "{line}");
    assert!(line.contains("70000"), "{line}");
    assert!(err.contains("INVALID"), "{err}");

    let check = Command::new(env!("CARGO_BIN_EXE_egress-gateway"))
        .args(["check", "--config"])
        .arg(&head.root)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run egress-gateway check");
    assert_eq!(
        err,
        text(&check.stderr),
        "plan reports the tree as check does"
    );

    let missing = dir.path().join("missing");
    let output = plan(&Tree { root: missing }, &base, &[]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
}

#[test]
fn a_prefix_widened_from_the_same_first_address_opens_the_wider_prefix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let with_addresses = |prefix: &str| {
        entry(
            "db",
            &["db.example.com"],
            &[(5432, "TCP")],
            &format!("  addresses: [\"{prefix}\"]\n"),
        )
    };
    let base = Tree::new(dir.path(), "base", "");
    base.write("app1/db.yaml", &with_addresses("198.51.100.0/25"));
    let head = Tree::new(dir.path(), "head", "");
    head.write("app1/db.yaml", &with_addresses("198.51.100.0/24"));

    let widened = json_plan(&base, &head);
    assert_eq!(
        rows(namespace(&widened, "app1"), "opened"),
        vec![("198.51.100.0/24".to_owned(), 5432, "TCP".to_owned())],
        "{widened:#}"
    );
    assert!(rows(namespace(&widened, "app1"), "closed").is_empty());
    let narrowed = json_plan(&head, &base);
    assert_eq!(
        rows(namespace(&narrowed, "app1"), "closed"),
        vec![("198.51.100.0/24".to_owned(), 5432, "TCP".to_owned())],
        "{narrowed:#}"
    );
}
