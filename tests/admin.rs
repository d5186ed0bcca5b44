//! The admin server and the process lifecycle of the real binary (docs/metrics.md, docs/operations.md): `/healthz`,
//! `/readyz`, `/config` (generation, every file with its sha256) and `/metrics` (build info,
//! generation, entries per namespace); `egress_bytes_total` advancing while a tunnel is still
//! open; SIGHUP reloads (a good change applies to new connections, a broken file is counted as a
//! failed reload and the old policy keeps serving); SIGTERM drains (`/readyz` 503, open tunnels
//! finish) and exits 0.
//!
//! Everything runs on 127.0.0.x; waits poll admin endpoints or log lines with a deadline.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

/// Echo round trip through an open tunnel (without closing it).
async fn echo_once(tunnel: &mut tokio::net::TcpStream, data: &[u8]) {
    tunnel.write_all(data).await.expect("write");
    let mut back = vec![0u8; data.len()];
    timeout(WAIT, tunnel.read_exact(&mut back))
        .await
        .expect("echo in time")
        .expect("echo");
    assert_eq!(back, data);
}

#[tokio::test(flavor = "multi_thread")]
async fn health_ready_config_and_metrics() {
    let echo = echo_server().await;
    let config = ConfigDir::new(&gateway_yaml(""));
    config.entry(
        "app1/a.yaml",
        &static_entry("a", "a.test", 9000, "TCP", echo),
    );
    config.entry(
        "app1/b.yaml",
        &static_entry("b", "b.test", 9000, "TCP", echo),
    );
    config.entry(
        "app2/c.yaml",
        &static_entry("c", "c.test", 9000, "TCP", echo),
    );
    let gw = Gateway::start(&config);

    assert_eq!(gw.admin_get("/healthz").0, 200);
    assert_eq!(gw.admin_get("/readyz").0, 200);
    assert_eq!(gw.admin_get("/nope").0, 404);

    let (status, body) = gw.admin_get("/config");
    assert_eq!(status, 200);
    let json: Value = serde_json::from_str(&body).expect("/config is JSON");
    assert_eq!(json["generation"], 1, "{json}");
    let files = json["files"].as_array().expect("files");
    let paths: Vec<&str> = files.iter().filter_map(|f| f["path"].as_str()).collect();
    for expected in ["gateway.yaml", "app1/a.yaml", "app1/b.yaml", "app2/c.yaml"] {
        assert!(
            paths.iter().any(|p| p.ends_with(expected)),
            "{expected} missing from /config files: {paths:?}"
        );
    }
    assert_eq!(files.len(), 4, "{paths:?}");
    for file in files {
        let sha = file["sha256"].as_str().expect("sha256");
        assert!(
            sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()),
            "not a hex sha256: {file}"
        );
    }
    assert_eq!(
        json["namespaces"]["app1"]["entries"]
            .as_array()
            .map(Vec::len),
        Some(2),
        "{json}"
    );

    let (status, metrics) = gw.admin_get("/metrics");
    assert_eq!(status, 200);
    assert_eq!(
        metric_value(
            &metrics,
            "egress_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric_value(&metrics, "egress_config_generation", &[]),
        Some(1.0)
    );
    assert_eq!(
        metric_value(&metrics, "egress_service_entries", &[("namespace", "app1")]),
        Some(2.0)
    );
    assert_eq!(
        metric_value(&metrics, "egress_service_entries", &[("namespace", "app2")]),
        Some(1.0)
    );
    assert!(
        metrics.contains("# TYPE egress_connections_total counter"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bytes_total_advances_while_a_tunnel_is_open() {
    let echo = echo_server().await;
    let config = ConfigDir::new(&gateway_yaml(""));
    config.entry(
        "app1/echo.yaml",
        &static_entry("echo", "echo.test", 9000, "TCP", echo),
    );
    let gw = Gateway::start(&config);

    let answer = connect_request(APP1, gw.addr("connect"), "echo.test:9000").await;
    assert_eq!(answer.status, 200, "{}", answer.head);
    let mut tunnel = answer.stream;
    echo_once(&mut tunnel, &[7u8; 1000]).await;

    let labels = [
        ("namespace", "app1"),
        ("service_entry", "app1/echo"),
        ("direction", "egress"),
    ];
    let gw_ref = &gw;
    let egress = tokio::task::block_in_place(|| {
        gw_ref.wait_metric_within(
            "egress_bytes_total",
            &labels,
            Duration::from_secs(12),
            |v| v >= 1000.0,
        )
    });
    assert_eq!(egress, 1000.0);
    // The tunnel is still open: no access-log line yet, and it still carries bytes.
    assert!(gw.access_log().is_empty(), "{:?}", gw.access_log());
    echo_once(&mut tunnel, b"more").await;
    tunnel.shutdown().await.expect("shutdown");
    let mut rest = Vec::new();
    timeout(WAIT, tunnel.read_to_end(&mut rest))
        .await
        .expect("EOF")
        .expect("read");
    let line = gw.wait_access_log(|v| v["host"] == "echo.test");
    assert_eq!(line["bytes_egress"], 1004, "{line}");
    assert_eq!(gw.metric("egress_bytes_total", &labels), Some(1004.0));
}

/// `egress_config_generation` and the successful-load counter, from one scrape.
fn generation_and_successes(gw: &Gateway) -> (Option<f64>, Option<f64>) {
    let (_, body) = gw.admin_get("/metrics");
    (
        metric_value(&body, "egress_config_generation", &[]),
        metric_value(
            &body,
            "egress_config_reloads_total",
            &[("result", "success")],
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_and_a_broken_reload_keeps_the_old_policy() {
    let echo = echo_server().await;
    let config = ConfigDir::new(&gateway_yaml(""));
    config.entry(
        "app1/echo.yaml",
        &static_entry("echo", "old.test", 9000, "TCP", echo),
    );
    let gw = Gateway::start(&config);
    let proxy = gw.addr("connect");
    assert_eq!(
        connect_request(APP1, proxy, "old.test:9000").await.status,
        200
    );

    // Nothing changed on disk, so no file watcher fires: only SIGHUP can make generation 2.
    tokio::task::block_in_place(|| {
        gw.signal("HUP");
        gw.wait_metric("egress_config_generation", &[], |g| g == 2.0);
    });
    gw.wait_log("SIGHUP: reloading");

    // A good change (renamed into place, so every reload sees all of it or none of it): once a
    // reload applied it, the new host is allowed and the old one is not. (The config-dir watcher
    // may reload it too, so the generation is only known to be at least 3.)
    config.replace_entry(
        "app1/echo.yaml",
        &static_entry("echo", "new.test", 9000, "TCP", echo),
    );
    tokio::task::block_in_place(|| {
        gw.signal("HUP");
        gw.wait_metric("egress_config_generation", &[], |g| g >= 3.0);
    });
    let (_, body) = gw.admin_get("/config");
    let json: Value = serde_json::from_str(&body).expect("json");
    assert!(json["generation"].as_u64() >= Some(3), "{json}");
    assert_eq!(
        connect_request(APP1, proxy, "new.test:9000").await.status,
        200
    );
    let answer = connect_request(APP1, proxy, "old.test:9000").await;
    assert_eq!(answer.status, 403);
    assert_eq!(answer.deny_reason().as_deref(), Some("not_allowlisted"));

    // A broken file: the reload fails, is counted, logs FILE:LINE:COL, and the previous snapshot
    // keeps serving.
    config.replace_entry(
        "app1/echo.yaml",
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: echo}\nspec:\n  hostz: [\"broken.test\"]\n",
    );
    tokio::task::block_in_place(|| {
        gw.signal("HUP");
        gw.wait_metric(
            "egress_config_reloads_total",
            &[("result", "failure")],
            |v| v >= 1.0,
        );
    });
    gw.wait_log("echo.yaml:5:3: spec.hostz: unknown field `hostz`");
    // A failed reload never bumps the generation: it stays equal to the number of successful
    // loads (start-up included).
    let (generation, successes) = generation_and_successes(&gw);
    assert!(generation >= Some(3.0), "{generation:?}");
    assert_eq!(generation, successes);
    assert_eq!(gw.admin_get("/readyz").0, 200);
    assert_eq!(
        connect_request(APP1, proxy, "new.test:9000").await.status,
        200
    );
    let answer = connect_request(APP1, proxy, "broken.test:9000").await;
    assert_eq!(answer.status, 403);
    assert_eq!(answer.deny_reason().as_deref(), Some("not_allowlisted"));
    let (_, body) = gw.admin_get("/config");
    let json: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(json["generation"].as_f64(), generation, "{json}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_without_tunnels_exits_0_promptly() {
    let config = ConfigDir::new(&gateway_yaml(""));
    let mut gw = Gateway::start(&config);
    assert_eq!(gw.admin_get("/readyz").0, 200);
    let started = Instant::now();
    gw.signal("TERM");
    let code = tokio::task::block_in_place(|| gw.wait_exit(Duration::from_secs(5)));
    assert_eq!(code, Some(0), "exit within 5s:\n{}", gw.logs().join("\n"));
    assert!(started.elapsed() < Duration::from_secs(5));
    match gw.try_admin_get("/readyz") {
        None => {}
        Some((status, _)) => assert_eq!(status, 503),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_open_tunnels_then_exits_0() {
    let echo = echo_server().await;
    let config = ConfigDir::new(&gateway_yaml(""));
    config.entry(
        "app1/echo.yaml",
        &static_entry("echo", "echo.test", 9000, "TCP", echo),
    );
    let mut gw = Gateway::start(&config);
    let answer = connect_request(APP1, gw.addr("connect"), "echo.test:9000").await;
    assert_eq!(answer.status, 200);
    let mut tunnel = answer.stream;
    echo_once(&mut tunnel, b"before").await;

    gw.signal("TERM");
    tokio::task::block_in_place(|| {
        let deadline = Instant::now() + WAIT;
        loop {
            if gw.try_admin_get("/readyz").map(|(s, _)| s) == Some(503) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "/readyz never turned 503 while draining"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    });
    // The open tunnel is not disturbed by the drain.
    echo_once(&mut tunnel, b"during the drain").await;
    assert_eq!(
        gw.wait_exit(Duration::from_millis(0)),
        None,
        "exited with a tunnel open"
    );
    tunnel.shutdown().await.expect("shutdown");
    let mut rest = Vec::new();
    timeout(WAIT, tunnel.read_to_end(&mut rest))
        .await
        .expect("EOF")
        .expect("read");
    let code = tokio::task::block_in_place(|| gw.wait_exit(WAIT));
    assert_eq!(code, Some(0), "{}", gw.logs().join("\n"));
    let line = gw.wait_access_log(|v| v["host"] == "echo.test");
    assert_eq!(line["decision"], "allow", "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_right_after_ready_still_exits_0() {
    let config = ConfigDir::new(&gateway_yaml(""));
    let mut gw = Gateway::start(&config);
    // No wait for the handler (Gateway::signal would wait): signal as soon as ready is logged.
    let status = std::process::Command::new("kill")
        .args(["-TERM", &gw.pid().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let code = tokio::task::block_in_place(|| gw.wait_exit(Duration::from_secs(5)));
    assert_eq!(
        code,
        Some(0),
        "killed by the signal instead of a clean exit"
    );
}
