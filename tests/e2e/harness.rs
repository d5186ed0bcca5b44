//! The box and the gateway in it: the preconditions, the whole-run lock, `cluster.sh up`/`down`
//! around the run, and the real gateway binary started inside eg-gw with its stderr and access
//! log (stdout) collected line by line.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{BIN, GW_NS, RUN_LOCK, SCRIPT, STATE, WAIT};

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
pub fn unavailable() -> Option<String> {
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
pub struct RunLock;

impl RunLock {
    pub fn take() -> Self {
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
pub struct BoxGuard;

impl BoxGuard {
    pub fn up() -> Self {
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

pub fn state(file: &str) -> String {
    format!("{STATE}/{file}")
}

// ---------------------------------------------------------------------------------------------
// The gateway, run inside eg-gw
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
pub struct Lines {
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

    pub fn snapshot(&self) -> Vec<String> {
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

pub struct Gateway {
    pub name: &'static str,
    child: Child,
    pub stdout: Arc<Lines>,
    stderr: Arc<Lines>,
    _config: tempfile::TempDir,
}

impl Gateway {
    /// Writes `gateway_yaml` and `entries` (path under serviceentries/, content) to a fresh
    /// directory and runs the gateway on it inside eg-gw, waiting until it is ready.
    pub fn start(name: &'static str, gateway_yaml: &str, entries: &[(&str, String)]) -> Self {
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

    pub fn config_dir(&self) -> &Path {
        self._config.path()
    }

    /// Index of the next access-log line.
    pub fn mark(&self) -> usize {
        self.stdout.len()
    }

    /// The first access-log line at index `from` or later matching `pred`, parsed.
    pub fn access_after(&self, from: usize, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        self.stdout
            .wait(from, Duration::from_secs(5), |l| {
                serde_json::from_str::<Value>(l).is_ok_and(|v| pred(&v))
            })
            .map(|l| serde_json::from_str(&l).expect("json"))
    }

    pub fn access_log(&self) -> Vec<Value> {
        self.stdout
            .snapshot()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// `GET /metrics` from inside eg-gw (the admin listener is on the gateway's loopback).
    pub fn metrics(&self) -> String {
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
