//! The gateway process: started (pinned) on a temp config, its listener addresses read from its
//! JSON log, killed on drop; plus its CPU time and RSS from /proc.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::{Opts, Res};

/// A gateway process on a temp config; killed (by its PID) on drop.
pub(crate) struct Gateway {
    child: Child,
    addrs: HashMap<String, SocketAddr>,
    log: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Gateway {
    /// Starts the gateway (pinned) and waits up to `within` for "gateway ready"; listener
    /// addresses come from its JSON "listening" log lines.
    pub(crate) fn start(opts: &Opts, dir: tempfile::TempDir, within: Duration) -> Res<Self> {
        let mut command = if opts.pin {
            let mut c = Command::new("taskset");
            c.args(["-c", &opts.gateway_core.to_string()])
                .arg(&opts.gateway);
            c
        } else {
            Command::new(&opts.gateway)
        };
        let stdout = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&opts.access_log)?;
        command
            .args(["--log-format", "json", "run", "--config"])
            .arg(dir.path())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::piped());
        let mut child = command.spawn()?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().expect("log lock").push(line);
            }
        });
        let mut gateway = Self {
            child,
            addrs: HashMap::new(),
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + within;
        while !gateway.lines().iter().any(|l| l.contains("gateway ready")) {
            if gateway.child.try_wait()?.is_some() || Instant::now() > deadline {
                let lines = gateway.lines();
                let tail = &lines[lines.len().saturating_sub(5)..];
                return Err(format!(
                    "gateway did not become ready ({} log lines; last: {})",
                    lines.len(),
                    tail.join(" | ")
                )
                .into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for line in gateway.lines() {
            let Ok(json) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let fields = &json["fields"];
            if fields["message"] == "listening" {
                if let (Some(name), Some(addr)) =
                    (fields["listener"].as_str(), fields["address"].as_str())
                {
                    gateway.addrs.insert(name.to_owned(), addr.parse()?);
                }
            }
        }
        Ok(gateway)
    }

    pub(crate) fn addr(&self, listener: &str) -> Res<SocketAddr> {
        self.addrs
            .get(listener)
            .copied()
            .ok_or_else(|| format!("no {listener} listener").into())
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn lines(&self) -> Vec<String> {
        self.log.lock().expect("log lock").clone()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// User and system CPU seconds of process `pid` (all threads) from `/proc/PID/stat`.
pub(crate) fn cpu_secs(pid: u32) -> (f64, f64) {
    stat_cpu_secs(&format!("/proc/{pid}/stat"))
}

/// User and system CPU seconds of the thread of `pid` named `name`, or zero when there is none.
pub(crate) fn thread_cpu_secs(pid: u32, name: &str) -> (f64, f64) {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten();
    tasks
        .flatten()
        .map(|task| task.path())
        .find(|task| {
            std::fs::read_to_string(task.join("comm")).is_ok_and(|comm| comm.trim_end() == name)
        })
        .map_or((0.0, 0.0), |task| {
            stat_cpu_secs(&task.join("stat").to_string_lossy())
        })
}

/// User and system CPU seconds from a `/proc` `stat` file.
fn stat_cpu_secs(path: &str) -> (f64, f64) {
    static TICK: OnceLock<f64> = OnceLock::new();
    let tick = *TICK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .unwrap_or(100.0)
    });
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // After the command name: state is field 3, utime 14, stime 15.
    (field(11) / tick, field(12) / tick)
}

/// `VmRSS` of `pid` in KiB.
pub(crate) fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
