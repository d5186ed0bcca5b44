//! Cluster in a box (issue 8): the real gateway binary in a network namespace that routes tenant
//! "pods" (more namespaces), with iptables REDIRECT to the transparent listeners, a real DNS
//! server (dnsmasq), HTTP/HTTPS origins in an "internet" namespace, a DNS-rebinding responder, a
//! DNS server that never answers, and a canary on the gateway's own loopback.
//! The box is built and removed by `tests/e2e/cluster.sh`; this test drives curl inside the pods
//! and checks what the pods see, the gateway's access log, and what the origins and the canary saw.
//!
//! Needs root, `ip netns`, iptables, dnsmasq, curl, openssl, python3. Where those are missing
//! the test fails loudly, unless `EGRESS_E2E=skip`, in which case it prints `SKIPPED: <reason>`
//! and returns. `EGRESS_E2E_KEEP=1` leaves the box (and its logs) up after the run.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/cluster.sh");
const BIN: &str = env!("CARGO_BIN_EXE_egress-gateway");
/// Where cluster.sh keeps certificates, logs and PID files (set for the script, too).
const STATE: &str = "/run/egress-gateway-box";
/// Held (as a directory holding our PID) while a run owns the box: the box is global state.
const RUN_LOCK: &str = "/run/egress-gateway-e2e.lock.d";
const WAIT: Duration = Duration::from_secs(15);

const APP1_A: Pod = Pod {
    ns: "eg-app1-a",
    addr: "198.51.100.17",
};
const APP1_B: Pod = Pod {
    ns: "eg-app1-b",
    addr: "198.51.100.18",
};
const APP2_A: Pod = Pod {
    ns: "eg-app2-a",
    addr: "198.51.100.33",
};
const GW_NS: &str = "eg-gw";
const PROXY: &str = "http://192.0.2.1:3128";
const PROXY_TLS: &str = "https://192.0.2.1:3129";
const DEAD_DNS_PROXY: &str = "http://192.0.2.1:3138";
const API: &str = "203.0.113.10";
const WEB: &str = "203.0.113.11";
const REBIND_PUBLIC: &str = "203.0.113.13";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone, Copy)]
struct Pod {
    ns: &'static str,
    addr: &'static str,
}

// ---------------------------------------------------------------------------------------------
// Preconditions, lock, the box
// ---------------------------------------------------------------------------------------------

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Why the box cannot be built here, if it cannot.
fn unavailable() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().nth(1).map(str::to_owned));
    if euid.as_deref() != Some("0") {
        return Some(format!(
            "not root (effective uid {})",
            euid.unwrap_or_default()
        ));
    }
    let missing: Vec<&str> = [
        "ip", "iptables", "dnsmasq", "curl", "openssl", "python3", "flock", "getent",
    ]
    .into_iter()
    .filter(|tool| !have(tool))
    .collect();
    if !missing.is_empty() {
        return Some(format!(
            "missing tools: {} (Debian: apt-get install -y iproute2 iptables dnsmasq-base curl openssl python3 util-linux)",
            missing.join(" ")
        ));
    }
    let probe = format!("eg-probe-{}", std::process::id());
    let added = Command::new("ip")
        .args(["netns", "add", &probe])
        .output()
        .expect("run ip");
    if !added.status.success() {
        return Some(format!(
            "cannot create network namespaces: {}",
            String::from_utf8_lossy(&added.stderr).trim()
        ));
    }
    let _ = Command::new("ip").args(["netns", "del", &probe]).status();
    None
}

/// The whole-run lock: a directory holding the owner's PID; a dead owner's lock is taken over.
struct RunLock;

impl RunLock {
    fn take() -> Self {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            match std::fs::create_dir(RUN_LOCK) {
                Ok(()) => {
                    std::fs::write(
                        Path::new(RUN_LOCK).join("pid"),
                        std::process::id().to_string(),
                    )
                    .expect("write lock pid");
                    return Self;
                }
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                    std::thread::sleep(Duration::from_millis(200));
                    let owner = std::fs::read_to_string(Path::new(RUN_LOCK).join("pid"))
                        .unwrap_or_default();
                    let alive = !owner.trim().is_empty()
                        && Path::new(&format!("/proc/{}", owner.trim())).exists();
                    if !alive {
                        // Owner gone (or still writing its PID: give that a moment first).
                        std::thread::sleep(Duration::from_millis(300));
                        let again = std::fs::read_to_string(Path::new(RUN_LOCK).join("pid"))
                            .unwrap_or_default();
                        if again == owner {
                            let _ = std::fs::remove_dir_all(RUN_LOCK);
                        }
                    }
                    assert!(
                        Instant::now() < deadline,
                        "another e2e run (pid {owner}) holds {RUN_LOCK}"
                    );
                }
                Err(err) => panic!("cannot create {RUN_LOCK}: {err}"),
            }
        }
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(RUN_LOCK);
    }
}

fn script(args: &[&str]) -> Output {
    Command::new("bash")
        .arg(SCRIPT)
        .args(args)
        .env("EG_BOX_STATE", STATE)
        .stdin(Stdio::null())
        .output()
        .expect("run cluster.sh")
}

/// The box; `cluster.sh down` on drop (also when the test panics).
struct BoxGuard;

impl BoxGuard {
    fn up() -> Self {
        let started = Instant::now();
        let out = script(&["up"]);
        assert!(
            out.status.success(),
            "cluster.sh up failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("e2e: box up in {:?}", started.elapsed());
        Self
    }
}

impl Drop for BoxGuard {
    fn drop(&mut self) {
        if std::env::var("EGRESS_E2E_KEEP").is_ok_and(|v| v == "1") {
            eprintln!("e2e: EGRESS_E2E_KEEP=1: box left up; remove it with {SCRIPT} down");
            return;
        }
        let out = script(&["down"]);
        if !out.status.success() {
            eprintln!(
                "e2e: cluster.sh down failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

fn state(file: &str) -> String {
    format!("{STATE}/{file}")
}

// ---------------------------------------------------------------------------------------------
// The gateway, run inside eg-gw
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Lines {
    lines: Mutex<Vec<String>>,
    changed: Condvar,
}

impl Lines {
    fn spawn_reader(self: &Arc<Self>, stream: impl Read + Send + 'static) {
        let lines = self.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                lines.lines.lock().expect("lock").push(line);
                lines.changed.notify_all();
            }
        });
    }

    fn snapshot(&self) -> Vec<String> {
        self.lines.lock().expect("lock").clone()
    }

    fn len(&self) -> usize {
        self.lines.lock().expect("lock").len()
    }

    /// The first line at index `from` or later satisfying `pred`, waiting up to `within`.
    fn wait(&self, from: usize, within: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + within;
        let mut lines = self.lines.lock().expect("lock");
        loop {
            if let Some(line) = lines.iter().skip(from).find(|l| pred(l)) {
                return Some(line.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            lines = self.changed.wait_timeout(lines, left).expect("lock").0;
        }
    }
}

struct Gateway {
    name: &'static str,
    child: Child,
    stdout: Arc<Lines>,
    stderr: Arc<Lines>,
    _config: tempfile::TempDir,
}

impl Gateway {
    /// Writes `gateway_yaml` and `entries` (path under serviceentries/, content) to a fresh
    /// directory and runs the gateway on it inside eg-gw, waiting until it is ready.
    fn start(name: &'static str, gateway_yaml: &str, entries: &[(&str, String)]) -> Self {
        let config = tempfile::Builder::new()
            .prefix("egress-e2e-")
            .tempdir()
            .expect("temp dir");
        std::fs::write(config.path().join("gateway.yaml"), gateway_yaml).expect("gateway.yaml");
        for (relative, content) in entries {
            let path = config.path().join("serviceentries").join(relative);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, content).expect("write entry");
        }
        let mut child = Command::new("ip")
            .args(["netns", "exec", GW_NS, BIN, "--log-format", "json", "run"])
            .arg("--config")
            .arg(config.path())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the gateway in eg-gw");
        let stdout = Arc::new(Lines::default());
        let stderr = Arc::new(Lines::default());
        stdout.spawn_reader(child.stdout.take().expect("stdout"));
        stderr.spawn_reader(child.stderr.take().expect("stderr"));
        let gateway = Self {
            name,
            child,
            stdout,
            stderr,
            _config: config,
        };
        let ready = gateway.stderr.wait(0, WAIT, |l| {
            l.contains("gateway ready") || l.contains("\"ERROR\"")
        });
        assert!(
            ready
                .as_deref()
                .is_some_and(|l| l.contains("gateway ready")),
            "gateway {name} did not start:\n{}",
            gateway.stderr.snapshot().join("\n")
        );
        gateway
    }

    fn config_dir(&self) -> &Path {
        self._config.path()
    }

    /// Index of the next access-log line.
    fn mark(&self) -> usize {
        self.stdout.len()
    }

    /// The first access-log line at index `from` or later matching `pred`, parsed.
    fn access_after(&self, from: usize, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        self.stdout
            .wait(from, Duration::from_secs(5), |l| {
                serde_json::from_str::<Value>(l).is_ok_and(|v| pred(&v))
            })
            .map(|l| serde_json::from_str(&l).expect("json"))
    }

    fn access_log(&self) -> Vec<Value> {
        self.stdout
            .snapshot()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// `GET /metrics` from inside eg-gw (the admin listener is on the gateway's loopback).
    fn metrics(&self) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", GW_NS, "curl", "-sS", "--max-time", "5"])
            .arg("http://127.0.0.1:9901/metrics")
            .output()
            .expect("curl metrics");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() || std::env::var("EGRESS_E2E_VERBOSE").is_ok() {
            eprintln!(
                "--- gateway {} stderr ---\n{}\n--- gateway {} access log ---\n{}",
                self.name,
                self.stderr.snapshot().join("\n"),
                self.name,
                self.stdout.snapshot().join("\n")
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// curl in a pod
// ---------------------------------------------------------------------------------------------

struct Curl {
    exit: i32,
    status: u16,
    /// Response head(s) and body as curl printed them (`-D -` puts heads on stdout).
    out: String,
    err: String,
    took: Duration,
}

impl Curl {
    fn deny_reason(&self) -> Option<&str> {
        self.out.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("x-egress-deny-reason")
                .then(|| value.trim())
        })
    }

    fn alert_access_denied(&self) -> bool {
        self.exit == 35 && self.err.contains("alert access denied")
    }
}

impl std::fmt::Display for Curl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {} status {} in {:?}\nstdout: {}\nstderr: {}",
            self.exit,
            self.status,
            self.took,
            self.out.trim(),
            self.err.trim()
        )
    }
}

/// Runs `curl -sS -D - <args>` in `pod` with no proxy settings unless `env` adds them; the last
/// stdout line is the status code.
fn curl(pod: Pod, env: &[(&str, &str)], args: &[&str]) -> Curl {
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", pod.ns, "curl", "-sS", "-D", "-"])
        .args(["--max-time", "10", "-w", "\n%{http_code}"])
        .args(args)
        .stdin(Stdio::null());
    for var in [
        "http_proxy",
        "https_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
        "no_proxy",
        "NO_PROXY",
    ] {
        command.env_remove(var);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    let started = Instant::now();
    let output = command.output().expect("run curl in the pod");
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let (out, status) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    Curl {
        exit: output.status.code().unwrap_or(-1),
        status: status.trim().parse().unwrap_or(0),
        out: out.to_owned(),
        err: String::from_utf8_lossy(&output.stderr).into_owned(),
        took,
    }
}

fn cacert() -> String {
    state("ca.pem")
}

/// A curl through the plaintext CONNECT listener, tunnelled (`-p`).
fn via_connect(pod: Pod, url: &str) -> Curl {
    let ca = cacert();
    curl(pod, &[], &["-p", "-x", PROXY, "--cacert", &ca, url])
}

/// A curl through the mTLS listener with `tenant`'s workload certificate.
fn via_mtls(pod: Pod, tenant: &str, url: &str) -> Curl {
    let (ca, cert, key) = (
        cacert(),
        state(&format!("{tenant}.pem")),
        state(&format!("{tenant}-key.pem")),
    );
    curl(
        pod,
        &[],
        &[
            "--proxy",
            PROXY_TLS,
            "--proxy-cacert",
            &ca,
            "--proxy-cert",
            &cert,
            "--proxy-key",
            &key,
            "--cacert",
            &ca,
            url,
        ],
    )
}

// ---------------------------------------------------------------------------------------------
// Checks: every failure is collected, the test fails at the end listing all of them
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Checks {
    failed: Vec<String>,
    passed: usize,
}

impl Checks {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) -> bool {
        if ok {
            self.passed += 1;
        } else {
            let what = what();
            eprintln!("e2e: FAILED: {what}");
            self.failed.push(what);
        }
        ok
    }

    /// Waits for the access-log line of the connection just made from `pod` to `host` (at index
    /// `from` or later) and checks its fields against `expect` (`null` for absent).
    fn access(
        &mut self,
        gw: &Gateway,
        from: usize,
        pod: Pod,
        host: &str,
        expect: &[(&str, Value)],
    ) {
        let src_prefix = format!("{}:", pod.addr);
        let line = gw.access_after(from, |v| {
            v["host"] == host
                && v["src"]
                    .as_str()
                    .is_some_and(|s| s.starts_with(&src_prefix))
        });
        let Some(line) = line else {
            self.check(false, || {
                format!(
                    "[{}] no access-log line for {host} from {}; lines since #{from}:\n{}",
                    gw.name,
                    pod.addr,
                    gw.stdout.snapshot()[from.min(gw.mark())..].join("\n")
                )
            });
            return;
        };
        let wrong: Vec<String> = expect
            .iter()
            .filter(|(key, value)| &line[*key] != value)
            .map(|(key, value)| format!("{key}: want {value}, got {}", line[*key]))
            .collect();
        self.check(wrong.is_empty(), || {
            format!(
                "[{}] access log for {host} from {}: {}\n  line: {line}",
                gw.name,
                pod.addr,
                wrong.join("; ")
            )
        });
    }
}

fn s(v: &str) -> Value {
    Value::from(v)
}

fn read_jsonl(path: &str) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn is_forbidden_upstream(upstream: &str) -> bool {
    let ip = upstream
        .rsplit_once(':')
        .map_or(upstream, |(ip, _)| ip)
        .trim_matches(['[', ']']);
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => {
            v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified()
        }
        Ok(std::net::IpAddr::V6(v6)) => {
            v6.to_ipv4_mapped().is_some() || v6.is_loopback() || v6.is_unspecified()
        }
        Err(_) => true,
    }
}

// ---------------------------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------------------------

fn gateway_yaml() -> String {
    format!(
        r#"listeners:
  connect: {{address: "192.0.2.1:3128"}}
  connect_tls: {{address: "192.0.2.1:3129"}}
  sni: {{address: "198.51.100.1:15443", port: 443}}
  http: {{address: "198.51.100.1:15080", port: 80}}
admin: {{address: "127.0.0.1:9901"}}
tls: {{cert: {gw}, key: {gw_key}, client_ca: {ca}}}
identity:
  trust_domain: cluster.local
  sources:
    - {{cidr: "198.51.100.16/28", namespace: app1}}
    - {{cidr: "198.51.100.32/28", namespace: app2}}
dns:
  servers: ["203.0.113.53:53"]
timeouts: {{connect: {connect}s}}
"#,
        gw = state("gateway.pem"),
        gw_key = state("gateway-key.pem"),
        ca = state("ca.pem"),
        connect = CONNECT_TIMEOUT.as_secs(),
    )
}

fn entry(name: &str, hosts: &[&str], ports: &[(u16, &str)]) -> String {
    let hosts: Vec<String> = hosts.iter().map(|h| format!("\"{h}\"")).collect();
    let ports: Vec<String> = ports
        .iter()
        .map(|(n, p)| {
            format!(
                "{{number: {n}, name: {}-{n}, protocol: {p}}}",
                p.to_lowercase()
            )
        })
        .collect();
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}}}\nspec:\n  hosts: [{}]\n  ports: [{}]\n  resolution: DNS\n",
        hosts.join(", "),
        ports.join(", ")
    )
}

fn app1_entries() -> String {
    [
        entry("api", &["api.example.test"], &[(443, "HTTPS")]),
        entry(
            "web",
            &["web.example.test"],
            &[(80, "HTTP"), (8080, "HTTP")],
        ),
        // Allowlisted on purpose: their DNS answers are what the gateway must refuse.
        entry(
            "attacks",
            &[
                "private.example.test",
                "metadata.example.test",
                "loopback.example.test",
                "mapped.example.test",
                "rebind.example.test",
            ],
            &[(443, "HTTPS"), (80, "HTTP")],
        ),
    ]
    .join("---\n")
}

fn app2_entries(with_api: bool) -> String {
    let mut docs = vec![entry(
        "other",
        &["other.example.test"],
        &[(443, "HTTPS"), (80, "HTTP")],
    )];
    if with_api {
        docs.push(entry("api", &["api.example.test"], &[(443, "HTTPS")]));
    }
    docs.join("---\n")
}

// ---------------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------------

#[test]
fn cluster_in_a_box() {
    if let Some(reason) = unavailable() {
        if std::env::var("EGRESS_E2E").is_ok_and(|v| v == "skip") {
            // Straight to the stderr descriptor: the test harness captures `eprintln!` of a
            // passing test, and this line must be seen.
            let _ = writeln!(
                std::io::stderr(),
                "\n**********\nSKIPPED: cluster-in-a-box e2e (tests/e2e.rs): {reason}\n**********"
            );
            return;
        }
        panic!(
            "\n\ncluster-in-a-box e2e cannot run here: {reason}.\nIt needs root, ip netns, iptables, dnsmasq, curl, openssl and python3.\nSet EGRESS_E2E=skip to skip it explicitly (it then prints SKIPPED).\n"
        );
    }
    let started = Instant::now();
    let _lock = RunLock::take();
    let _box = BoxGuard::up();
    let mut c = Checks::default();

    let gw = Gateway::start(
        "main",
        &gateway_yaml(),
        &[
            ("app1/egress.yaml", app1_entries()),
            ("app2/egress.yaml", app2_entries(false)),
        ],
    );
    let ca = cacert();

    transparent(&mut c, &gw, &ca);
    explicit(&mut c, &gw);
    resolution_attacks(&mut c, &gw, &ca);
    hot_reload(&mut c, &gw, &ca);
    no_dns_answer(&mut c);

    // Whatever happened above: no access-log line names a forbidden upstream, the canary on
    // the gateway's loopback saw nothing, and the origins saw only the gateway, never a pod.
    for line in gw.access_log() {
        if let Some(upstream) = line["upstream"].as_str() {
            c.check(!is_forbidden_upstream(upstream), || {
                format!("a forbidden address was dialled: {line}")
            });
        }
    }
    let canary = read_jsonl(&state("logs/canary.jsonl"));
    c.check(canary.is_empty(), || {
        format!("the gateway's loopback canary was reached: {canary:?}")
    });
    let origin = read_jsonl(&state("logs/origin.jsonl"));
    c.check(!origin.is_empty(), || "the origins saw no request".into());
    for request in &origin {
        c.check(
            request["peer"]
                .as_str()
                .is_some_and(|p| p.starts_with("192.0.2.1:")),
            || format!("an origin was reached other than through the gateway: {request}"),
        );
    }
    let metrics = gw.metrics();
    c.check(
        metrics.lines().any(|l| {
            l.starts_with("egress_connections_total{")
                && l.contains("listener=\"sni\"")
                && l.contains("namespace=\"app1\"")
                && l.contains("decision=\"allow\"")
        }),
        || "egress_connections_total has no sni/app1/allow series".into(),
    );

    drop(gw);
    eprintln!(
        "e2e: {} checks passed, {} failed, in {:?}",
        c.passed,
        c.failed.len(),
        started.elapsed()
    );
    assert!(
        c.failed.is_empty(),
        "{} cluster-in-a-box check(s) failed:\n- {}",
        c.failed.len(),
        c.failed.join("\n- ")
    );
}

/// Plain curls in the pods, redirected to the `sni`/`http` listeners; the port comes from
/// SO_ORIGINAL_DST; names are resolved by the box DNS (in the pod and in the gateway).
fn transparent(c: &mut Checks, gw: &Gateway, ca: &str) {
    // app1 may reach api.example.test:443 (TLS passthrough; the pod verifies the origin's cert).
    let mark = gw.mark();
    let r = curl(APP1_A, &[], &["--cacert", ca, "https://api.example.test/"]);
    c.check(
        r.exit == 0
            && r.status == 200
            && r.out
                .contains("host=api.example.test local=203.0.113.10:443"),
        || format!("transparent https app1 -> api: {r}"),
    );
    c.access(
        gw,
        mark,
        APP1_A,
        "api.example.test",
        &[
            ("listener", s("sni")),
            ("namespace", s("app1")),
            ("identity", s(APP1_A.addr)),
            ("port", 443.into()),
            ("sni", s("api.example.test")),
            ("decision", s("allow")),
            ("service_entry", s("app1/api")),
            ("upstream", s(&format!("{API}:443"))),
        ],
    );

    // A second pod of the same tenant, plain HTTP on port 80 and on 8080 (SO_ORIGINAL_DST).
    for (pod, url, port) in [
        (APP1_B, "http://web.example.test/", 80),
        (APP1_A, "http://web.example.test:8080/", 8080),
    ] {
        let mark = gw.mark();
        let r = curl(pod, &[], &[url]);
        c.check(
            r.exit == 0 && r.status == 200 && r.out.contains(&format!("local={WEB}:{port}")),
            || format!("transparent {url} from {}: {r}", pod.ns),
        );
        c.access(
            gw,
            mark,
            pod,
            "web.example.test",
            &[
                ("listener", s("http")),
                ("namespace", s("app1")),
                ("port", port.into()),
                ("decision", s("allow")),
                ("service_entry", s("app1/web")),
                ("upstream", s(&format!("{WEB}:{port}"))),
            ],
        );
    }

    // The original destination port is what is decided on: 8443 is not allowlisted.
    let mark = gw.mark();
    let r = curl(
        APP1_A,
        &[],
        &["--cacert", ca, "https://api.example.test:8443/"],
    );
    c.check(r.alert_access_denied(), || {
        format!("transparent https api:8443 must get the access_denied alert: {r}")
    });
    c.access(
        gw,
        mark,
        APP1_A,
        "api.example.test",
        &[
            ("listener", s("sni")),
            ("port", 8443.into()),
            ("decision", s("deny")),
            ("reason", s("port_not_allowed")),
            ("upstream", Value::Null),
        ],
    );

    // The other tenant: TLS alert access_denied, and 403 on plain HTTP.
    let mark = gw.mark();
    let r = curl(APP2_A, &[], &["--cacert", ca, "https://api.example.test/"]);
    c.check(r.alert_access_denied(), || {
        format!("transparent https app2 -> api must get the access_denied alert: {r}")
    });
    c.access(
        gw,
        mark,
        APP2_A,
        "api.example.test",
        &[
            ("listener", s("sni")),
            ("namespace", s("app2")),
            ("decision", s("deny")),
            ("reason", s("not_allowlisted")),
            ("upstream", Value::Null),
        ],
    );
    let mark = gw.mark();
    let r = curl(APP2_A, &[], &["http://web.example.test/"]);
    c.check(
        r.status == 403 && r.deny_reason() == Some("not_allowlisted"),
        || format!("transparent http app2 -> web must be 403 not_allowlisted: {r}"),
    );
    c.access(
        gw,
        mark,
        APP2_A,
        "web.example.test",
        &[
            ("listener", s("http")),
            ("namespace", s("app2")),
            ("decision", s("deny")),
            ("reason", s("not_allowlisted")),
        ],
    );
    // ...while app2's own entry works for it.
    let r = curl(
        APP2_A,
        &[],
        &["--cacert", ca, "https://other.example.test/"],
    );
    c.check(r.exit == 0 && r.status == 200, || {
        format!("transparent https app2 -> other: {r}")
    });

    // No way around the gateway: a port that is not redirected goes nowhere.
    let r = curl(
        APP2_A,
        &[],
        &["--connect-timeout", "1", "http://203.0.113.10:9000/"],
    );
    c.check(r.exit != 0 && r.status == 0, || {
        format!("a pod reached the internet around the gateway: {r}")
    });
}

/// HTTPS_PROXY (plaintext CONNECT listener) and the mTLS listener with workload certificates.
fn explicit(c: &mut Checks, gw: &Gateway) {
    let ca = cacert();
    for (pod, ns, allowed) in [(APP1_A, "app1", true), (APP2_A, "app2", false)] {
        let mark = gw.mark();
        let r = curl(
            pod,
            &[("HTTPS_PROXY", PROXY)],
            &["--cacert", &ca, "https://api.example.test/"],
        );
        let ok = if allowed {
            r.exit == 0 && r.status == 200 && r.out.contains("host=api.example.test")
        } else {
            r.exit == 56 && r.out.contains(" 403 ") && r.deny_reason() == Some("not_allowlisted")
        };
        c.check(ok, || {
            format!("HTTPS_PROXY {ns} -> api (allowed: {allowed}): {r}")
        });
        let mut expect = vec![
            ("listener", s("connect")),
            ("namespace", s(ns)),
            ("identity", s(pod.addr)),
            ("port", 443.into()),
        ];
        if allowed {
            expect.extend([
                ("decision", s("allow")),
                ("sni", s("api.example.test")),
                ("upstream", s(&format!("{API}:443"))),
            ]);
        } else {
            expect.extend([("decision", s("deny")), ("reason", s("not_allowlisted"))]);
        }
        c.access(gw, mark, pod, "api.example.test", &expect);

        let mark = gw.mark();
        let r = via_mtls(pod, ns, "https://api.example.test/");
        let ok = if allowed {
            r.exit == 0 && r.status == 200 && r.out.contains("host=api.example.test")
        } else {
            r.exit == 56 && r.out.contains(" 403 ") && r.deny_reason() == Some("not_allowlisted")
        };
        c.check(ok, || {
            format!("mTLS proxy {ns} -> api (allowed: {allowed}): {r}")
        });
        let mut expect = vec![
            ("listener", s("connect_tls")),
            ("namespace", s(ns)),
            (
                "identity",
                s(&format!("spiffe://cluster.local/ns/{ns}/sa/default")),
            ),
        ];
        if allowed {
            expect.extend([
                ("decision", s("allow")),
                ("upstream", s(&format!("{API}:443"))),
            ]);
        } else {
            expect.extend([("decision", s("deny")), ("reason", s("not_allowlisted"))]);
        }
        c.access(gw, mark, pod, "api.example.test", &expect);
    }
}

/// Names that resolve to private, metadata, loopback and IPv4-mapped loopback addresses, and a
/// name whose answer flips between a public and a forbidden address (TTL 0) on every lookup.
fn resolution_attacks(c: &mut Checks, gw: &Gateway, ca: &str) {
    for name in ["private", "metadata", "loopback", "mapped"] {
        let host = format!("{name}.example.test");
        let mark = gw.mark();
        let r = via_connect(APP1_A, &format!("https://{host}/"));
        c.check(
            r.exit == 56 && r.out.contains(" 403 ") && r.deny_reason() == Some("forbidden_address"),
            || format!("CONNECT {host}: want 403 forbidden_address: {r}"),
        );
        c.access(
            gw,
            mark,
            APP1_A,
            &host,
            &[
                ("listener", s("connect")),
                ("decision", s("deny")),
                ("reason", s("forbidden_address")),
                ("upstream", Value::Null),
            ],
        );
    }
    // Absolute-form HTTP through the proxy, and the transparent listeners (the pod's own lookup
    // pinned to a box address with --resolve, as if its DNS had said something harmless).
    let mark = gw.mark();
    let r = curl(APP1_A, &[], &["-x", PROXY, "http://loopback.example.test/"]);
    c.check(
        r.status == 403 && r.deny_reason() == Some("forbidden_address"),
        || format!("absolute-form http://loopback.example.test/: want 403: {r}"),
    );
    c.access(
        gw,
        mark,
        APP1_A,
        "loopback.example.test",
        &[("reason", s("forbidden_address"))],
    );
    for name in ["metadata", "private"] {
        let host = format!("{name}.example.test");
        let mark = gw.mark();
        let pin = format!("{host}:443:{API}");
        let r = curl(
            APP1_A,
            &[],
            &[
                "--cacert",
                ca,
                "--resolve",
                &pin,
                &format!("https://{host}/"),
            ],
        );
        c.check(r.alert_access_denied(), || {
            format!("transparent https {host}: want the access_denied alert: {r}")
        });
        c.access(
            gw,
            mark,
            APP1_A,
            &host,
            &[
                ("listener", s("sni")),
                ("decision", s("deny")),
                ("reason", s("forbidden_address")),
                ("upstream", Value::Null),
            ],
        );
        let mark = gw.mark();
        let pin = format!("{host}:80:{WEB}");
        let r = curl(
            APP1_A,
            &[],
            &["--resolve", &pin, &format!("http://{host}/")],
        );
        c.check(
            r.status == 403 && r.deny_reason() == Some("forbidden_address"),
            || format!("transparent http {host}: want 403 forbidden_address: {r}"),
        );
        c.access(
            gw,
            mark,
            APP1_A,
            &host,
            &[("listener", s("http")), ("reason", s("forbidden_address"))],
        );
    }

    // DNS rebinding: each lookup of rebind.example.test alternates 203.0.113.13 and a forbidden
    // address. Whatever the order, an allowed connection went to 203.0.113.13, a denied one
    // dialled nothing.
    let origin_before = read_jsonl(&state("logs/origin.jsonl")).len();
    let mark = gw.mark();
    let pin = format!("rebind.example.test:443:{API}");
    let mut outcomes = Vec::new();
    for round in 0..4 {
        outcomes.push((
            "connect",
            curl(
                APP1_A,
                &[],
                &["-p", "-x", PROXY, "http://rebind.example.test/"],
            ),
        ));
        outcomes.push((
            "absolute",
            curl(APP1_A, &[], &["-x", PROXY, "http://rebind.example.test/"]),
        ));
        if round < 2 {
            outcomes.push((
                "sni",
                curl(
                    APP1_A,
                    &[],
                    &[
                        "--cacert",
                        ca,
                        "--resolve",
                        &pin,
                        "https://rebind.example.test/",
                    ],
                ),
            ));
        }
    }
    for (how, r) in &outcomes {
        let allowed = r.exit == 0 && r.status == 200;
        let refused = r.deny_reason() == Some("forbidden_address") || r.alert_access_denied();
        c.check(allowed != refused, || {
            format!("rebind via {how}: neither a clean allow nor forbidden_address: {r}")
        });
        if allowed {
            c.check(r.out.contains(&format!("local={REBIND_PUBLIC}:")), || {
                format!("rebind via {how} was answered by the wrong origin: {r}")
            });
        }
    }
    // Let the last lines land, then look at every rebind line.
    let _ = gw.access_after(mark, |_| false);
    let lines: Vec<Value> = gw.access_log()[mark..]
        .iter()
        .filter(|v| v["host"] == "rebind.example.test")
        .cloned()
        .collect();
    c.check(lines.len() == outcomes.len(), || {
        format!(
            "rebind: {} requests but {} access-log lines",
            outcomes.len(),
            lines.len()
        )
    });
    let mut seen = BTreeSet::new();
    for line in &lines {
        let upstream = line["upstream"].as_str().unwrap_or("");
        if line["decision"] == "allow" {
            seen.insert("allow");
            c.check(upstream.starts_with(&format!("{REBIND_PUBLIC}:")), || {
                format!("rebind: allowed connection dialled {upstream}: {line}")
            });
        } else {
            seen.insert("deny");
            c.check(
                line["reason"] == "forbidden_address" && line["upstream"].is_null(),
                || format!("rebind: a deny must be forbidden_address with no upstream: {line}"),
            );
        }
    }
    c.check(seen.len() == 2, || {
        format!("rebind: the answers did not alternate as planned (saw only {seen:?})")
    });
    let answers: BTreeSet<String> = read_jsonl(&state("logs/rebind.jsonl"))
        .iter()
        .filter_map(|v| v["answer"].as_str().map(str::to_owned))
        .collect();
    c.check(
        answers.contains("127.0.0.1") && answers.contains("169.254.169.254"),
        || format!("rebind: the responder never served its forbidden answers: {answers:?}"),
    );
    // From the origin side: every rebind request arrived at the public address.
    let origin = read_jsonl(&state("logs/origin.jsonl"));
    let rebind_hits: Vec<&Value> = origin[origin_before.min(origin.len())..]
        .iter()
        .filter(|v| v["host"] == "rebind.example.test")
        .collect();
    c.check(
        rebind_hits.len() == lines.iter().filter(|l| l["decision"] == "allow").count(),
        || {
            format!(
                "rebind: origin saw {} requests: {rebind_hits:?}",
                rebind_hits.len()
            )
        },
    );
    for hit in rebind_hits {
        c.check(
            hit["local"]
                .as_str()
                .is_some_and(|l| l.starts_with(&format!("{REBIND_PUBLIC}:"))),
            || format!("rebind: origin request on an unexpected address: {hit}"),
        );
    }
}

/// Editing app2's ServiceEntry file flips its pod's curl from denied to allowed, no restart.
fn hot_reload(c: &mut Checks, gw: &Gateway, ca: &str) {
    let r = curl(APP2_A, &[], &["--cacert", ca, "https://api.example.test/"]);
    c.check(r.alert_access_denied(), || {
        format!("hot reload: before the edit app2 -> api must be denied: {r}")
    });
    let path = gw.config_dir().join("serviceentries/app2/egress.yaml");
    std::fs::write(&path, app2_entries(true)).expect("edit app2's entry");
    let edited = Instant::now();
    let mut last;
    loop {
        last = curl(APP2_A, &[], &["--cacert", ca, "https://api.example.test/"]);
        if last.exit == 0 || edited.elapsed() > Duration::from_secs(3) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = edited.elapsed();
    c.check(last.exit == 0 && last.status == 200, || {
        format!("hot reload: app2 -> api still denied {took:?} after the edit: {last}")
    });
    c.check(took <= Duration::from_secs(1), || {
        format!("hot reload: app2 -> api allowed only {took:?} after the edit (want <= 1s)")
    });
    eprintln!("e2e: hot reload flipped app2 -> api to allowed in {took:?}");
    let line = gw.access_after(0, |v| {
        v["namespace"] == "app2" && v["host"] == "api.example.test" && v["decision"] == "allow"
    });
    c.check(
        line.as_ref()
            .is_some_and(|l| l["service_entry"] == "app2/api" && l["listener"] == "sni"),
        || format!("hot reload: access log of the allowed connection: {line:?}"),
    );
}

/// A gateway whose DNS server never answers: `dns_failure` (502) within `timeouts.connect`.
fn no_dns_answer(c: &mut Checks) {
    let yaml = format!(
        "listeners:\n  connect: {{address: \"192.0.2.1:3138\"}}\nidentity:\n  sources:\n    - {{cidr: \"198.51.100.16/28\", namespace: app1}}\ndns:\n  servers: [\"203.0.113.55:53\"]\ntimeouts: {{connect: {}s}}\n",
        CONNECT_TIMEOUT.as_secs()
    );
    let gw = Gateway::start("silent-dns", &yaml, &[("app1/egress.yaml", app1_entries())]);
    let mark = gw.mark();
    let ca = cacert();
    let r = curl(
        APP1_A,
        &[],
        &[
            "-p",
            "-x",
            DEAD_DNS_PROXY,
            "--cacert",
            &ca,
            "https://api.example.test/",
        ],
    );
    c.check(
        r.out.contains(" 502 ") && r.deny_reason() == Some("dns_failure"),
        || format!("silent DNS: want 502 dns_failure: {r}"),
    );
    c.check(r.took <= CONNECT_TIMEOUT + Duration::from_secs(1), || {
        format!(
            "silent DNS: answered after {:?}, timeouts.connect is {CONNECT_TIMEOUT:?}",
            r.took
        )
    });
    c.access(
        &gw,
        mark,
        APP1_A,
        "api.example.test",
        &[
            ("listener", s("connect")),
            ("decision", s("deny")),
            ("reason", s("dns_failure")),
            ("upstream", Value::Null),
        ],
    );
}
