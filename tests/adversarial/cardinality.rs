//! Label cardinality as an attack: hosts, SNI names, Host headers and SPIFFE IDs a tenant
//! merely asked for or presented never become metric label values, so a tenant spraying random
//! names cannot grow `/metrics` (docs/metrics.md).

use tokio::io::AsyncWriteExt;

use crate::attack::raw_exchange;
use crate::common::{
    connect_from, echo_server, read_head, static_entry, transparent_gateway_yaml, ConfigDir,
    Gateway, APP1, STRANGER,
};
use crate::hello::Hello;

/// Sprays `round` distinct names through every plaintext listener.
async fn spray(gw: &Gateway, round: &str) {
    for i in 0..10 {
        let name = format!("spray{round}x{i}.test");
        let connect = format!("CONNECT {name}:443 HTTP/1.1\r\n\r\n");
        let _ = raw_exchange(APP1, gw.addr("connect"), connect.as_bytes()).await;
        let _ = raw_exchange(STRANGER, gw.addr("connect"), connect.as_bytes()).await;
        let get = format!("GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n");
        let _ = raw_exchange(APP1, gw.addr("http"), get.as_bytes()).await;
        let _ = raw_exchange(APP1, gw.addr("sni"), &Hello::named(&name).record()).await;
        // An SNI mismatch inside an allowed tunnel carries the name too.
        let mut tunnel = connect_from(APP1, gw.addr("connect")).await;
        tunnel
            .write_all(b"CONNECT tls.test:443 HTTP/1.1\r\n\r\n")
            .await
            .expect("write");
        assert!(read_head(&mut tunnel).await.starts_with("HTTP/1.1 200"));
        tunnel
            .write_all(&Hello::named(&name).record())
            .await
            .expect("hello");
        let _ = crate::attack::read_to_close(&mut tunnel).await;
    }
}

fn series(body: &str) -> Vec<&str> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' ').map(|(name, _)| name))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn names_a_tenant_sprays_never_become_label_values() {
    let echo = echo_server().await;
    let config = ConfigDir::new(&transparent_gateway_yaml(&[], ""));
    config.entry(
        "app1/tls.yaml",
        &static_entry("tls", "tls.test", 443, "TLS", echo),
    );
    let gw = Gateway::start(&config);
    let baseline = crate::baseline::Baseline::take(&gw);
    spray(&gw, "a").await;
    gw.wait_access_logs(50, |_| true);
    let (_, first) = gw.admin_get("/metrics");
    spray(&gw, "b").await;
    gw.wait_access_logs(100, |_| true);
    let (_, second) = gw.admin_get("/metrics");
    assert!(
        !second.contains("spray"),
        "an asked-for name became a label"
    );
    let (before, after) = (series(&first), series(&second));
    let grown: Vec<&&str> = after.iter().filter(|s| !before.contains(s)).collect();
    assert!(
        grown.is_empty(),
        "a second round of new names added series: {grown:?}"
    );
    baseline.settle(&gw, "sprayed names");
}
