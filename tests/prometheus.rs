//! A real Prometheus scrapes a live gateway: the monitoring shipped in `deploy/monitoring`
//! works against real series in a real TSDB, not only against `promtool`'s hand-written ones.
//!
//! One gateway serves three tenants from 127.0.0.2 (app1), 127.0.0.3 (app2) and 127.0.0.4
//! (app3, in audit mode, so that the dashboard's audit panel has data). Debian's `prometheus`
//! runs on an ephemeral 127.0.0.1 port with a temporary TSDB, a scrape config equivalent to
//! `deploy/monitoring/servicemonitor.yaml` (job named after the admin Service, path
//! `/metrics`, `honor_labels`, the operator's target labels; 1 s instead of 30 s) and the
//! repository's alert rules file loaded as it is. After allowed and denied CONNECTs for both
//! tenants:
//! - PromQL over the TSDB gives each tenant's exact counts and nonzero allowed and denied rates,
//!   under the TENANT's `namespace` (honor_labels kept it from becoming `exported_namespace`);
//! - the dashboard's `$namespace` variable (`label_values`) offers exactly the three tenants,
//!   and every `expr` of the Grafana dashboard evaluates without error and returns series;
//! - every rule evaluates without error, and Prometheus's own rule evaluation puts
//!   `EgressGatewayTenantDenySpike` in state pending (its `for: 10m` is kept: pending is the
//!   proof that the expression matched) for app1 and app2, not for app3, and
//!   `EgressAllowlistEntryExpiringSoon` for app2's entry annotated to expire in three days.
//!
//! Skips, saying why, when no `prometheus` binary is on PATH (`.ci/run` installs it).

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::pki::Ca;
use common::*;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

/// How long Prometheus may take to start, scrape or evaluate what a step waits for.
const PROM_WAIT: Duration = Duration::from_secs(30);
/// The audit-mode tenant.
const APP3: &str = "127.0.0.4";
/// Denied CONNECTs per tenant in the burst: the deny-spike rule wants more than 1 deny/s as
/// `rate(...[5m])`, which divides by the whole 5 minutes however recent the series.
const BURST: usize = 400;
/// The alert the burst must trigger.
const DENY_SPIKE: &str = "EgressGatewayTenantDenySpike";

fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// `prometheus` on PATH, if any.
fn prometheus_binary() -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("prometheus"))
        .find(|path| path.is_file())
}

/// A running Prometheus; killed (and reaped) on drop, also when an assertion fails.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts `binary` scraping `target` (the gateway's admin address) and waits until ready.
    fn start(binary: &Path, target: SocketAddr) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, scrape_config(target)).expect("write prometheus.yml");
        let addr = closed_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("spawn prometheus");
        let prometheus = Self { child, addr, dir };
        prometheus.wait_until("Prometheus ready", || match prometheus.get("/-/ready") {
            Some((200, _)) => Ok(()),
            other => Err(format!("{other:?}")),
        });
        prometheus
    }

    /// `GET path` as HTTP/1.0 (so the answer is never chunked): (status, body).
    fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut stream = TcpStream::connect_timeout(&self.addr, WAIT).ok()?;
        stream.set_read_timeout(Some(WAIT)).ok()?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: prometheus\r\n\r\n").ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let status = response.split(' ').nth(1)?.parse().ok()?;
        let (_, body) = response.split_once("\r\n\r\n")?;
        Some((status, body.to_owned()))
    }

    /// `GET /api/v1/<what>`'s `data`, or the API's error text.
    fn api(&self, what: &str) -> Result<Value, String> {
        let (status, body) = self
            .get(&format!("/api/v1/{what}"))
            .ok_or_else(|| "no answer from Prometheus".to_owned())?;
        let json: Value =
            serde_json::from_str(&body).map_err(|e| format!("HTTP {status}: {e}: {body}"))?;
        if json["status"] != "success" {
            return Err(format!(
                "HTTP {status}: {} {}",
                json["errorType"], json["error"]
            ));
        }
        Ok(json["data"].clone())
    }

    /// An instant PromQL query's result vector (or the error).
    fn query(&self, promql: &str) -> Result<Vec<Value>, String> {
        let data = self.api(&format!("query?query={}", url_encode(promql)))?;
        match data["result"].as_array() {
            Some(result) if data["resultType"] == "vector" => Ok(result.clone()),
            _ => Ok(vec![data["result"].clone()]),
        }
    }

    /// The query's samples keyed by the values of `labels` (joined with `/`).
    fn samples(&self, promql: &str, labels: &[&str]) -> BTreeMap<String, f64> {
        let result = self
            .query(promql)
            .unwrap_or_else(|e| panic!("{promql}: {e}"));
        result
            .iter()
            .map(|sample| {
                let key: Vec<&str> = labels
                    .iter()
                    .map(|l| sample["metric"][l].as_str().unwrap_or(""))
                    .collect();
                let value = sample["value"][1].as_str().expect("sample value");
                (key.join("/"), value.parse().expect("a number"))
            })
            .collect()
    }

    /// Polls `done` (bounded by [`PROM_WAIT`]) until it holds; on timeout panics naming
    /// `what`, with the last thing `done` saw and Prometheus's log.
    fn wait_until(&self, what: &str, mut done: impl FnMut() -> Result<(), String>) {
        let deadline = Instant::now() + PROM_WAIT;
        loop {
            let seen = match done() {
                Ok(()) => return,
                Err(seen) => seen,
            };
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last seen: {seen}\nprometheus log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `Ok` when `promql`'s samples keyed by `labels` are exactly `want`.
    fn samples_are(
        &self,
        promql: &str,
        labels: &[&str],
        want: &BTreeMap<String, f64>,
    ) -> Result<(), String> {
        let got = self.samples(promql, labels);
        if got == *want {
            Ok(())
        } else {
            Err(format!("{promql} = {got:?}, want {want:?}"))
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Prometheus Operator's rendering of `deploy/monitoring/servicemonitor.yaml` for one
/// gateway pod, as a static config: the job label is the admin Service's name, the target
/// labels are the ones the operator adds from the Endpoints, and `honor_labels` lets the
/// gateway's tenant `namespace` win over the pod's own. Intervals are 1 s (the
/// ServiceMonitor says 30 s) so that the test takes seconds, not minutes.
fn scrape_config(target: SocketAddr) -> String {
    let rules = repo_path("deploy/monitoring/rules/egress-gateway.rules.yaml");
    format!(
        r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - "{rules}"
scrape_configs:
  - job_name: egress-gateway-admin
    honor_labels: true
    metrics_path: /metrics
    scheme: http
    static_configs:
      - targets: ["{target}"]
        labels:
          namespace: egress-system
          service: egress-gateway-admin
          endpoint: metrics
          pod: egress-gateway-0
          container: egress-gateway
"#,
        rules = rules.display()
    )
}

/// Percent-encodes a query parameter value.
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every `expr` string of a Grafana dashboard, at any depth.
fn dashboard_exprs(json: &Value, out: &mut Vec<String>) {
    match json {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr", Value::String(expr)) => out.push(expr.clone()),
                    _ => dashboard_exprs(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| dashboard_exprs(item, out)),
        _ => {}
    }
}

/// A dashboard query as Grafana sends it with the defaults: `$namespace` is "All" (the
/// variable's `allValue`, `.*`), and `$__rate_interval` is 1m, which covers the whole test's
/// traffic (Grafana's own value, at least four scrape intervals, would be a few seconds
/// here and show zeros once the traffic stops).
fn grafana_substitute(expr: &str) -> String {
    expr.replace("${namespace}", ".*")
        .replace("$namespace", ".*")
        .replace("$__rate_interval", "1m")
}

/// Gateway config: connect and mTLS listeners, app1..app3 by source address, app3 audited,
/// 127.0.0.1 allowed as an upstream (the audited CONNECT to the echo server's IP literal).
fn config(echo: SocketAddr) -> ConfigDir {
    let config = ConfigDir::new(&format!(
        "listeners:\n  connect: {{address: \"127.0.0.1:0\"}}\n  connect_tls: {{address: \"127.0.0.1:0\"}}\nadmin: {{address: \"127.0.0.1:0\"}}\ntls: {{cert: certs/gw.pem, key: certs/gw-key.pem, client_ca: certs/ca.pem}}\nidentity:\n  trust_domain: cluster.local\n  sources:\n    - {{cidr: \"{APP1}/32\", namespace: app1}}\n    - {{cidr: \"{APP2}/32\", namespace: app2}}\n    - {{cidr: \"{APP3}/32\", namespace: app3}}\nenforcement: {{namespaces: {{app3: audit}}}}\nupstream: {{allow_cidrs: [\"127.0.0.1/32\"]}}\n"
    ));
    let ca = Ca::new("tenant-ca");
    let server = ca.server(&["127.0.0.1", "gateway.test"]);
    let certs = config.path().join("certs");
    std::fs::create_dir_all(&certs).expect("mkdir certs");
    std::fs::write(certs.join("gw.pem"), &server.cert).expect("write cert");
    std::fs::write(certs.join("gw-key.pem"), &server.key).expect("write key");
    std::fs::write(certs.join("ca.pem"), &ca.pem).expect("write ca");
    for ns in ["app1", "app2", "app3"] {
        config.entry(
            &format!("{ns}/web.yaml"),
            &static_entry("web", "web.test", 8000, "TCP", echo),
        );
    }
    // An entry expiring in three days: the expiry panel's series and the expiry alert.
    let expires = rfc3339(whole_second_after(Duration::from_secs(3 * 24 * 3600)));
    let expiring = static_entry("expiring", "expiring.test", 8000, "TCP", echo);
    let owned = [
        ("egress-gateway.io/expires", expires.as_str()),
        ("egress-gateway.io/owner", "team-b"),
    ];
    config.entry(
        "app2/expiring.yaml",
        &annotated(&expiring, "expiring", &owned),
    );
    // An upstream that refuses: the gateway-caused failures of the availability SLI.
    config.entry(
        "app1/down.yaml",
        &static_entry("down", "down.test", 8000, "TCP", closed_port()),
    );
    config
}

/// A CONNECT the upstream refuses: `upstream_unreachable`, a gateway-side failure.
async fn unreachable(proxy: SocketAddr) {
    let answer = connect_request(APP1, proxy, "down.test:8000").await;
    assert_eq!(answer.status, 502, "{}", answer.head);
}

/// One allowed tunnel with an echo round trip, closed from both ends.
async fn allowed(from: &str, proxy: SocketAddr) {
    let mut tunnel = open_tunnel(from, proxy, "web.test:8000").await;
    echo_roundtrip(&mut tunnel, b"through the gateway")
        .await
        .expect("echo through the tunnel");
    tunnel.shutdown().await.expect("shutdown");
    let (_, closed) = read_until_closed(&mut tunnel, WAIT).await;
    assert!(closed, "the tunnel was not closed");
}

/// An audited CONNECT from app3 (to the echo server's address, which no entry lists).
async fn audited(proxy: SocketAddr, echo: SocketAddr) {
    let answer = connect_request(APP3, proxy, &echo.to_string()).await;
    assert_eq!(answer.status, 200, "audited CONNECT: {}", answer.head);
}

/// `n` denied CONNECTs (a host no entry lists).
async fn denied(from: &str, proxy: SocketAddr, n: usize) {
    for _ in 0..n {
        let answer = connect_request(from, proxy, "not-listed.test:443").await;
        assert_eq!(answer.status, 403, "{}", answer.head);
        assert_eq!(answer.deny_reason().as_deref(), Some("not_allowlisted"));
    }
}

#[test]
fn prometheus_scrapes_the_gateway_and_evaluates_the_shipped_monitoring() {
    let Some(binary) = prometheus_binary() else {
        eprintln!(
            "SKIPPED: no `prometheus` on PATH (Debian package prometheus; .ci/run installs it)"
        );
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let echo = runtime.block_on(echo_server());
    let config = config(echo);
    let gateway = Gateway::start(&config);
    let proxy = gateway.addr("connect");
    let prometheus = Prometheus::start(&binary, gateway.addr("admin"));
    let up = BTreeMap::from([(String::new(), 1.0)]);
    prometheus.wait_until("the gateway target up", || {
        prometheus.samples_are("up{job=\"egress-gateway-admin\"}", &[], &up)
    });

    // First traffic: every series the dashboard reads comes into being, and Prometheus scrapes
    // the deny counters at 1 before the burst (rate() sees no increase in a series' first
    // sample).
    runtime.block_on(async {
        for tenant in [APP1, APP2] {
            allowed(tenant, proxy).await;
            denied(tenant, proxy, 1).await;
        }
        audited(proxy, echo).await;
        unreachable(proxy).await;
        // A failed TLS handshake: plaintext on the mTLS listener.
        let mut plain = connect_from(APP1, gateway.addr("connect_tls")).await;
        plain
            .write_all(b"GET / HTTP/1.1\r\n\r\n")
            .await
            .expect("write");
        let _ = read_until_closed(&mut plain, WAIT).await;
    });
    // `> 0`: the gateway exports some series at 0 from start-up.
    let counts =
        "sum by (namespace, decision) (egress_connections_total{listener=\"connect\"}) > 0";
    // app1's denies include one `upstream_unreachable` per phase (`unreachable`).
    let expect = |deny: f64, allow: f64, audit: f64, unreachable: f64| {
        BTreeMap::from([
            ("app1/allow".to_owned(), allow),
            ("app1/deny".to_owned(), deny + unreachable),
            ("app2/allow".to_owned(), allow),
            ("app2/deny".to_owned(), deny),
            ("app3/audit".to_owned(), audit),
        ])
    };
    let first = expect(1.0, 1.0, 1.0, 1.0);
    prometheus.wait_until("the first traffic in the TSDB", || {
        prometheus.samples_are(counts, &["namespace", "decision"], &first)
    });

    // The burst, and one more allowed tunnel each.
    runtime.block_on(async {
        for tenant in [APP1, APP2] {
            denied(tenant, proxy, BURST).await;
            allowed(tenant, proxy).await;
        }
        audited(proxy, echo).await;
        unreachable(proxy).await;
    });
    let total_denies = 1.0 + BURST as f64;
    let all = expect(total_denies, 2.0, 2.0, 2.0);
    prometheus.wait_until("exact per-tenant counts in the TSDB", || {
        prometheus.samples_are(counts, &["namespace", "decision"], &all)
    });

    // Per-namespace rates under the tenant's namespace, not the gateway pod's.
    let rates = prometheus.samples(
        "sum by (namespace, decision) (rate(egress_connections_total[1m]))",
        &["namespace", "decision"],
    );
    for key in [
        "app1/allow",
        "app1/deny",
        "app2/allow",
        "app2/deny",
        "app3/audit",
    ] {
        assert!(
            rates.get(key).is_some_and(|rate| *rate > 0.0),
            "rate for {key} is not positive: {rates:?}"
        );
    }
    assert!(
        rates.keys().all(|k| !k.starts_with("egress-system/")),
        "series carry the pod's namespace, not the tenant's: {rates:?}"
    );
    let exported = prometheus
        .query("count(egress_connections_total{exported_namespace!=\"\"})")
        .expect("exported_namespace query");
    assert!(exported.is_empty(), "honor_labels lost: {exported:?}");
    // The dashboard's `$namespace` choices: label_values(egress_connections_total, namespace).
    let choices = prometheus
        .api(&format!(
            "label/namespace/values?{}={}",
            url_encode("match[]"),
            url_encode("egress_connections_total")
        ))
        .expect("label values");
    assert_eq!(
        choices,
        serde_json::json!(["app1", "app2", "app3"]),
        "the dashboard would offer these tenants"
    );

    // Every dashboard query evaluates and returns series.
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_path(
            "deploy/monitoring/dashboards/egress-gateway.json",
        ))
        .expect("read the dashboard"),
    )
    .expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    dashboard_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() >= 10, "only {} dashboard queries", exprs.len());
    // kube-state-metrics is not part of this test: its panels must evaluate, not return series.
    let failures: Vec<String> = exprs
        .iter()
        .map(|expr| grafana_substitute(expr))
        .filter_map(|promql| match prometheus.query(&promql) {
            Ok(result) if !result.is_empty() || promql.contains("kube_") => None,
            Ok(_) => Some(format!("no series: {promql}")),
            Err(e) => Some(format!("error: {promql}: {e}")),
        })
        .collect();
    assert!(
        failures.is_empty(),
        "dashboard queries that failed:\n{}",
        failures.join("\n")
    );

    // The deny spike, through Prometheus's own rule evaluation.
    prometheus.wait_until(
        "EgressGatewayTenantDenySpike pending for app1 and app2",
        || {
            let alerts = prometheus.api("alerts").expect("alerts");
            let mut spiking: Vec<String> = alerts["alerts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|a| a["labels"]["alertname"] == DENY_SPIKE)
                .filter(|a| a["state"] == "pending" || a["state"] == "firing")
                .filter_map(|a| a["labels"]["namespace"].as_str().map(str::to_owned))
                .collect();
            spiking.sort();
            if spiking == ["app1", "app2"] {
                Ok(())
            } else {
                Err(format!("{DENY_SPIKE} pending or firing for {spiking:?}"))
            }
        },
    );

    // The entry expiring in three days, through Prometheus's own rule evaluation.
    prometheus.wait_until(
        "EgressAllowlistEntryExpiringSoon pending for app2/expiring",
        || {
            let alerts = prometheus.api("alerts").expect("alerts");
            let expiring: Vec<&Value> = alerts["alerts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|a| a["labels"]["alertname"] == "EgressAllowlistEntryExpiringSoon")
                .filter(|a| a["state"] == "pending" || a["state"] == "firing")
                .collect();
            match expiring.as_slice() {
                [alert]
                    if alert["labels"]["service_entry"] == "app2/expiring"
                        && alert["labels"]["owner"] == "team-b" =>
                {
                    Ok(())
                }
                other => Err(format!("EgressAllowlistEntryExpiringSoon: {other:?}")),
            }
        },
    );

    // Every rule of the file was loaded and evaluates without error.
    let groups = prometheus.api("rules").expect("rules");
    let rules: Vec<&Value> = groups["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .collect();
    assert!(rules.len() >= 5, "only {} rules loaded", rules.len());
    for rule in rules {
        assert_eq!(
            rule["health"], "ok",
            "rule {} fails: {}",
            rule["name"], rule["lastError"]
        );
    }
}
