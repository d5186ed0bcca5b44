//! Shared test harness: start the real gateway binary on a generated config with every listener
//! on an ephemeral loopback port, read back the addresses it bound, its access log and metrics,
//! and play tenants from 127.0.0.2 / 127.0.0.3.
#![allow(dead_code)] // each test crate uses a different part of the harness

pub mod mtls;
pub mod pki;
pub mod tls_origin;
pub mod tunnel;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

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

/// Finds a series value in Prometheus text.
pub fn metric_value(body: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A blocking HTTP/1.1 GET: (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = StdTcpStream::connect(addr).expect("connect admin");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Connects to `to` from source address `from` (a 127.0.0.x tenant).
pub async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{from}:0").parse().expect("addr"))
        .expect("bind tenant address");
    socket.connect(to).await.expect("connect")
}

/// A CONNECT exchange's answer head.
pub struct ConnectAnswer {
    /// Status code.
    pub status: u16,
    /// The whole head as text.
    pub head: String,
    /// The stream, positioned after the head.
    pub stream: TcpStream,
}

impl ConnectAnswer {
    /// The `X-Egress-Deny-Reason` header, if any.
    pub fn deny_reason(&self) -> Option<String> {
        self.head
            .lines()
            .find_map(|l| l.strip_prefix("X-Egress-Deny-Reason: "))
            .map(str::to_owned)
    }
}

/// Sends `CONNECT authority` from `from` and reads the answer head.
pub async fn connect_request(from: &str, proxy: SocketAddr, authority: &str) -> ConnectAnswer {
    let mut stream = connect_from(from, proxy).await;
    let request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let head = read_head(&mut stream).await;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    ConnectAnswer {
        status,
        head,
        stream,
    }
}

/// Reads bytes up to and including the blank line that ends an HTTP head.
pub async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(WAIT, stream.read(&mut byte))
            .await
            .expect("head in time")
            .expect("read");
        assert!(
            n > 0,
            "closed before the end of the head: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    String::from_utf8(head).expect("utf8 head")
}

/// A TCP echo server on 127.0.0.1; runs until the test's runtime ends.
pub async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

// ---------------------------------------------------------------------------------------------
// Added helpers: counting log lines, polling metrics, and small local servers.
// ---------------------------------------------------------------------------------------------

impl Lines {
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

impl Gateway {
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

    /// Polls `/metrics` (bounded by [`WAIT`]) until the series `name{labels}` satisfies `ok`;
    /// returns its value. Panics with the last value seen on timeout.
    pub fn wait_metric(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        ok: impl Fn(f64) -> bool,
    ) -> f64 {
        self.wait_metric_within(name, labels, WAIT, ok)
    }

    /// [`Gateway::wait_metric`] with an explicit bound.
    pub fn wait_metric_within(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        within: Duration,
        ok: impl Fn(f64) -> bool,
    ) -> f64 {
        let deadline = Instant::now() + within;
        loop {
            let value = self.metric(name, labels);
            if let Some(v) = value.filter(|v| ok(*v)) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {name}{labels:?}; last value {value:?}"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The counter `egress_connections_total` for one namespace/decision/reason on `connect`.
    pub fn connections(&self, namespace: &str, decision: &str, reason: &str) -> Option<f64> {
        self.metric(
            "egress_connections_total",
            &[
                ("namespace", namespace),
                ("listener", "connect"),
                ("decision", decision),
                ("reason", reason),
            ],
        )
    }

    /// Sends SIGHUP and waits until `egress_config_generation` is at least `generation`.
    pub fn reload_to(&self, generation: u64) {
        self.signal("HUP");
        self.wait_metric("egress_config_generation", &[], |g| g >= generation as f64);
    }

    /// `GET path` on the admin server, or `None` if the connection is refused or cut.
    pub fn try_admin_get(&self, path: &str) -> Option<(u16, String)> {
        try_http_get(self.addr("admin"), path)
    }
}

/// A blocking HTTP/1.1 GET that reports failure instead of panicking.
pub fn try_http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = StdTcpStream::connect_timeout(&addr, WAIT).ok()?;
    stream.set_read_timeout(Some(WAIT)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

/// A ServiceEntry document from its parts: `spec` is the YAML body under `spec:`, indented by
/// two spaces per line by the caller.
pub fn entry_yaml(name: &str, spec: &str) -> String {
    format!("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}}}\nspec:\n{spec}")
}

/// A TCP server on 127.0.0.1 that reads each connection to EOF and reports what it received
/// (one message per connection, in accept order).
pub async fn recording_server() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind recorder");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut received = Vec::new();
                let _ = stream.read_to_end(&mut received).await;
                let _ = tx.send(received);
            });
        }
    });
    (addr, rx)
}

/// A minimal HTTP/1.1 origin on 127.0.0.1: answers every request with `200` and `body`, then
/// closes.
pub async fn http_origin(body: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    addr
}

/// A 127.0.0.1 address nothing listens on (bound, then released).
pub fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

/// A UDP DNS server on 127.0.0.1 that answers every query with NXDOMAIN (the query echoed back
/// with QR set and RCODE 3); runs until the test's runtime ends.
pub async fn nxdomain_dns_server() -> SocketAddr {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind dns");
    let addr = socket.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
            if n < 12 {
                continue;
            }
            let mut answer = buf[..n].to_vec();
            answer[2] |= 0x80; // QR: this is a response
            answer[3] = (answer[3] & 0xf0) | 0x03; // RCODE 3: NXDOMAIN
            let _ = socket.send_to(&answer, peer).await;
        }
    });
    addr
}

/// A 127.0.0.1 listener that never accepts and whose backlog is full, so further SYNs go
/// unanswered and a connect to it times out. Keep the returned value alive for the test.
pub struct BlackHole {
    /// The address that does not answer.
    pub addr: SocketAddr,
    _listener: tokio::net::TcpListener,
    _held: Vec<StdTcpStream>,
}

/// Creates a [`BlackHole`]: `listen(0)`, then connects until a connect attempt times out (the
/// kernel stops answering SYNs once the accept queue is full).
pub fn black_hole() -> BlackHole {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let listener = socket.listen(0).expect("listen(0)");
    let addr = listener.local_addr().expect("addr");
    let mut held = Vec::new();
    for _ in 0..64 {
        match StdTcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(stream) => held.push(stream),
            Err(err) if err.kind() == std::io::ErrorKind::TimedOut => {
                return BlackHole {
                    addr,
                    _listener: listener,
                    _held: held,
                };
            }
            Err(err) => panic!("filling the backlog of {addr}: {err}"),
        }
    }
    panic!("the backlog of {addr} never filled: this kernel answers SYNs beyond listen(0)");
}

// =============================================================================================
// Transparent listeners (tests/sni.rs, tests/http.rs). Appended as one block; keep it last-but-
// independent so other appended blocks do not interleave with it.
// =============================================================================================

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

impl Gateway {
    /// The counter `egress_connections_total` for one listener/namespace/decision/reason.
    pub fn connections_on(
        &self,
        listener: &str,
        namespace: &str,
        decision: &str,
        reason: &str,
    ) -> Option<f64> {
        self.metric(
            "egress_connections_total",
            &[
                ("namespace", namespace),
                ("listener", listener),
                ("decision", decision),
                ("reason", reason),
            ],
        )
    }
}

// =============================================================================================
// Reload, limits, audit, slow clients and drain (tests/reload.rs, tests/limits.rs,
// tests/audit.rs, tests/slow_clients.rs, tests/drain.rs). Appended as one block.
// =============================================================================================

/// The ClientHello a rustls client (ring provider, default versions) sends for `sni`: the exact
/// bytes of its first flight, TLS record header included.
pub fn rustls_client_hello(sni: &str) -> Vec<u8> {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("default versions")
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(sni.to_owned()).expect("server name");
    let mut client = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
    let mut hello = Vec::new();
    while client.wants_write() {
        client.write_tls(&mut hello).expect("write hello");
    }
    hello
}

/// The fatal `access_denied` alert record the SNI listener answers a deny with.
pub const ALERT_ACCESS_DENIED: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x31];

/// Opens a CONNECT tunnel from `from` to `authority`, asserting `200`.
pub async fn open_tunnel(from: &str, proxy: SocketAddr, authority: &str) -> TcpStream {
    let answer = connect_request(from, proxy, authority).await;
    assert_eq!(answer.status, 200, "CONNECT {authority}: {}", answer.head);
    answer.stream
}

/// Writes `payload` and reads exactly as many bytes back (through an echo upstream), checking
/// they are the same; bounded by [`WAIT`].
pub async fn echo_roundtrip(stream: &mut TcpStream, payload: &[u8]) -> std::io::Result<()> {
    let exchange = async {
        let (mut read, mut write) = stream.split();
        let mut back = vec![0u8; payload.len()];
        let (written, got) = tokio::join!(write.write_all(payload), read.read_exact(&mut back));
        written?;
        got?;
        if back != payload {
            return Err(std::io::Error::other("echo differs from what was sent"));
        }
        Ok(())
    };
    tokio::time::timeout(WAIT, exchange)
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("echo timed out")))
}

/// Reads until EOF (or a reset), bounded by `within`; returns the bytes read and whether the
/// stream ended (false: still open at the deadline).
pub async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let reading = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    let ended = tokio::time::timeout(within, reading).await.is_ok();
    (got, ended)
}

impl Gateway {
    /// `egress_config_generation` now.
    pub fn generation(&self) -> f64 {
        self.metric("egress_config_generation", &[])
            .expect("egress_config_generation")
    }

    /// `egress_config_reloads_total{result}` now (0 before the first such reload).
    pub fn reloads(&self, result: &str) -> f64 {
        self.metric("egress_config_reloads_total", &[("result", result)])
            .unwrap_or(0.0)
    }

    /// Successful plus failed reloads, once the count has not moved for one second (bounded by
    /// [`WAIT`]).
    pub fn settled_reloads(&self) -> f64 {
        let deadline = Instant::now() + WAIT;
        let total = || self.reloads("success") + self.reloads("failure");
        let mut last = total();
        let mut since = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let now = total();
            if now != last {
                last = now;
                since = Instant::now();
            } else if since.elapsed() >= Duration::from_secs(1) {
                return last;
            }
            assert!(Instant::now() < deadline, "reloads never settled");
        }
    }

    /// Open file descriptors of the gateway process.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("/proc/<pid>/fd")
            .count()
    }

    /// Threads of the gateway process (`Threads:` in `/proc/<pid>/status`).
    pub fn threads(&self) -> usize {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("/proc/<pid>/status")
            .lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("Threads")
    }
}

impl Gateway {
    /// Waits (bounded by [`WAIT`]) until the gateway's config watcher is up: its inotify
    /// descriptor exists and holds a watch for every folder below the config directory (the
    /// process logs `gateway ready` before it starts the watcher, so a test that changes files
    /// right after start must wait for this).
    pub fn wait_watching(&self) {
        let folders = count_folders(&self.config);
        let deadline = Instant::now() + WAIT;
        loop {
            let watches = self.inotify_watches();
            if watches >= folders {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the config watcher never came up ({watches} of {folders} folders watched)"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Watches held by the process's inotify descriptors (`inotify wd:` lines in fdinfo).
    fn inotify_watches(&self) -> usize {
        let pid = self.pid();
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            return 0;
        };
        fds.flatten()
            .filter(|fd| {
                std::fs::read_link(fd.path()).is_ok_and(|t| t.to_string_lossy().contains("inotify"))
            })
            .filter_map(|fd| {
                std::fs::read_to_string(format!(
                    "/proc/{pid}/fdinfo/{}",
                    fd.file_name().to_string_lossy()
                ))
                .ok()
            })
            .map(|info| {
                info.lines()
                    .filter(|l| l.starts_with("inotify wd:"))
                    .count()
            })
            .sum()
    }
}

/// Distinct folders (by inode, following symlinks) at and below `root`.
fn count_folders(root: &Path) -> usize {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(meta) = std::fs::metadata(&dir) else {
            continue;
        };
        if !meta.is_dir() || !seen.insert((meta.dev(), meta.ino())) || seen.len() > 10_000 {
            continue;
        }
        if let Ok(listing) = std::fs::read_dir(&dir) {
            stack.extend(listing.flatten().map(|e| e.path()));
        }
    }
    seen.len()
}

impl Gateway {
    /// Waits (bounded by [`WAIT`]) until `egress_connections_total` for one listener, namespace,
    /// decision and reason is exactly `n`: a connection is counted when its handler finishes,
    /// which can be just after the client saw the answer.
    pub fn wait_connections_on(
        &self,
        listener: &str,
        namespace: &str,
        decision: &str,
        reason: &str,
        n: u64,
    ) {
        let labels = [
            ("namespace", namespace),
            ("listener", listener),
            ("decision", decision),
            ("reason", reason),
        ];
        self.wait_metric("egress_connections_total", &labels, |v| v == n as f64);
    }
}
