//! Chaining to a parent proxy (`upstream.proxy`) with a real Squid from Debian's packages as the
//! parent: the gateway still decides on its own allowlist, then asks the parent for
//! `CONNECT host:port` with Basic credentials read from a file; a parent's refusal is
//! `parent_refused` (not `upstream_unreachable`), a parent that is down is
//! `upstream_unreachable`, a namespace routed `direct` dials itself, and the parent resolves
//! names (the gateway cannot resolve `*.parent.test`: only Squid's hosts file knows them).
//!
//! Needs `squid` (`apt-get install squid`; `.ci/run` installs it). Squid runs as its
//! `cache_effective_user`, so its folder is world-writable and lives only for the test.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

const APP3: &str = "127.0.0.4";
const APP4: &str = "127.0.0.5";
const PASSWORD: &str = "s3cret-parent-pass";

/// A Squid on 127.0.0.1 that requires `alice`'s password, lets `CONNECT` reach only
/// `origin.parent.test` (resolved from its own hosts file to 127.0.0.1), and denies the rest.
struct Squid {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Squid {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("squid dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777))
            .expect("chmod squid dir");
        let addr = free_port();
        let path = |name: &str| dir.path().join(name).display().to_string();
        let hash = Command::new("openssl")
            .args(["passwd", "-apr1", PASSWORD])
            .output()
            .expect("openssl passwd");
        let hash = String::from_utf8(hash.stdout).expect("utf8 hash");
        write(dir.path(), "passwd", &format!("alice:{}", hash.trim()));
        write(
            dir.path(),
            "hosts",
            "127.0.0.1 origin.parent.test blocked.parent.test\n",
        );
        let conf = format!(
            "http_port {addr}\npid_filename none\ncache deny all\nshutdown_lifetime 0 seconds\n\
             access_log stdio:{access}\ncache_log {cache}\nhosts_file {hosts}\n\
             dns_nameservers 127.0.0.1\n\
             auth_param basic program /usr/lib/squid/basic_ncsa_auth {passwd}\n\
             acl authed proxy_auth REQUIRED\nacl allowed_dst dstdomain origin.parent.test\n\
             http_access deny !authed\nhttp_access allow CONNECT allowed_dst\nhttp_access deny all\n",
            access = path("access.log"),
            cache = path("cache.log"),
            hosts = path("hosts"),
            passwd = path("passwd"),
        );
        write(dir.path(), "squid.conf", &conf);
        let child = Command::new("squid")
            .args(["-N", "-f"])
            .arg(dir.path().join("squid.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("squid must be installed (apt-get install squid)");
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "squid did not listen on {addr}: {}",
                std::fs::read_to_string(dir.path().join("cache.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, addr, dir }
    }

    /// Squid's access log: one line per request it saw.
    fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    /// Waits until Squid has logged a line containing `needle` (it writes at the request's end).
    fn wait_logged(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let log = self.access_log();
            if log.contains(needle) || Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Squid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write(dir: &Path, name: &str, content: &str) {
    let file = dir.join(name);
    std::fs::write(&file, content).expect("write");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
}

fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

/// app1 goes through Squid with the right password, app2 through a parent that is down, app3
/// through Squid with a wrong password, app4 directly.
fn gateway_config(squid: SocketAddr, down: SocketAddr) -> ConfigDir {
    let yaml = format!(
        "listeners:\n  connect: {{address: \"127.0.0.1:0\"}}\nadmin: {{address: \"127.0.0.1:0\"}}\n\
         identity:\n  sources:\n    - {{cidr: \"{APP1}/32\", namespace: app1}}\n\
         \x20   - {{cidr: \"{APP2}/32\", namespace: app2}}\n    - {{cidr: \"{APP3}/32\", namespace: app3}}\n\
         \x20   - {{cidr: \"{APP4}/32\", namespace: app4}}\n\
         upstream:\n  proxy: {{address: \"{squid}\", credentials_file: alice.txt}}\n  namespaces:\n\
         \x20   app2: {{proxy: {{address: \"{down}\"}}}}\n\
         \x20   app3: {{proxy: {{address: \"{squid}\", credentials_file: wrong.txt}}}}\n\
         \x20   app4: {{direct: true}}\n"
    );
    let config = ConfigDir::new(&yaml);
    std::fs::write(
        config.path().join("alice.txt"),
        format!("alice:{PASSWORD}\n"),
    )
    .expect("creds");
    std::fs::write(config.path().join("wrong.txt"), "alice:wrong\n").expect("creds");
    config
}

/// One entry per host: a TCP port carries no name to tell several hosts apart.
fn parent_entries(port: u16) -> String {
    ["origin", "blocked"]
        .map(|name| {
            entry_yaml(
                name,
                &format!(
                    "  hosts: [{name}.parent.test]\n  ports:\n    - {{number: {port}, name: tcp, protocol: TCP}}\n  resolution: DNS\n"
                ),
            )
        })
        .join("---\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn tunnels_go_through_the_parent_and_its_refusals_are_told_apart() {
    let echo = echo_server().await;
    let squid = Squid::start();
    let down = closed_port();
    let config = gateway_config(squid.addr, down);
    let port = echo.port();
    for ns in ["app1", "app2", "app3"] {
        config.entry(&format!("{ns}/parent.yaml"), &parent_entries(port));
    }
    config.entry(
        "app4/direct.yaml",
        &static_entry("direct", "direct.parent.test", 9000, "TCP", echo),
    );
    let gw = Gateway::start(&config);
    let proxy = gw.addr("connect");
    let parent = squid.addr.to_string();

    // Allowed by the gateway and by the parent: the tunnel carries bytes; the gateway never
    // resolved the name (it cannot), Squid did, and Squid saw alice's credentials.
    let authority = format!("origin.parent.test:{port}");
    let mut tunnel = open_tunnel(APP1, proxy, &authority).await;
    echo_roundtrip(&mut tunnel, b"through the parent")
        .await
        .expect("echo through the parent");
    drop(tunnel);
    let line = gw.wait_access_log(|l| l["namespace"] == "app1" && l["decision"] == "allow");
    assert_eq!(line["parent"], parent.as_str(), "{line}");
    assert_eq!(line["upstream"], parent.as_str(), "{line}");
    let log = squid.wait_logged("TCP_TUNNEL/200 ");
    assert!(
        log.contains(&format!("CONNECT {authority} alice")),
        "squid saw: {log}"
    );

    // Allowed by the gateway, refused by the parent's policy: parent_refused, a 403.
    let answer = connect_request(APP1, proxy, &format!("blocked.parent.test:{port}")).await;
    assert_eq!(answer.status, 403, "{}", answer.head);
    assert_eq!(answer.deny_reason().as_deref(), Some("parent_refused"));
    assert!(squid
        .wait_logged("TCP_DENIED/403")
        .contains("blocked.parent.test"));

    // Refused by the gateway itself: the parent never hears of it.
    let answer = connect_request(APP1, proxy, &format!("elsewhere.parent.test:{port}")).await;
    assert_eq!(answer.deny_reason().as_deref(), Some("not_allowlisted"));

    // A wrong password (407 from the parent) is also the parent refusing.
    let answer = connect_request(APP3, proxy, &authority).await;
    assert_eq!(answer.status, 403, "{}", answer.head);
    assert_eq!(answer.deny_reason().as_deref(), Some("parent_refused"));

    // The parent is down: the upstream is unreachable, and the log names the parent.
    let answer = connect_request(APP2, proxy, &authority).await;
    assert_eq!(answer.status, 502, "{}", answer.head);
    assert_eq!(
        answer.deny_reason().as_deref(),
        Some("upstream_unreachable")
    );
    let line = gw.wait_access_log(|l| l["namespace"] == "app2");
    assert_eq!(line["parent"], down.to_string().as_str(), "{line}");

    // A namespace routed `direct` dials the destination itself.
    let mut tunnel = open_tunnel(APP4, proxy, "direct.parent.test:9000").await;
    echo_roundtrip(&mut tunnel, b"direct").await.expect("echo");
    drop(tunnel);
    let line = gw.wait_access_log(|l| l["namespace"] == "app4" && l["decision"] == "allow");
    assert_eq!(line["parent"], serde_json::Value::Null, "{line}");
    assert_eq!(line["upstream"], echo.to_string().as_str(), "{line}");

    assert!(
        !squid.access_log().contains("elsewhere"),
        "{}",
        squid.access_log()
    );
    let outcomes = [
        (parent.as_str(), "connected", 1.0),
        (parent.as_str(), "parent_refused", 2.0),
        (&down.to_string(), "upstream_unreachable", 1.0),
    ];
    for (parent, outcome, want) in outcomes {
        let labels = [("parent", parent), ("outcome", outcome)];
        let got = gw.metric("egress_parent_connects_total", &labels);
        assert_eq!(got, Some(want), "parent {parent} outcome {outcome}");
    }
    // The password never reaches a log, in the clear or encoded.
    let encoded = "YWxpY2U6czNjcmV0LXBhcmVudC1wYXNz";
    for line in gw.logs().iter().chain(
        squid
            .access_log()
            .lines()
            .map(str::to_owned)
            .collect::<Vec<_>>()
            .iter(),
    ) {
        assert!(
            !line.contains(PASSWORD) && !line.contains(encoded),
            "{line}"
        );
    }
}

fn cli(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_egress-gateway"))
        .args(args)
        .arg("--config")
        .arg(dir)
        .output()
        .expect("run the CLI")
}

#[test]
fn check_names_a_bad_parent_and_explain_shows_the_parent() {
    let config = ConfigDir::new(
        "listeners:\n  connect: {address: \"127.0.0.1:0\"}\nupstream:\n  proxy: {address: \"proxy.corp.example\"}\n  namespaces:\n    app2: {proxy: {address: \"proxy.corp.example:3128\", credentials_file: missing.txt}}\n",
    );
    let output = cli(&["check"], config.path());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("gateway.yaml:")
            && stderr
                .contains("upstream.proxy: parent proxy `proxy.corp.example` is not host:port"),
        "{stderr}"
    );
    assert!(
        stderr.contains("upstream.namespaces.app2.proxy: credentials_file"),
        "{stderr}"
    );

    let config = ConfigDir::new(
        "listeners:\n  connect: {address: \"127.0.0.1:0\"}\nupstream:\n  proxy: {address: \"proxy.corp.example:3128\"}\n",
    );
    config.entry("app1/api.yaml", &entry_yaml("api", "  hosts: [api.example.com]\n  ports:\n    - {number: 443, name: https, protocol: HTTPS}\n  resolution: DNS\n"));
    let output = cli(
        &[
            "explain",
            "--namespace",
            "app1",
            "--host",
            "api.example.com",
        ],
        config.path(),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("via parent proxy proxy.corp.example:3128: CONNECT api.example.com:443"),
        "{stdout}"
    );
}
