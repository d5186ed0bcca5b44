//! The upstream connection pool of forwarded HTTP/1.1 (`upstream.pool`), against the real
//! binary: a tenant's keep-alive requests to one destination share one upstream connection,
//! another tenant never gets it, a connection is not reused after an incomplete body, after
//! `Connection: close` or after an upstream that closed it while idle, idle connections close
//! after `idle_timeout`, and pooled connections do not hold the drain up.
//!
//! The origin counts the TCP connections it accepts and reports each one closing, so reuse is
//! seen from the origin's side, as an operator would see it in its logs.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// A keep-alive origin: `/` answers a short body, `/big` 4 MiB, `/close` answers with
/// `Connection: close`, `/drop` closes without answering.
struct Origin {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    closed: mpsc::UnboundedReceiver<()>,
}

impl Origin {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let (closed_tx, closed) = mpsc::unbounded_channel();
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let closed = closed_tx.clone();
                tokio::spawn(async move {
                    serve(stream).await;
                    let _ = closed.send(());
                });
            }
        });
        Self {
            addr,
            accepted,
            closed,
        }
    }

    fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Waits until the origin has seen `n` connections close.
    async fn wait_closed(&mut self, n: usize, within: Duration) {
        for _ in 0..n {
            tokio::time::timeout(within, self.closed.recv())
                .await
                .expect("an upstream connection closes in time")
                .expect("origin alive");
        }
    }
}

async fn serve(stream: TcpStream) {
    let mut stream = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        match stream.read_line(&mut request_line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut line = String::new();
        while stream.read_line(&mut line).await.is_ok_and(|n| n > 2) {
            line.clear();
        }
        let path = request_line.split(' ').nth(1).unwrap_or("/").to_owned();
        let (body, close) = match path.as_str() {
            "/big" => (vec![b'x'; 4 << 20], false),
            "/close" => (b"bye".to_vec(), true),
            "/drop" => return,
            _ => (b"pooled".to_vec(), false),
        };
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{}\r\n",
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        let inner = stream.get_mut();
        if inner.write_all(head.as_bytes()).await.is_err()
            || inner.write_all(&body).await.is_err()
            || close
        {
            return;
        }
    }
}

/// One absolute-form GET on the tenant's keep-alive connection; returns the status and body.
async fn get(client: &mut TcpStream, host: &str, path: &str) -> (u16, Vec<u8>) {
    let request = format!("GET http://{host}{path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
    client.write_all(request.as_bytes()).await.expect("send");
    let head = read_head(client).await;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_owned)
        })
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    tokio::time::timeout(WAIT, client.read_exact(&mut body))
        .await
        .expect("body in time")
        .expect("body");
    (status, body)
}

fn config(origin: SocketAddr, pool: &str) -> ConfigDir {
    let config = ConfigDir::new(&gateway_yaml(&format!("upstream:\n  pool: {pool}\n")));
    let entry = static_entry("web", "pool.test", 80, "HTTP", origin);
    config.entry("app1/web.yaml", &entry);
    config.entry("app2/web.yaml", &entry);
    config
}

#[tokio::test(flavor = "multi_thread")]
async fn one_tenants_keep_alive_requests_share_one_upstream_connection_and_no_other_tenant_does() {
    let origin = Origin::start().await;
    let config = config(origin.addr, "{idle_timeout: 60s}");
    let gw = Gateway::start(&config);
    let proxy = gw.addr("connect");

    // Five requests on one client connection, then five more on five new client connections:
    // the origin sees one connection from the gateway for all ten.
    let mut client = connect_from(APP1, proxy).await;
    for _ in 0..5 {
        assert_eq!(
            get(&mut client, "pool.test", "/").await,
            (200, b"pooled".to_vec())
        );
    }
    for _ in 0..5 {
        let mut client = connect_from(APP1, proxy).await;
        assert_eq!(get(&mut client, "pool.test", "/").await.0, 200);
    }
    assert_eq!(
        origin.connections(),
        1,
        "app1's requests share one connection"
    );
    let lines = gw.wait_access_logs(10, |l| l["namespace"] == "app1" && l["decision"] == "allow");
    for line in &lines {
        assert_eq!(line["upstream"], origin.addr.to_string().as_str(), "{line}");
        assert!(
            line["bytes_ingress"].as_u64().is_some_and(|b| b > 0),
            "{line}"
        );
    }

    // The same destination for another tenant is another connection.
    let mut other = connect_from(APP2, proxy).await;
    assert_eq!(get(&mut other, "pool.test", "/").await.0, 200);
    assert_eq!(origin.connections(), 2, "app2 never gets app1's connection");
    gw.wait_metric("egress_upstream_pool_idle_connections", &[], |v| v == 2.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_is_not_reused_after_an_incomplete_body_a_close_or_an_upstream_that_left() {
    let mut origin = Origin::start().await;
    let config = config(origin.addr, "{idle_timeout: 60s}");
    let gw = Gateway::start(&config);
    let proxy = gw.addr("connect");

    // The tenant leaves in the middle of a 4 MiB body: that upstream connection is closed.
    let mut client = connect_from(APP1, proxy).await;
    client
        .write_all(b"GET http://pool.test/big HTTP/1.1\r\nHost: pool.test\r\n\r\n")
        .await
        .expect("send");
    read_head(&mut client).await;
    drop(client);
    origin.wait_closed(1, WAIT).await;
    let mut client = connect_from(APP1, proxy).await;
    assert_eq!(get(&mut client, "pool.test", "/").await.0, 200);
    assert_eq!(origin.connections(), 2);

    // `Connection: close` from the upstream: the next request dials again.
    assert_eq!(get(&mut client, "pool.test", "/close").await.0, 200);
    origin.wait_closed(1, WAIT).await;
    assert_eq!(get(&mut client, "pool.test", "/").await.0, 200);
    assert_eq!(origin.connections(), 3);

    // The upstream drops the pooled connection without answering: that request fails, and
    // the next one gets a fresh connection.
    let (status, _) = get(&mut connect_from(APP1, proxy).await, "pool.test", "/drop").await;
    assert_eq!(status, 502);
    let mut client = connect_from(APP1, proxy).await;
    assert_eq!(get(&mut client, "pool.test", "/").await.0, 200);
    assert_eq!(origin.connections(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_close_after_the_idle_timeout_and_do_not_hold_the_drain() {
    let mut origin = Origin::start().await;
    let config = config(origin.addr, "{idle_timeout: 1s}");
    let gw = Gateway::start(&config);
    let proxy = gw.addr("connect");
    let mut client = connect_from(APP1, proxy).await;
    assert_eq!(get(&mut client, "pool.test", "/").await.0, 200);
    drop(client);
    origin.wait_closed(1, WAIT).await;

    // A pooled connection at SIGTERM: the gateway exits at once, not after `timeouts.drain`.
    let config = config_with_drain(origin.addr);
    let mut gw = Gateway::start(&config);
    let mut client = connect_from(APP1, gw.addr("connect")).await;
    assert_eq!(get(&mut client, "pool.test", "/").await.0, 200);
    drop(client);
    let started = Instant::now();
    gw.signal("TERM");
    assert_eq!(gw.wait_exit(WAIT), Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

fn config_with_drain(origin: SocketAddr) -> ConfigDir {
    let config = ConfigDir::new(&gateway_yaml(
        "upstream:\n  pool: {idle_timeout: 60s}\ntimeouts: {drain: 30s}\n",
    ));
    config.entry(
        "app1/web.yaml",
        &static_entry("web", "pool.test", 80, "HTTP", origin),
    );
    config
}
