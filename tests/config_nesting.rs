//! Issue 14.7: a ServiceEntry file whose first document earns a finding (here a warning for a
//! skipped kind) and whose second document is nested thirty thousand levels deep (60 kB of
//! `- - - …`) made the position locator recurse until the stack overflowed: `check` aborted, a
//! reload killed the running gateway, and start-up crash-looped. Now the file is refused with
//! `FILE:LINE:COL` where the nesting crosses the limit, `check` exits 1, and a running gateway
//! keeps serving its last good snapshot (docs/operations.md).

mod common;

use std::process::Command;

use common::*;

/// A first document that earns a warning, then a second one nested `depth` levels deep.
fn warning_then_deep(depth: usize) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: unrelated}}\n---\n{}x\n",
        "- ".repeat(depth)
    )
}

/// Where the 65th sequence of line 5 starts: the first level past the limit of 64.
const DEEP_AT: &str = "bad.yaml:5:129: nesting deeper than 64 levels";

#[test]
fn check_refuses_a_deeply_nested_second_document_at_its_position() {
    let config = ConfigDir::new(&gateway_yaml(""));
    config.entry("app1/bad.yaml", &warning_then_deep(30_000));
    let output = Command::new(env!("CARGO_BIN_EXE_egress-gateway"))
        .args(["check", "--config"])
        .arg(config.path())
        .env("RUST_LOG", "warn")
        .output()
        .expect("run check");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(DEEP_AT), "{stderr}");
    assert!(!stderr.contains("overflow"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_gateway_keeps_serving_when_a_deeply_nested_file_arrives() {
    let echo = echo_server().await;
    let config = ConfigDir::new(&gateway_yaml(""));
    config.entry(
        "app1/web.yaml",
        &static_entry("web", "web.test", 8000, "TCP", echo),
    );
    let gateway = Gateway::start(&config);
    gateway.wait_watching();
    let proxy = gateway.addr("connect");

    config.replace_entry("app1/bad.yaml", &warning_then_deep(30_000));
    gateway.wait_metric(
        "egress_config_reloads_total",
        &[("result", "failure")],
        |n| n >= 1.0,
    );
    gateway.wait_log(DEEP_AT);

    let mut tunnel = open_tunnel(APP1, proxy, "web.test:8000").await;
    echo_roundtrip(&mut tunnel, b"still serving")
        .await
        .expect("the last good snapshot still serves");
    assert_eq!(gateway.generation(), 1.0);
    let (status, _) = gateway.admin_get("/readyz");
    assert_eq!(status, 200, "readiness is unaffected by a failed reload");
}
