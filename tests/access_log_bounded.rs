//! The access log cannot hold up traffic or grow without bound (#14): the gateway runs with its
//! stdout connected to a pipe nobody reads, so the pipe fills after a few hundred lines and every
//! further write to stdout blocks. Tunnels must keep working through that, and the lines that
//! cannot be buffered (`access_log.buffer_lines`) are counted in `egress_access_log_dropped_total`.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Lines beyond this many waiting for stdout are dropped; large enough that tunnels opened one
/// after another never outrun the writer while stdout still takes lines.
const BUFFER_LINES: usize = 256;
/// Upper bound on tunnels driven before the dropped counter must have moved.
const MAX_TUNNELS: usize = 3000;

/// The gateway process with a stdout pipe that is held open and never read.
struct StalledGateway {
    child: Child,
    _unread_stdout: ChildStdout,
    listeners: Vec<(String, SocketAddr)>,
}

impl StalledGateway {
    fn start(config: &ConfigDir) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_egress-gateway"))
            .args(["--log-format", "json", "run", "--config"])
            .arg(config.path())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn gateway");
        let unread_stdout = child.stdout.take().expect("stdout");
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let sink = lines.clone();
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().expect("lines").push(line);
            }
        });
        let deadline = Instant::now() + WAIT;
        while !lines
            .lock()
            .expect("lines")
            .iter()
            .any(|l| l.contains("gateway ready"))
        {
            assert!(
                Instant::now() < deadline,
                "gateway did not start:\n{}",
                lines.lock().expect("lines").join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let listeners = lines
            .lock()
            .expect("lines")
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|json| json["fields"]["message"] == "listening")
            .map(|json| {
                let fields = &json["fields"];
                let name = fields["listener"].as_str().expect("listener").to_owned();
                let addr = fields["address"].as_str().expect("address").parse();
                (name, addr.expect("address"))
            })
            .collect();
        Self {
            child,
            _unread_stdout: unread_stdout,
            listeners,
        }
    }

    fn addr(&self, name: &str) -> SocketAddr {
        self.listeners
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| *a)
            .unwrap_or_else(|| panic!("no {name} listener"))
    }

    fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let (_, body) = http_get(self.addr("admin"), "/metrics");
        metric_value(&body, name, labels)
    }
}

impl Drop for StalledGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stdout_nobody_reads_drops_counted_lines_and_never_blocks_tunnels() {
    let echo = echo_server().await;
    let config = ConfigDir::new(&gateway_yaml(&format!(
        "access_log: {{buffer_lines: {BUFFER_LINES}}}\n"
    )));
    config.entry(
        "app1/echo.yaml",
        &static_entry("echo", "echo.test", 9000, "TCP", echo),
    );
    let gw = StalledGateway::start(&config);
    let dropped = |gw: &StalledGateway| {
        gw.metric("egress_access_log_dropped_total", &[])
            .expect("egress_access_log_dropped_total is exported")
    };
    assert_eq!(dropped(&gw), 0.0);

    // Each tunnel writes one line (~300 bytes) at close: the pipe (64 KiB) fills after about 200
    // lines, the writer thread then blocks on stdout with a batch, and the buffer fills behind it.
    let proxy = gw.addr("connect");
    let mut tunnels = 0;
    while tunnels < MAX_TUNNELS {
        for _ in 0..100 {
            let started = Instant::now();
            expect_echo_at(proxy, "echo.test:9000").await;
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "tunnel {tunnels} took {:?}",
                started.elapsed()
            );
            tunnels += 1;
        }
        if dropped(&gw) > 0.0 {
            break;
        }
    }
    let lost = dropped(&gw);
    assert!(lost > 0.0, "{tunnels} tunnels and no dropped line");

    // Still serving, and with the writer stuck every further line is counted, not queued.
    expect_echo_at(proxy, "echo.test:9000").await;
    let deadline = Instant::now() + WAIT;
    while dropped(&gw) <= lost {
        assert!(
            Instant::now() < deadline,
            "the last line was not counted: {}",
            dropped(&gw)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let active = gw
        .metric(
            "egress_active_connections",
            &[("namespace", "app1"), ("listener", "connect")],
        )
        .expect("active gauge");
    assert_eq!(active, 0.0);

    // Shutdown does not hang on the stuck stdout either: the last flush waits a bounded time.
    let mut gw = gw;
    let stopped = Command::new("kill")
        .args(["-TERM", &gw.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(stopped.success());
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = gw.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "SIGTERM with a stuck stdout did not stop the gateway"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
}

/// Opens a tunnel from app1 through `proxy` and checks an echo round trip.
async fn expect_echo_at(proxy: SocketAddr, authority: &str) {
    let mut tunnel = open_tunnel(APP1, proxy, authority).await;
    echo_roundtrip(&mut tunnel, b"still flowing")
        .await
        .expect("echo through the tunnel");
}
