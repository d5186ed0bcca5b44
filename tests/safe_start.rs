//! Safe start (issue 18): every config that loads is copied to `state_dir`; when the config is
//! invalid at start-up the gateway serves that last good copy instead of crash-looping, says so
//! on `/readyz` (200, body `degraded: …`) and in `egress_config_last_good_in_use`, logs each
//! problem with `FILE:LINE:COL`, and a later successful reload ends it. Without `state_dir`, or
//! with nothing in it, an invalid config stays fatal. `egress_config_last_reload_successful`
//! stays 0 from a failed reload until one succeeds.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// A gateway started on a config that may be invalid: unlike [`Gateway::start`], an `ERROR`
/// line before readiness is expected here, so this waits for `gateway ready` or the exit.
struct Degradable {
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
    addrs: HashMap<String, SocketAddr>,
}

enum Started {
    Serving(Degradable),
    Exited { code: Option<i32>, stderr: String },
}

fn start(dir: &Path) -> Started {
    let mut child = Command::new(env!("CARGO_BIN_EXE_egress-gateway"))
        .args(["--log-format", "json", "run", "--config"])
        .arg(dir)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gateway");
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let lines = stderr.clone();
    let pipe = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            lines.lock().expect("lock").push(line);
        }
    });
    let deadline = Instant::now() + WAIT;
    loop {
        if stderr
            .lock()
            .expect("lock")
            .iter()
            .any(|l| l.contains("gateway ready"))
        {
            break;
        }
        if let Some(status) = child.try_wait().expect("wait") {
            // Let the reader drain what the process wrote before it exited.
            std::thread::sleep(Duration::from_millis(100));
            let stderr = stderr.lock().expect("lock").join("\n");
            return Started::Exited {
                code: status.code(),
                stderr,
            };
        }
        assert!(
            Instant::now() < deadline,
            "the gateway neither started nor exited"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut addrs = HashMap::new();
    for line in stderr.lock().expect("lock").iter() {
        let Ok(json) = serde_json::from_str::<Value>(line) else {
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
            addrs.insert(name, addr);
        }
    }
    Started::Serving(Degradable {
        child,
        stderr,
        addrs,
    })
}

impl Degradable {
    fn logs(&self) -> String {
        self.stderr.lock().expect("lock").join("\n")
    }

    fn metric(&self, name: &str) -> Option<f64> {
        let (_, body) = http_get(self.addrs["admin"], "/metrics");
        metric_value(&body, name, &[])
    }

    fn wait_metric(&self, name: &str, want: f64) {
        let deadline = Instant::now() + WAIT;
        while self.metric(name) != Some(want) {
            assert!(
                Instant::now() < deadline,
                "{name} never became {want}: {:?}",
                self.metric(name)
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn hup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }
}

impl Drop for Degradable {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serving(started: Started) -> Degradable {
    match started {
        Started::Serving(gateway) => gateway,
        Started::Exited { code, stderr } => panic!("the gateway exited ({code:?}):\n{stderr}"),
    }
}

/// An entry `name` for `host:8000` (TCP) whose port is out of range: line 6 of the file.
fn broken_entry(name: &str, host: &str) -> String {
    format!("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}}}\nspec:\n  hosts: [\"{host}\"]\n  ports: [{{number: 99999, name: tcp, protocol: TCP}}]\n  resolution: DNS\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_config_at_start_up_serves_the_last_good_copy_until_a_reload_succeeds() {
    let echo = echo_server().await;
    let state = tempfile::tempdir().expect("state dir");
    let config = ConfigDir::new(&gateway_yaml(&format!(
        "state_dir: {}\n",
        state.path().display()
    )));
    config.entry(
        "app1/web.yaml",
        &static_entry("web", "web.test", 8000, "TCP", echo),
    );
    {
        let mut first = Gateway::start(&config);
        assert_eq!(
            first.metric("egress_config_last_good_in_use", &[]),
            Some(0.0)
        );
        assert_eq!(
            first.metric("egress_config_last_reload_successful", &[]),
            Some(1.0)
        );
        assert!(state.path().join("last-good/gateway.yaml").is_file());
        assert!(state
            .path()
            .join("last-good/serviceentries/app1/web.yaml")
            .is_file());
        first.signal("TERM");
        assert_eq!(first.wait_exit(WAIT), Some(0));
    }

    config.entry("app1/web.yaml", &broken_entry("web", "web.test"));
    let gateway = serving(start(config.path()));
    let logs = gateway.logs();
    assert!(
        logs.contains("app1/web.yaml:6:") && logs.contains("port 99999 is outside 1-65535"),
        "{logs}"
    );
    assert!(logs.contains("serving the last good config"), "{logs}");
    let proxy = gateway.addrs["connect"];
    let mut tunnel = open_tunnel(APP1, proxy, "web.test:8000").await;
    echo_roundtrip(&mut tunnel, b"last good")
        .await
        .expect("the last good allowlist serves");
    let (status, body) = http_get(gateway.addrs["admin"], "/readyz");
    assert_eq!(status, 200);
    assert!(body.starts_with("degraded"), "{body}");
    assert_eq!(gateway.metric("egress_config_last_good_in_use"), Some(1.0));
    assert_eq!(
        gateway.metric("egress_config_last_reload_successful"),
        Some(0.0)
    );

    // A reload of the still-broken config changes nothing.
    gateway.hup();
    let deadline = Instant::now() + WAIT;
    while !gateway.logs().contains("config reload failed") {
        assert!(Instant::now() < deadline, "the SIGHUP reload never ran");
        std::thread::sleep(Duration::from_millis(25));
    }
    assert_eq!(gateway.metric("egress_config_last_good_in_use"), Some(1.0));
    assert_eq!(
        gateway.metric("egress_config_last_reload_successful"),
        Some(0.0)
    );

    let fixed = format!(
        "{}---\n{}",
        static_entry("web", "web.test", 8000, "TCP", echo),
        static_entry("api", "api.test", 8000, "TCP", echo)
    );
    config.replace_entry("app1/web.yaml", &fixed);
    gateway.wait_metric("egress_config_last_good_in_use", 0.0);
    assert_eq!(
        gateway.metric("egress_config_last_reload_successful"),
        Some(1.0)
    );
    let (status, body) = http_get(gateway.addrs["admin"], "/readyz");
    assert_eq!((status, body.as_str()), (200, "ready\n"));
    let mut tunnel = open_tunnel(APP1, proxy, "api.test:8000").await;
    echo_roundtrip(&mut tunnel, b"fixed").await.expect("echo");
    let copied =
        std::fs::read_to_string(state.path().join("last-good/serviceentries/app1/web.yaml"))
            .expect("the fixed config is the new last good copy");
    assert_eq!(copied, fixed);
}

#[test]
fn without_a_state_dir_or_a_copy_an_invalid_config_at_start_up_is_fatal() {
    let config = ConfigDir::new(&gateway_yaml(""));
    config.entry("app1/web.yaml", &broken_entry("web", "web.test"));
    let Started::Exited { code, stderr } = start(config.path()) else {
        panic!("started on an invalid config without a state_dir");
    };
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("app1/web.yaml:6:"), "{stderr}");

    let state = tempfile::tempdir().expect("state dir");
    let config = ConfigDir::new(&gateway_yaml(&format!(
        "state_dir: {}\n",
        state.path().display()
    )));
    config.entry("app1/web.yaml", &broken_entry("web", "web.test"));
    let Started::Exited { code, stderr } = start(config.path()) else {
        panic!("started on an invalid config with an empty state_dir");
    };
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("holds no last good copy"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reload_success_gauge_stays_zero_from_a_failed_reload_until_one_succeeds() {
    let echo = echo_server().await;
    let config = ConfigDir::new(&gateway_yaml(""));
    config.entry(
        "app1/web.yaml",
        &static_entry("web", "web.test", 8000, "TCP", echo),
    );
    let gateway = Gateway::start(&config);
    gateway.wait_watching();
    assert_eq!(
        gateway.metric("egress_config_last_reload_successful", &[]),
        Some(1.0)
    );
    config.replace_entry("app1/web.yaml", &broken_entry("web", "web.test"));
    gateway.wait_metric(
        "egress_config_reloads_total",
        &[("result", "failure")],
        |n| n >= 1.0,
    );
    assert_eq!(
        gateway.metric("egress_config_last_reload_successful", &[]),
        Some(0.0)
    );
    config.replace_entry("app1/other.yaml", "kind: [still broken\n");
    gateway.wait_metric(
        "egress_config_reloads_total",
        &[("result", "failure")],
        |n| n >= 2.0,
    );
    assert_eq!(
        gateway.metric("egress_config_last_reload_successful", &[]),
        Some(0.0),
        "still failing: the gauge must not clear itself"
    );
    std::fs::remove_file(config.path().join("serviceentries/app1/other.yaml")).expect("rm");
    config.replace_entry(
        "app1/web.yaml",
        &static_entry("web", "web.test", 8000, "TCP", echo),
    );
    gateway.wait_metric("egress_config_last_reload_successful", &[], |v| v == 1.0);
}
