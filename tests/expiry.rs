//! Expiring entries against the real binary (issue 16, part 4): an entry annotated
//! `egress-gateway.io/expires` matches until that instant and not from it, with no file changed
//! and no reload — the running gateway compiles again at the instant — while a tunnel opened
//! before keeps running, and a file change before the instant reschedules it; `/metrics` exports
//! the expiry, the access log and `explain` name owner and ticket, `check` warns about expired
//! entries and refuses malformed dates, and `plan` flags entries expiring within 14 days.

mod common;

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use common::*;
use serde_json::Value;

/// The expiry gauge's name.
const EXPIRY: &str = "egress_serviceentry_expiry_timestamp_seconds";

/// An entry `name` allowing app1 `HOST:9000` (TCP) to `upstream`, owned by team-a under CHG-1,
/// expiring at `expires` (RFC 3339).
fn expiring_entry(name: &str, host: &str, upstream: SocketAddr, expires: &str) -> String {
    owned(
        &static_entry(name, host, 9000, "TCP", upstream),
        name,
        expires,
    )
}

/// `entry` annotated as owned by team-a under CHG-1 and expiring at `expires`.
fn owned(entry: &str, name: &str, expires: &str) -> String {
    annotated(
        entry,
        name,
        &[
            ("egress-gateway.io/expires", &format!("\"{expires}\"")),
            ("egress-gateway.io/owner", "team-a"),
            ("egress-gateway.io/ticket", "CHG-1"),
        ],
    )
}

/// A risk-free entry `name` (HTTPS to `NAME.test`, resolved by name) expiring at `expires`,
/// owned by team-a under CHG-1.
fn tls_entry(name: &str, expires: &str) -> String {
    let spec = format!(
        "  hosts: [{name}.test]\n  ports: [{{number: 443, name: https, protocol: HTTPS}}]\n  resolution: DNS\n"
    );
    owned(&entry_yaml(name, &spec), name, expires)
}

/// Runs the binary with `args`: (exit code, stdout, stderr).
fn run<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> (Option<i32>, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_egress-gateway"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run egress-gateway");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn modified(path: &Path) -> SystemTime {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .expect("mtime")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_entry_is_allowed_until_its_expiry_and_denied_from_it_while_an_open_tunnel_runs_on() {
    let echo = echo_server().await;
    let config = ConfigDir::new(&gateway_yaml(""));
    let expires = whole_second_after(Duration::from_secs(2));
    let written = rfc3339(expires);
    config.entry(
        "app1/soon.yaml",
        &expiring_entry("soon", "soon.test", echo, &written),
    );
    let file = config.path().join("serviceentries/app1/soon.yaml");
    let mtime = modified(&file);
    let gateway = Gateway::start(&config);
    let proxy = gateway.addr("connect");
    let reloads = gateway.reloads("success") + gateway.reloads("failure");
    let generation = gateway.generation();

    let labels = [("namespace", "app1"), ("service_entry", "app1/soon")];
    let gauge = gateway.metric(EXPIRY, &[("owner", "team-a"), labels[0], labels[1]]);
    assert_eq!(
        gauge,
        Some(unix_seconds(expires)),
        "the annotation's Unix time"
    );
    let config_json = |gateway: &Gateway| -> serde_json::Value {
        serde_json::from_str(&gateway.admin_get("/config").1).expect("/config is JSON")
    };
    let before = config_json(&gateway);
    let millis = humantime::format_rfc3339_millis(expires).to_string();
    assert_eq!(before["next_expiry"], millis.as_str(), "{before:#}");
    assert_eq!(
        before["namespaces"]["app1"]["entries"][0], "soon",
        "{before:#}"
    );
    let mut tunnel = open_tunnel(APP1, proxy, "soon.test:9000").await;
    echo_roundtrip(&mut tunnel, b"before").await.expect("echo");
    assert!(
        SystemTime::now() < expires,
        "the test machine was too slow to look before the expiry"
    );

    let started = Instant::now();
    let first_deny = loop {
        let sent = SystemTime::now();
        let answer = connect_request(APP1, proxy, "soon.test:9000").await;
        let answered = SystemTime::now();
        match answer.status {
            200 => assert!(sent < expires, "allowed though sent after the expiry"),
            403 => {
                assert_eq!(answer.deny_reason().as_deref(), Some("not_allowlisted"));
                break (sent, answered);
            }
            other => panic!("unexpected {other}: {}", answer.head),
        }
        assert!(started.elapsed() < WAIT, "never denied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(first_deny.1 >= expires, "denied before the expiry instant");
    let late = first_deny.0.duration_since(expires).unwrap_or_default();
    assert!(
        late < Duration::from_secs(2),
        "denied {late:?} after the expiry"
    );

    echo_roundtrip(&mut tunnel, b"after the expiry")
        .await
        .expect("the tunnel opened before the expiry still runs");
    assert_eq!(modified(&file), mtime, "no file was changed");
    assert_eq!(
        gateway.reloads("success") + gateway.reloads("failure"),
        reloads,
        "an expiry is not a reload"
    );
    // Decisions skip the entry from the instant; the snapshot without it follows from the
    // reload thread, without a file read.
    let recompiles =
        gateway.wait_metric("egress_config_expiry_recompiles_total", &[], |n| n >= 1.0);
    assert_eq!(recompiles, 1.0);
    assert_eq!(gateway.generation(), generation + 1.0);
    assert_eq!(gateway.metric(EXPIRY, &labels), None, "gone with the entry");
    let after = config_json(&gateway);
    assert_eq!(after["next_expiry"], serde_json::Value::Null, "{after:#}");
    assert_eq!(
        after["namespaces"]["app1"]["expired"],
        serde_json::json!(["soon"]),
        "{after:#}"
    );
    gateway.wait_log("ServiceEntry expired");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_access_log_and_explain_name_owner_and_ticket_of_the_entry_that_allowed_the_flow() {
    let echo = echo_server().await;
    let config = ConfigDir::new(&gateway_yaml(""));
    let far = rfc3339(whole_second_after(Duration::from_secs(90 * 24 * 3600)));
    config.entry(
        "app1/owned.yaml",
        &expiring_entry("owned", "owned.test", echo, &far),
    );
    config.entry(
        "app1/plain.yaml",
        &static_entry("plain", "plain.test", 9000, "TCP", echo),
    );
    let gateway = Gateway::start(&config);
    let proxy = gateway.addr("connect");
    for host in ["owned.test:9000", "plain.test:9000"] {
        let mut tunnel = open_tunnel(APP1, proxy, host).await;
        echo_roundtrip(&mut tunnel, b"x").await.expect("echo");
    }
    let line =
        |entry: &'static str| gateway.wait_access_log(move |l: &Value| l["service_entry"] == entry);
    let owned = line("app1/owned");
    assert_eq!(owned["owner"], "team-a");
    assert_eq!(owned["ticket"], "CHG-1");
    let plain = line("app1/plain");
    assert!(
        plain["owner"].is_null() && plain["ticket"].is_null(),
        "{plain}"
    );

    let (code, stdout, stderr) = run([
        OsStr::new("explain"),
        OsStr::new("--config"),
        config.path().as_os_str(),
        OsStr::new("--namespace"),
        OsStr::new("app1"),
        OsStr::new("--host"),
        OsStr::new("owned.test"),
        OsStr::new("--port"),
        OsStr::new("9000"),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let shown = format!("  entry: expires {far}, owner \"team-a\", ticket \"CHG-1\"\n");
    assert!(
        stdout.contains(&shown),
        "explain shows the matching entry's annotations: {stdout}"
    );
}

/// Writes app1's entry `old` expiring at `expires` and runs `check`: (exit code, stderr, then
/// stdout).
fn check_expiring(config: &ConfigDir, expires: &str) -> (Option<i32>, String) {
    let upstream: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    config.entry(
        "app1/old.yaml",
        &expiring_entry("old", "old.test", upstream, expires),
    );
    let (code, stdout, stderr) = run([
        OsStr::new("check"),
        OsStr::new("--config"),
        config.path().as_os_str(),
    ]);
    (code, stderr + &stdout)
}

#[test]
fn check_warns_about_an_expired_entry_at_its_line_and_refuses_a_malformed_date_at_its_column() {
    let config = ConfigDir::new(&gateway_yaml(""));
    let (code, stderr) = check_expiring(&config, "2020-01-01T00:00:00+02:00");
    assert_eq!(code, Some(0), "{stderr}");
    let file = config.path().join("serviceentries/app1/old.yaml");
    let warning = format!(
        "{}:6:5: warning: ServiceEntry app1/old (owner \"team-a\", ticket \"CHG-1\") expired at 2020-01-01T00:00:00+02:00",
        file.display()
    );
    assert!(stderr.contains(&warning), "{warning}\nnot in:\n{stderr}");
    assert!(
        stderr.contains("1 ServiceEntries, 1 expired,") && stderr.contains("old.yaml)  EXPIRED\n"),
        "the summary marks the expired entry: {stderr}"
    );

    let (code, stderr) = check_expiring(&config, "2020-01-01T00:00:00+25:00");
    assert_eq!(code, Some(1), "{stderr}");
    let error = format!(
        "{}:6:5: ServiceEntry old: metadata.annotations.egress-gateway.io/expires: annotation egress-gateway.io/expires \"2020-01-01T00:00:00+25:00\" is not an RFC 3339 time",
        file.display()
    );
    assert!(stderr.contains(&error), "{error}\nnot in:\n{stderr}");
}

#[test]
fn plan_flags_an_entry_expiring_within_14_days_and_does_not_fail_on_it() {
    let base = ConfigDir::new(&gateway_yaml(""));
    let head = ConfigDir::new(&gateway_yaml(""));
    let soon = rfc3339(whole_second_after(Duration::from_secs(5 * 24 * 3600)));
    let later = rfc3339(whole_second_after(Duration::from_secs(30 * 24 * 3600)));
    for tree in [&base, &head] {
        tree.entry("app1/later.yaml", &tls_entry("later", &later));
    }
    head.entry("app1/soon.yaml", &tls_entry("soon", &soon));
    let (code, stdout, stderr) = run_plan(base.path(), head.path(), "json");
    assert_eq!(code, Some(0), "expiring entries are not risks: {stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(report["summary"]["expiring"], 1, "{report:#}");
    let row = &report["expiring"][0];
    assert_eq!(row["entry"], "app1/soon");
    assert_eq!(row["expires"], soon.as_str());
    assert_eq!(row["expired"], false);
    assert_eq!(row["days_left"], 5);
    assert_eq!(
        (&row["owner"], &row["ticket"]),
        (&"team-a".into(), &"CHG-1".into())
    );

    let (_, markdown, _) = run_plan(base.path(), head.path(), "markdown");
    assert!(
        markdown.contains("### Expiring entries (within 14 days)"),
        "{markdown}"
    );
    assert!(
        markdown.contains(&format!(
            "| `app1/soon` | {soon} | 5 day(s) left | `team-a` | `CHG-1` |"
        )),
        "{markdown}"
    );
}

/// `plan --fail-on risk --format FORMAT --base BASE --head HEAD`.
fn run_plan(base: &Path, head: &Path, format: &str) -> (Option<i32>, String, String) {
    let flags = ["plan", "--fail-on", "risk", "--format", format, "--base"].map(OsStr::new);
    let dirs = [base.as_os_str(), OsStr::new("--head"), head.as_os_str()];
    run(flags.into_iter().chain(dirs))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_change_before_the_instant_reschedules_the_expiry() {
    let echo = echo_server().await;
    let config = ConfigDir::new(&gateway_yaml(""));
    let first = whole_second_after(Duration::from_secs(3));
    config.entry(
        "app1/moved.yaml",
        &expiring_entry("moved", "moved.test", echo, &rfc3339(first)),
    );
    let gateway = Gateway::start(&config);
    gateway.wait_watching();
    let proxy = gateway.addr("connect");
    let generation = gateway.generation();

    let extended = rfc3339(whole_second_after(Duration::from_secs(86_400)));
    config.replace_entry(
        "app1/moved.yaml",
        &expiring_entry("moved", "moved.test", echo, &extended),
    );
    gateway.wait_metric("egress_config_generation", &[], |g| g > generation);
    assert!(
        SystemTime::now() < first,
        "the reload landed after the first expiry; the test machine was too slow"
    );

    // Past the first instant by more than the reload thread's one-second wake: still allowed.
    let until = first + Duration::from_millis(1_500);
    while SystemTime::now() < until {
        let answer = connect_request(APP1, proxy, "moved.test:9000").await;
        assert_eq!(answer.status, 200, "{}", answer.head);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        gateway.metric("egress_config_expiry_recompiles_total", &[]),
        Some(0.0),
        "the old instant was never acted on"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expiry_retires_the_entry_even_when_a_parent_proxy_file_went_missing() {
    // The parent's credentials file is read at start and on reloads; an expiry reads no file,
    // so deleting it (a secret unmounted, say) must not keep the expired entry allowed.
    let down = closed_port();
    let config = ConfigDir::new(&gateway_yaml(&format!(
        "upstream:\n  proxy: {{address: \"{down}\", credentials_file: parent-auth.txt}}\n"
    )));
    let credentials = config.path().join("parent-auth.txt");
    std::fs::write(&credentials, "alice:secret\n").expect("credentials");
    let expires = whole_second_after(Duration::from_secs(2));
    let spec = "  hosts: [gone.test]\n  ports: [{number: 9000, name: tcp, protocol: TCP}]\n  resolution: DNS\n";
    config.entry(
        "app1/gone.yaml",
        &owned(&entry_yaml("gone", spec), "gone", &rfc3339(expires)),
    );
    let gateway = Gateway::start(&config);
    let proxy = gateway.addr("connect");
    let answer = connect_request(APP1, proxy, "gone.test:9000").await;
    assert_eq!(
        answer.deny_reason().as_deref(),
        Some("upstream_unreachable"),
        "allowed, then the parent is down: {}",
        answer.head
    );
    assert!(SystemTime::now() < expires, "the test machine was too slow");
    std::fs::remove_file(&credentials).expect("remove the credentials");

    gateway.wait_metric("egress_config_expiry_recompiles_total", &[], |n| n >= 1.0);
    let answer = connect_request(APP1, proxy, "gone.test:9000").await;
    assert_eq!(
        answer.deny_reason().as_deref(),
        Some("not_allowlisted"),
        "{}",
        answer.head
    );
}
