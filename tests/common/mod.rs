//! Shared test harness: start the real gateway binary on a generated config with every listener
//! on an ephemeral loopback port, read back the addresses it bound, its access log and metrics,
//! and play tenants from 127.0.0.2 / 127.0.0.3.
//!
//! This file holds the [`Gateway`] process harness (start, addresses, logs, signals) and the
//! config-dir helpers; local servers live in `servers`, client helpers in `clients`, metric
//! polling in `metrics` and `/proc` probes in `process`. Everything is re-exported here so tests
//! call `common::name(...)`; access-log files for the replay and suggest tests are made in `logs`.
#![allow(dead_code)] // each test crate uses a different part of the harness

mod clients;
mod expiry;
mod logs;
mod metrics;
pub mod mtls;
pub mod pki;
mod process;
mod servers;
pub mod squid;
pub mod tls_origin;
pub mod tunnel;

// Each test crate uses a different part, so some of these re-exports go unused in each.
#[allow(unused_imports)]
pub use clients::*;
#[allow(unused_imports)]
pub use expiry::*;
#[allow(unused_imports)]
pub use logs::*;
#[allow(unused_imports)]
pub use metrics::*;
#[allow(unused_imports)]
pub use process::SCHED_OTHER;
#[allow(unused_imports)]
pub use servers::*;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long any wait in a test may take before it fails.
pub const WAIT: Duration = Duration::from_secs(15);

/// Tenant addresses the default test config maps to namespaces.
pub const APP1: &str = "127.0.0.2";
/// Second tenant.
pub const APP2: &str = "127.0.0.3";
/// An address no `identity.sources` rule covers.
pub const STRANGER: &str = "127.0.0.9";

/// A config directory being assembled for one test.
pub struct ConfigDir {
    dir: tempfile::TempDir,
}

impl ConfigDir {
    /// A directory holding `gateway_yaml` and an empty `serviceentries/`.
    pub fn new(gateway_yaml: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("serviceentries")).expect("mkdir");
        std::fs::write(dir.path().join("gateway.yaml"), gateway_yaml).expect("write gateway.yaml");
        Self { dir }
    }

    /// Writes `content` to `serviceentries/<relative>`, creating folders.
    pub fn entry(&self, relative: &str, content: &str) -> &Self {
        let path = self.dir.path().join("serviceentries").join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, content).expect("write entry");
        self
    }

    /// Replaces (or creates) `serviceentries/<relative>` atomically: the content is staged
    /// outside the watched config directory and renamed into place, so a file watcher never
    /// reloads a half-written file or a staging file.
    pub fn replace_entry(&self, relative: &str, content: &str) -> &Self {
        let path = self.dir.path().join("serviceentries").join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        let outside = self.dir.path().parent().expect("temp dir has a parent");
        let mut staged = tempfile::NamedTempFile::new_in(outside).expect("staging file");
        staged
            .write_all(content.as_bytes())
            .expect("write staging file");
        staged.persist(&path).expect("rename into place");
        self
    }

    /// The directory path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// The gateway.yaml most tests use: every plaintext listener and admin on port 0, app1 and app2
/// played from 127.0.0.2 and 127.0.0.3. `extra` is appended (top-level keys).
pub fn gateway_yaml(extra: &str) -> String {
    format!(
        "listeners:\n  connect: {{address: \"127.0.0.1:0\"}}\nadmin: {{address: \"127.0.0.1:0\"}}\nidentity:\n  sources:\n    - {{cidr: \"{APP1}/32\", namespace: app1}}\n    - {{cidr: \"{APP2}/32\", namespace: app2}}\n{extra}"
    )
}

/// A STATIC ServiceEntry for `host` on `port` (protocol `protocol`) that dials `upstream`.
pub fn static_entry(
    name: &str,
    host: &str,
    port: u16,
    protocol: &str,
    upstream: SocketAddr,
) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}}}\nspec:\n  hosts: [\"{host}\"]\n  ports:\n    - {{number: {port}, name: p{port}, protocol: {protocol}, targetPort: {}}}\n  resolution: STATIC\n  endpoints:\n    - address: {}\n",
        upstream.port(),
        upstream.ip()
    )
}

/// A ServiceEntry document from its parts: `spec` is the YAML body under `spec:`, indented by
/// two spaces per line by the caller.
pub fn entry_yaml(name: &str, spec: &str) -> String {
    format!("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}}}\nspec:\n{spec}")
}

/// Runs the CLI with `args` and `--config dir`, as an operator would: (exit code, stdout,
/// stderr).
pub fn cli(args: &[&str], dir: &Path) -> (Option<i32>, String, String) {
    let mut all: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    all.extend([std::ffi::OsStr::new("--config"), dir.as_os_str()]);
    run_cli(&all)
}

/// A gateway.yaml with the transparent `sni` (port 443) and `http` (port 80) listeners, the
/// `connect` listener and admin, all on ephemeral 127.0.0.1 ports. app1 and app2 are played from
/// 127.0.0.2 and 127.0.0.3; `extra_sources` adds `(cidr, namespace)` rules; `extra` is appended
/// (top-level keys).
pub fn transparent_gateway_yaml(extra_sources: &[(&str, &str)], extra: &str) -> String {
    let mut yaml = String::from(
        "listeners:\n  sni: {address: \"127.0.0.1:0\", port: 443}\n  http: {address: \"127.0.0.1:0\", port: 80}\n  connect: {address: \"127.0.0.1:0\"}\nadmin: {address: \"127.0.0.1:0\"}\nidentity:\n  sources:\n",
    );
    for (cidr, namespace) in [(APP1, "app1"), (APP2, "app2")]
        .map(|(ip, ns)| (format!("{ip}/32"), ns))
        .into_iter()
        .chain(
            extra_sources
                .iter()
                .map(|(cidr, ns)| ((*cidr).to_owned(), *ns)),
        )
    {
        yaml.push_str(&format!(
            "    - {{cidr: \"{cidr}\", namespace: {namespace}}}\n"
        ));
    }
    yaml.push_str(extra);
    yaml
}

/// Lines a child wrote, shared with the reader thread.
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

    /// Waits until a line satisfies `pred`, returning it.
    fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        let mut lines = self.lines.lock().expect("lock");
        loop {
            if let Some(line) = lines.iter().find(|l| pred(l)) {
                return line.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for {what}; lines so far:\n{}",
                lines.join("\n")
            );
            lines = self.changed.wait_timeout(lines, left).expect("lock").0;
        }
    }

    fn snapshot(&self) -> Vec<String> {
        self.lines.lock().expect("lock").clone()
    }

    /// Waits until at least `n` lines satisfy `pred`, returning the first `n` of them.
    fn wait_for_n(&self, what: &str, n: usize, pred: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        let mut lines = self.lines.lock().expect("lock");
        loop {
            let found: Vec<String> = lines.iter().filter(|l| pred(l)).take(n).cloned().collect();
            if found.len() == n {
                return found;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for {n} x {what} (found {}); lines so far:\n{}",
                found.len(),
                lines.join("\n")
            );
            lines = self.changed.wait_timeout(lines, left).expect("lock").0;
        }
    }
}

/// A running gateway process; killed on drop.
pub struct Gateway {
    child: Child,
    stdout: Arc<Lines>,
    stderr: Arc<Lines>,
    /// Listener name → bound address.
    pub addrs: std::collections::HashMap<String, SocketAddr>,
    /// The config directory it runs on.
    pub config: PathBuf,
}

impl Gateway {
    /// Starts `egress-gateway run --config dir` and waits until it is ready.
    pub fn start(config: &ConfigDir) -> Self {
        Self::start_at(config.path())
    }

    /// Starts on a directory path.
    pub fn start_at(dir: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_egress-gateway"))
            .args(["--log-format", "json", "run", "--config"])
            .arg(dir)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn gateway");
        let stdout = Arc::new(Lines::default());
        let stderr = Arc::new(Lines::default());
        stdout.spawn_reader(child.stdout.take().expect("stdout"));
        stderr.spawn_reader(child.stderr.take().expect("stderr"));
        let mut gateway = Self {
            child,
            stdout,
            stderr,
            addrs: Default::default(),
            config: dir.to_path_buf(),
        };
        gateway.stderr.wait_for("gateway ready", |l| {
            l.contains("gateway ready") || l.contains("ERROR")
        });
        for line in gateway.stderr.snapshot() {
            let Ok(json) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            let fields = &json["fields"];
            if fields["message"] == "listening" {
                let name = fields["listener"].as_str().expect("listener").to_owned();
                let addr = fields["address"]
                    .as_str()
                    .expect("address")
                    .parse()
                    .expect("addr");
                gateway.addrs.insert(name, addr);
            }
        }
        assert!(
            gateway.addrs.contains_key("admin"),
            "gateway did not start:\n{}",
            gateway.stderr.snapshot().join("\n")
        );
        gateway
    }

    /// Address of listener `name`.
    pub fn addr(&self, name: &str) -> SocketAddr {
        *self
            .addrs
            .get(name)
            .unwrap_or_else(|| panic!("no {name} listener"))
    }

    /// Waits for an access-log line matching `pred` and returns it parsed.
    pub fn wait_access_log(&self, pred: impl Fn(&Value) -> bool) -> Value {
        let line = self.stdout.wait_for("access log line", |l| {
            serde_json::from_str::<Value>(l).is_ok_and(|v| pred(&v))
        });
        serde_json::from_str(&line).expect("json")
    }

    /// Every access-log line so far.
    pub fn access_log(&self) -> Vec<Value> {
        self.stdout
            .snapshot()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits until `n` access-log lines match `pred`; returns them parsed, in order.
    pub fn wait_access_logs(&self, n: usize, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        self.stdout
            .wait_for_n("access log lines", n, |l| {
                serde_json::from_str::<Value>(l).is_ok_and(|v| pred(&v))
            })
            .iter()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect()
    }

    /// Waits for a stderr (JSON log) line containing `needle`.
    pub fn wait_log(&self, needle: &str) -> String {
        self.stderr.wait_for(needle, |l| l.contains(needle))
    }

    /// Every stderr line so far.
    pub fn logs(&self) -> Vec<String> {
        self.stderr.snapshot()
    }

    /// `GET path` on the admin server: (status, body).
    pub fn admin_get(&self, path: &str) -> (u16, String) {
        http_get(self.addr("admin"), path)
    }

    /// `GET path` on the admin server, or `None` if the connection is refused or cut.
    pub fn try_admin_get(&self, path: &str) -> Option<(u16, String)> {
        try_http_get(self.addr("admin"), path)
    }

    /// The value of the series `name{labels}` (labels as `k="v"` pairs, any order), if present.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let (_, body) = self.admin_get("/metrics");
        metric_value(&body, name, labels)
    }

    /// Sends a signal to the process. For `HUP`, `TERM` and `INT` it first waits (bounded) until
    /// the gateway has installed its handler: "gateway ready" is logged before the handlers
    /// exist, and a signal in that window would take the default action (kill the process).
    pub fn signal(&self, signal: &str) {
        if let Some(number) = match signal {
            "HUP" => Some(1),
            "INT" => Some(2),
            "TERM" => Some(15),
            _ => None,
        } {
            self.wait_signal_handled(number);
        }
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for the process to exit, returning its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Waits until the process catches signal `number` (its bit in `SigCgt` of
    /// `/proc/<pid>/status`).
    pub fn wait_signal_handled(&self, number: u32) {
        let path = format!("/proc/{}/status", self.child.id());
        let deadline = Instant::now() + WAIT;
        loop {
            let status = std::fs::read_to_string(&path).unwrap_or_default();
            let caught = status
                .lines()
                .find_map(|l| l.strip_prefix("SigCgt:"))
                .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
                .unwrap_or(0);
            if caught & (1 << (number - 1)) != 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the gateway never installed a handler for signal {number}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
