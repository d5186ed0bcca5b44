//! `egress-gateway suggest` (issue 16, part 3), closing the loop on real gateways: tenants are
//! denied (enforce) or audited, the gateway's own access log goes to `suggest`, `check` accepts
//! the files, and a gateway started on them lets exactly those flows through while a neighbour
//! that was never seen (another name, another port, another namespace) is still denied. Also:
//! grouping and wildcards, `--namespace`, `--config` (already allowed, pruning candidates), exit
//! codes.

mod common;

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::Path;

use common::*;

/// app1 enforces, app2 audits (or enforces, for the gateway on the suggested tree); names
/// resolve through `dns` and the operator lets them reach 127.0.0.1; `entries_dir`, when given,
/// replaces `serviceentries/`.
fn gateway_config(dns: SocketAddr, app2: &str, entries_dir: Option<&Path>) -> ConfigDir {
    let dir = entries_dir
        .map(|d| format!("serviceentries: {{dir: \"{}\"}}\n", d.display()))
        .unwrap_or_default();
    ConfigDir::new(&gateway_yaml(&format!(
        "enforcement: {{namespaces: {{app2: {app2}}}}}\nupstream: {{allow_cidrs: [\"127.0.0.1/32\"]}}\ndns: {{servers: [\"{dns}\"]}}\n{dir}"
    )))
}

/// An entry allowing `host` on `port` over TCP, resolved by the gateway.
fn tcp_entry(name: &str, host: &str, port: u16) -> String {
    entry_yaml(
        name,
        &format!("  hosts: [\"{host}\"]\n  ports: [{{number: {port}, name: tcp, protocol: TCP}}]\n  resolution: DNS\n"),
    )
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// Asks `CONNECT authority` from `from` and returns the status, round-tripping bytes when 200.
async fn status(from: &str, proxy: SocketAddr, authority: &str) -> u16 {
    let mut answer = connect_request(from, proxy, authority).await;
    if answer.status == 200 {
        echo_roundtrip(&mut answer.stream, b"suggested")
            .await
            .expect("echo through the tunnel");
    }
    answer.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suggested_files_pass_check_and_allow_exactly_the_denied_flows() {
    let echo = echo_server().await;
    let dns = loopback_dns_server().await;
    let port = echo.port();
    let config = gateway_config(dns, "audit", None);
    for name in ["known", "stale"] {
        let host = format!("{name}.one.test");
        config.entry(&format!("app1/{name}.yaml"), &tcp_entry(name, &host, port));
    }
    let gateway = Gateway::start(&config);
    let proxy = gateway.addr("connect");
    let at = |host: &str| format!("{host}:{port}");

    // What the tenants ask for: app1 is denied three names, allowed one; app2 is audited.
    for host in ["api.one.test", "www.one.test", "api.two.test"] {
        assert_eq!(status(APP1, proxy, &at(host)).await, 403, "{host}");
    }
    assert_eq!(status(APP1, proxy, &at("known.one.test")).await, 200);
    assert_eq!(status(APP2, proxy, &at("svc.three.test")).await, 200);
    let lines = gateway.wait_access_logs(5, |l| l["port"] == port);
    assert_eq!(lines.iter().filter(|l| l["decision"] == "deny").count(), 3);
    assert!(lines.iter().any(|l| l["decision"] == "audit"));

    let work = tempfile::tempdir().expect("tempdir");
    let log = work.path().join("access.jsonl");
    let text: String = gateway
        .access_log()
        .iter()
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&log, text).expect("write log");
    let out = work.path().join("suggested");
    let (code, stdout, stderr) = run_cli(&[
        os("suggest"),
        os("--access-log"),
        log.as_os_str(),
        os("--config"),
        config.path().as_os_str(),
        os("--out"),
        out.as_os_str(),
    ]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    // Two names of one.test on a TCP port: one `resolution: DNS` entry each, in one file.
    assert!(
        stdout.contains("wrote 3 file(s) with 4 entries"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  app1/one.test.yaml: api.one.test, www.one.test\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  app1/two.test.yaml: api.two.test\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  app2/three.test.yaml: svc.three.test\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "pruning candidates (no allowed flow in the log matched them): 1\n  app1/stale ("
        ),
        "{stdout}"
    );
    let one = std::fs::read_to_string(out.join("app1/one.test.yaml")).expect("file");
    assert!(
        one.contains(&format!("#   connect api.one.test:{port} sni -: 1, ")),
        "{one}"
    );
    assert!(one.contains("deny not_allowlisted"), "{one}");

    // The suggested tree alone, app2 now enforcing: check accepts it, and a gateway on it.
    let suggested = gateway_config(dns, "enforce", Some(&out));
    let (code, stdout, stderr) =
        run_cli(&[os("check"), os("--config"), suggested.path().as_os_str()]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("(2 namespaces, 4 ServiceEntries"),
        "{stdout}"
    );
    drop(gateway);
    let gateway = Gateway::start(&suggested);
    let proxy = gateway.addr("connect");
    for host in ["api.one.test", "www.one.test", "api.two.test"] {
        assert_eq!(
            status(APP1, proxy, &at(host)).await,
            200,
            "{host} is allowed now"
        );
    }
    assert_eq!(status(APP2, proxy, &at("svc.three.test")).await, 200);
    let closed = closed_port().port();
    for (from, authority, reason) in [
        (APP1, at("mail.one.test"), "not_allowlisted"),
        (APP1, format!("api.one.test:{closed}"), "port_not_allowed"),
        (APP2, at("api.one.test"), "not_allowlisted"),
        (APP1, at("svc.three.test"), "not_allowlisted"),
    ] {
        let answer = connect_request(from, proxy, &authority).await;
        assert_eq!(answer.status, 403, "{from} {authority}");
        assert_eq!(answer.deny_reason().as_deref(), Some(reason), "{authority}");
    }
}

#[test]
fn names_are_grouped_by_registrable_domain_and_collapsed_from_wildcard_min() {
    let work = tempfile::tempdir().expect("tempdir");
    let lines: Vec<String> = [
        "a.cdn.example.com",
        "b.cdn.example.com",
        "c.cdn.example.com",
        "www.example.com",
        "x.example.co.uk",
        "y.example.co.uk",
    ]
    .iter()
    .map(|host| {
        line(&format!(
            "2026-12-07T10:00:00.000Z connect app1 {host} 443 deny"
        ))
    })
    .chain([line(
        "2026-12-07T10:00:00.000Z http app2 pkg.example.org 80 audit",
    )])
    .collect();
    let log = write_gzip(work.path(), "access.jsonl.gz", &lines);
    let suggest = |out: &str, extra: &[&str]| {
        let out = work.path().join(out);
        let mut args = vec![
            os("suggest"),
            os("--access-log"),
            log.as_os_str(),
            os("--out"),
            out.as_os_str(),
        ];
        args.extend(extra.iter().map(|s| os(s)));
        let (code, stdout, stderr) = run_cli(&args);
        assert_eq!(code, Some(0), "{stdout}{stderr}");
        stdout
    };
    let stdout = suggest("three", &[]);
    assert!(
        stdout.contains("  app1/example.com.yaml: *.cdn.example.com, www.example.com\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  app1/example.co.uk.yaml: x.example.co.uk, y.example.co.uk\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  app2/example.org.yaml: pkg.example.org\n"),
        "{stdout}"
    );
    let stdout = suggest("two", &["--wildcard-min", "2", "--namespace", "app1"]);
    assert!(
        stdout.contains("  app1/example.com.yaml: *.cdn.example.com, www.example.com\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  app1/example.co.uk.yaml: *.example.co.uk\n"),
        "{stdout}"
    );
    assert!(stdout.contains("1 of another namespace"), "{stdout}");
    assert!(!work.path().join("two/app2").exists());
    let stdout = suggest("four", &["--wildcard-min", "4"]);
    assert!(
        stdout.contains("  app1/example.com.yaml: *.example.com\n"),
        "{stdout}"
    );
    let web =
        std::fs::read_to_string(work.path().join("three/app2/example.org.yaml")).expect("file");
    assert!(
        web.contains("  - number: 80\n    name: http-80\n    protocol: HTTP\n"),
        "{web}"
    );
    assert!(web.contains("  exportTo:\n  - .\n"), "{web}");
}

#[test]
fn unusable_arguments_exit_2() {
    let work = tempfile::tempdir().expect("tempdir");
    let log = write_plain(
        work.path(),
        "a.jsonl",
        &[line(
            "2026-12-07T10:00:00.000Z connect app1 a.example.com 443 deny",
        )],
    );
    let invalid =
        ConfigDir::new("listeners: {connect: {address: \"127.0.0.1:0\"}}\nno_such_key: 1\n");
    let blocker = work.path().join("file");
    std::fs::write(&blocker, "").expect("write");
    // An --out with files in it, or a symlink (here to a folder a pipeline would run), is
    // refused before anything is read: suggest never overwrites or writes through a link.
    let used = work.path().join("used");
    std::fs::create_dir_all(used.join("app1")).expect("mkdir");
    std::fs::write(used.join("app1/example.com.yaml"), "hand-written\n").expect("write");
    let workflows = work.path().join("workflows");
    std::fs::create_dir(&workflows).expect("mkdir");
    let link = work.path().join("link");
    std::os::unix::fs::symlink(&workflows, &link).expect("symlink");
    for (extra, says) in [
        (vec![os("--namespace"), os("App1")], "--namespace"),
        (vec![os("--config"), invalid.path().as_os_str()], "INVALID"),
        (vec![os("--out"), blocker.as_os_str()], "is not a directory"),
        (vec![os("--out"), used.as_os_str()], "is not empty"),
        (vec![os("--out"), link.as_os_str()], "is not a directory"),
    ] {
        let mut args = vec![os("suggest"), os("--access-log"), log.as_os_str()];
        args.extend(extra);
        let (code, _, stderr) = run_cli(&args);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
    assert_eq!(
        std::fs::read_to_string(used.join("app1/example.com.yaml")).expect("read"),
        "hand-written\n"
    );
    assert_eq!(std::fs::read_dir(&workflows).expect("read").count(), 0);
    let (code, _, stderr) = run_cli(&[
        os("suggest"),
        os("--access-log"),
        log.as_os_str(),
        os("--wildcard-min"),
        os("1"),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
}
