//! The transparent `http` listener and absolute-form requests on the `connect` listener, end to
//! end against the real binary on loopback: every request on a keep-alive connection is decided
//! by its own Host (a forbidden second request gets `403` and never reaches the origin, and the
//! connection stays usable); hop-by-hop headers and proxy credentials are not forwarded; request
//! smuggling shapes get `400` and nothing reaches the origin; curl and raw absolute-form requests
//! take the same path on the `connect` listener; two tenants get different decisions; access-log
//! lines and counters match the requests.
//!
//! Tenants are played from 127.0.0.2 (app1) and 127.0.0.3 (app2); the origin is a local socket on
//! 127.0.0.1 that records every request it receives. Every wait is bounded by `common::WAIT`.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use common::*;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

const BODY: &str = "hello from web.test\n";

// ---------------------------------------------------------------------------------------------
// A recording origin and a raw HTTP/1.1 client.
// ---------------------------------------------------------------------------------------------

/// An HTTP/1.1 origin on 127.0.0.1 with keep-alive: records each request (head, then body) and
/// answers `200` with [`BODY`].
struct Origin {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Origin {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
        let addr = listener.local_addr().expect("addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = requests.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve_origin(stream, recorded.clone()));
            }
        });
        Self { addr, requests }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("lock").clone()
    }
}

async fn serve_origin(stream: TcpStream, requests: Arc<Mutex<Vec<String>>>) {
    let mut stream = BufReader::new(stream);
    loop {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            match stream.read_line(&mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        if header(&head, "transfer-encoding") == Some("chunked") {
            if !read_empty_chunked_body(&mut stream).await {
                return;
            }
        } else {
            let length = header(&head, "content-length").map_or(0, |v| v.parse().unwrap_or(0));
            let mut body = vec![0u8; length];
            if stream.read_exact(&mut body).await.is_err() {
                return;
            }
            head.push_str(&String::from_utf8_lossy(&body));
        }
        requests.lock().expect("lock").push(head);
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{BODY}",
            BODY.len()
        );
        if stream.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// The first value of header `name` (case-insensitive) in an HTTP head.
/// Reads a chunked body that the tests only ever send empty (`0` then the blank line); false
/// when the stream ends first or a chunk has data.
async fn read_empty_chunked_body(stream: &mut BufReader<TcpStream>) -> bool {
    for expected in ["0\r\n", "\r\n"] {
        let mut line = String::new();
        if stream.read_line(&mut line).await.is_err() || line != expected {
            return false;
        }
    }
    true
}

fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then_some(value.trim())
    })
}

/// Whether an HTTP head carries header `name` at all.
fn has_header(head: &str, name: &str) -> bool {
    header(head, name).is_some()
}

/// A response read off a raw connection.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: String,
}

/// Writes `request` and reads one response (Content-Length framed, else to EOF).
async fn exchange(stream: &mut TcpStream, request: &str) -> Answer {
    stream.write_all(request.as_bytes()).await.expect("write");
    let head = read_head(stream).await;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let body = match header(&head, "content-length") {
        Some(length) => {
            let mut body = vec![0u8; length.parse().expect("content-length")];
            timeout(WAIT, stream.read_exact(&mut body))
                .await
                .expect("body in time")
                .expect("read body");
            body
        }
        None => {
            let mut body = Vec::new();
            timeout(WAIT, stream.read_to_end(&mut body))
                .await
                .expect("EOF in time")
                .expect("read to EOF");
            body
        }
    };
    Answer {
        status,
        head,
        body: String::from_utf8(body).expect("utf8 body"),
    }
}

/// Whether the gateway closed `stream` (EOF or reset) rather than keeping it open; bounded.
async fn closed(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        timeout(WAIT, stream.read(&mut byte))
            .await
            .expect("the connection closes in time"),
        Ok(0) | Err(_)
    )
}

fn get(host: &str) -> String {
    format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n")
}

/// A gateway whose app1 allows `web.test:80` (HTTP) to `origin`.
fn gateway_to(origin: &Origin) -> (Gateway, ConfigDir) {
    let config = ConfigDir::new(&transparent_gateway_yaml(&[], ""));
    config.entry(
        "app1/web.yaml",
        &static_entry("web", "web.test", 80, "HTTP", origin.addr),
    );
    (Gateway::start(&config), config)
}

fn log_is(line: &Value, listener: &str, host: &str, decision: &str) -> bool {
    line["listener"] == listener && line["host"] == host && line["decision"] == decision
}

// ---------------------------------------------------------------------------------------------
// Transparent HTTP: every request decided by its own Host.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn each_request_on_a_keep_alive_connection_is_decided_by_its_own_host() {
    let origin = Origin::start().await;
    let (gw, _config) = gateway_to(&origin);
    let mut stream = connect_from(APP1, gw.addr("http")).await;

    let first = exchange(&mut stream, &get("web.test")).await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.body, BODY);

    let second = exchange(&mut stream, &get("evil.test")).await;
    assert_eq!(second.status, 403, "{second:?}");
    assert_eq!(
        header(&second.head, "x-egress-deny-reason"),
        Some("not_allowlisted"),
        "{second:?}"
    );
    assert!(second.body.contains("not_allowlisted"), "{second:?}");

    // A 403 is a complete response: the connection stays open and the next request works.
    let third = exchange(&mut stream, &get("web.test")).await;
    assert_eq!(third.status, 200, "{third:?}");
    assert_eq!(third.body, BODY);

    let seen = origin.requests();
    assert_eq!(
        seen.len(),
        2,
        "the forbidden request never reached the origin: {seen:?}"
    );
    for request in &seen {
        assert_eq!(header(request, "host"), Some("web.test"), "{request}");
        assert!(request.starts_with("GET / HTTP/1.1\r\n"), "{request}");
    }

    drop(stream);
    let allowed = gw.wait_access_logs(2, |v| log_is(v, "http", "web.test", "allow"));
    for line in &allowed {
        assert_eq!(line["namespace"], "app1", "{line}");
        assert_eq!(line["port"], 80, "{line}");
        assert_eq!(line["reason"], "none", "{line}");
        assert_eq!(line["service_entry"], "app1/web", "{line}");
        assert_eq!(line["upstream"], origin.addr.to_string(), "{line}");
        assert!(line["bytes_egress"].as_u64().expect("bytes") > 0, "{line}");
        assert!(line["bytes_ingress"].as_u64().expect("bytes") > 0, "{line}");
    }
    let denied = gw.wait_access_log(|v| log_is(v, "http", "evil.test", "deny"));
    assert_eq!(denied["reason"], "not_allowlisted", "{denied}");
    assert_eq!(denied["namespace"], "app1", "{denied}");
    assert_eq!(denied["port"], 80, "{denied}");
    assert!(denied["upstream"].is_null(), "{denied}");
    assert_eq!(denied["bytes_egress"], 0, "{denied}");

    assert_eq!(
        gw.connections_on("http", "app1", "allow", "none"),
        Some(2.0)
    );
    assert_eq!(
        gw.connections_on("http", "app1", "deny", "not_allowlisted"),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_tenants_get_different_decisions_for_the_same_host() {
    let origin = Origin::start().await;
    let (gw, _config) = gateway_to(&origin);

    let mut app2 = connect_from(APP2, gw.addr("http")).await;
    let denied = exchange(&mut app2, &get("web.test")).await;
    assert_eq!(denied.status, 403, "{denied:?}");
    assert_eq!(
        header(&denied.head, "x-egress-deny-reason"),
        Some("not_allowlisted")
    );
    let mut app1 = connect_from(APP1, gw.addr("http")).await;
    let allowed = exchange(&mut app1, &get("web.test")).await;
    assert_eq!(allowed.status, 200, "{allowed:?}");
    assert_eq!(origin.requests().len(), 1);

    let mut stranger = connect_from(STRANGER, gw.addr("http")).await;
    let unknown = exchange(&mut stranger, &get("web.test")).await;
    assert_eq!(unknown.status, 403, "{unknown:?}");
    assert_eq!(
        header(&unknown.head, "x-egress-deny-reason"),
        Some("unknown_tenant")
    );
    assert_eq!(origin.requests().len(), 1);

    let line = gw.wait_access_log(|v| v["listener"] == "http" && v["namespace"] == "app2");
    assert_eq!(line["decision"], "deny", "{line}");
    assert_eq!(line["reason"], "not_allowlisted", "{line}");
    assert_eq!(
        gw.connections_on("http", "app2", "deny", "not_allowlisted"),
        Some(1.0)
    );
    drop(app1);
    gw.wait_access_log(|v| log_is(v, "http", "web.test", "allow") && v["namespace"] == "app1");
    assert_eq!(
        gw.connections_on("http", "app1", "allow", "none"),
        Some(1.0)
    );
    assert_eq!(
        gw.connections_on("http", "unknown", "deny", "unknown_tenant"),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hop_by_hop_headers_and_proxy_credentials_are_not_forwarded() {
    let origin = Origin::start().await;
    let (gw, _config) = gateway_to(&origin);
    let mut stream = connect_from(APP1, gw.addr("http")).await;

    let answer = exchange(
        &mut stream,
        "GET /path?q=1 HTTP/1.1\r\nHost: web.test\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\nProxy-Connection: keep-alive\r\nKeep-Alive: 5\r\nTE: trailers\r\nUpgrade: h2c\r\nX-Kept: yes\r\n\r\n",
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let seen = origin.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let request = &seen[0];
    assert!(
        request.starts_with("GET /path?q=1 HTTP/1.1\r\n"),
        "{request}"
    );
    for name in [
        "x-secret",
        "proxy-authorization",
        "proxy-connection",
        "keep-alive",
        "te",
        "upgrade",
    ] {
        assert!(
            !has_header(request, name),
            "{name} was forwarded:\n{request}"
        );
    }
    assert_ne!(
        header(request, "connection"),
        Some("close, X-Secret"),
        "the tenant's Connection header was forwarded:\n{request}"
    );
    assert_eq!(header(request, "x-kept"), Some("yes"), "{request}");
    assert_eq!(header(request, "host"), Some("web.test"), "{request}");
    assert!(closed(&mut stream).await, "Connection: close was honoured");
}

// ---------------------------------------------------------------------------------------------
// Smuggling shapes.
// ---------------------------------------------------------------------------------------------

/// Sends each request on its own app1 connection; every one must get `400`, and the origin must
/// see none of them (a valid request afterwards is the only one it records).
async fn expect_all_400(gw: &Gateway, origin: &Origin, requests: &[(&str, &str)]) {
    for (what, request) in requests {
        let mut stream = connect_from(APP1, gw.addr("http")).await;
        stream.write_all(request.as_bytes()).await.expect("write");
        let head = read_head(&mut stream).await;
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status");
        assert_eq!(status, 400, "{what}: {head}");
    }
    let mut stream = connect_from(APP1, gw.addr("http")).await;
    let answer = exchange(&mut stream, &get("web.test")).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let seen = origin.requests();
    assert_eq!(
        seen.len(),
        1,
        "only the valid request reached the origin: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn smuggling_shapes_that_hyper_or_the_gateway_refuse_get_400() {
    let origin = Origin::start().await;
    let (gw, _config) = gateway_to(&origin);
    expect_all_400(
        &gw,
        &origin,
        &[
            (
                "two different Content-Length values",
                "POST / HTTP/1.1\r\nHost: web.test\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde",
            ),
            (
                "a Content-Length list",
                "POST / HTTP/1.1\r\nHost: web.test\r\nContent-Length: 3, 5\r\n\r\nabcde",
            ),
            (
                "two Host headers",
                "GET / HTTP/1.1\r\nHost: web.test\r\nHost: evil.test\r\n\r\n",
            ),
            (
                "obs-fold",
                "GET / HTTP/1.1\r\nHost: web.test\r\nX-Folded: a\r\n b\r\n\r\n",
            ),
            (
                "a space inside a header name",
                "GET / HTTP/1.1\r\nHost: web.test\r\nBad Header: x\r\n\r\n",
            ),
            (
                "whitespace before the colon",
                "GET / HTTP/1.1\r\nHost : evil.test\r\n\r\n",
            ),
            (
                "Transfer-Encoding that does not end in chunked",
                "POST / HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
            ),
            (
                "Transfer-Encoding on HTTP/1.0",
                "POST / HTTP/1.0\r\nHost: web.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            ),
            ("no Host at all", "GET / HTTP/1.1\r\n\r\n"),
        ],
    )
    .await;
    // Every shape is logged and counted for the tenant, whether hyper's parser or the gateway
    // refused it.
    let lines = gw.wait_access_logs(9, |v| {
        v["listener"] == "http" && v["reason"] == "malformed_request"
    });
    for line in &lines {
        assert_eq!(line["decision"], "deny", "{line}");
        assert!(line["upstream"].is_null(), "{line}");
    }
    for line in &lines {
        assert_eq!(line["namespace"], "app1", "{line}");
    }
    let counted = gw.connections_on("http", "app1", "deny", "malformed_request");
    assert_eq!(counted, Some(9.0));
}

/// RFC 9112 §6.3: `Transfer-Encoding` overrides `Content-Length`. The gateway's one parser
/// (hyper) frames the request as chunked, the upstream receives it without `Content-Length`, and
/// the connection closes after the answer, so bytes a front end would have read as a second
/// request never become one.
#[tokio::test(flavor = "multi_thread")]
async fn content_length_with_transfer_encoding_is_forwarded_chunked_and_ends_the_connection() {
    let origin = Origin::start().await;
    let (gw, _config) = gateway_to(&origin);
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: web.test\r\n\r\n";
    for (what, head) in [
        (
            "Content-Length then Transfer-Encoding",
            "POST / HTTP/1.1\r\nHost: web.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        ),
        (
            "Transfer-Encoding then Content-Length",
            "POST / HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        ),
    ] {
        let mut stream = connect_from(APP1, gw.addr("http")).await;
        let request = format!("{head}0\r\n\r\n{smuggled}");
        stream.write_all(request.as_bytes()).await.expect("write");
        let answer = read_head(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{what}: {answer}");
        let mut rest = Vec::new();
        timeout(WAIT, stream.read_to_end(&mut rest))
            .await
            .expect("the connection closes in time")
            .expect("read");
        assert!(
            !String::from_utf8_lossy(&rest).contains("HTTP/1.1"),
            "{what}: a second answer followed"
        );
    }
    let seen = origin.requests();
    assert_eq!(seen.len(), 2, "one request per connection: {seen:?}");
    for request in &seen {
        assert!(request.starts_with("POST / "), "{request}");
        assert_eq!(header(request, "content-length"), None, "{request}");
        assert_eq!(
            header(request, "transfer-encoding"),
            Some("chunked"),
            "{request}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_refused_by_the_parser_are_logged_and_counted() {
    let origin = Origin::start().await;
    let (gw, _config) = gateway_to(&origin);
    let mut stream = connect_from(APP1, gw.addr("http")).await;
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: web.test\r\nX-Folded: a\r\n b\r\n\r\n")
        .await
        .expect("write");
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    let line = gw.wait_access_log(|v| v["listener"] == "http");
    assert_eq!(line["decision"], "deny", "{line}");
    assert_eq!(line["reason"], "malformed_request", "{line}");
    assert_eq!(line["namespace"], "app1", "{line}");
    assert_eq!(
        gw.connections_on("http", "app1", "deny", "malformed_request"),
        Some(1.0)
    );
}

// ---------------------------------------------------------------------------------------------
// Absolute-form requests on the connect listener.
// ---------------------------------------------------------------------------------------------

/// `curl -sS -i -x http://PROXY --interface 127.0.0.2 URL`: (success, stdout, stderr).
async fn curl_via_proxy(proxy: SocketAddr, url: &str) -> (bool, String, String) {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        let output = Command::new("curl")
            .args(["-sS", "-i", "--max-time", "10", "--interface", APP1, "-x"])
            .arg(format!("http://{proxy}"))
            .arg(&url)
            .stdin(Stdio::null())
            .output()
            .expect("curl must be installed to run this test (apt-get install curl)");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    })
    .await
    .expect("curl task")
}

#[tokio::test(flavor = "multi_thread")]
async fn curl_absolute_form_requests_on_the_connect_listener() {
    let origin = Origin::start().await;
    let (gw, _config) = gateway_to(&origin);
    let proxy = gw.addr("connect");

    let (ok, stdout, stderr) = curl_via_proxy(proxy, "http://web.test/").await;
    assert!(ok, "curl failed: {stderr}");
    assert!(stdout.starts_with("HTTP/1.1 200"), "{stdout}");
    assert!(stdout.ends_with(BODY), "{stdout}");
    let seen = origin.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0].starts_with("GET / HTTP/1.1\r\n"),
        "origin-form upstream: {}",
        seen[0]
    );
    assert!(!has_header(&seen[0], "proxy-connection"), "{}", seen[0]);

    let (ok, stdout, stderr) = curl_via_proxy(proxy, "http://evil.test/").await;
    assert!(ok, "curl -i prints a 403 and succeeds: {stderr}");
    assert!(stdout.starts_with("HTTP/1.1 403"), "{stdout}");
    assert!(
        stdout
            .to_ascii_lowercase()
            .contains("x-egress-deny-reason: not_allowlisted"),
        "{stdout}"
    );
    assert_eq!(origin.requests().len(), 1, "the 403 was not forwarded");

    let line = gw.wait_access_log(|v| log_is(v, "connect", "web.test", "allow"));
    assert_eq!(line["namespace"], "app1", "{line}");
    assert_eq!(line["port"], 80, "{line}");
    assert_eq!(line["service_entry"], "app1/web", "{line}");
    assert!(line["bytes_ingress"].as_u64().expect("bytes") > 0, "{line}");
    let line = gw.wait_access_log(|v| log_is(v, "connect", "evil.test", "deny"));
    assert_eq!(line["reason"], "not_allowlisted", "{line}");
    assert_eq!(line["port"], 80, "{line}");
    assert_eq!(
        gw.connections_on("connect", "app1", "allow", "none"),
        Some(1.0)
    );
    assert_eq!(
        gw.connections_on("connect", "app1", "deny", "not_allowlisted"),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_absolute_form_request_is_decided_on_its_own() {
    let origin = Origin::start().await;
    let (gw, _config) = gateway_to(&origin);
    let mut stream = connect_from(APP1, gw.addr("connect")).await;

    let first = exchange(
        &mut stream,
        "GET http://web.test/ HTTP/1.1\r\nHost: web.test\r\n\r\n",
    )
    .await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.body, BODY);

    let second = exchange(
        &mut stream,
        "GET http://evil.test/ HTTP/1.1\r\nHost: evil.test\r\n\r\n",
    )
    .await;
    assert_eq!(second.status, 403, "{second:?}");
    assert_eq!(
        header(&second.head, "x-egress-deny-reason"),
        Some("not_allowlisted")
    );

    // The absolute URI decides, not a Host header that names an allowed host.
    let third = exchange(
        &mut stream,
        "GET http://evil.test/ HTTP/1.1\r\nHost: web.test\r\n\r\n",
    )
    .await;
    assert_eq!(third.status, 403, "{third:?}");
    assert_eq!(
        origin.requests().len(),
        1,
        "denied requests were not forwarded"
    );

    drop(stream);
    let denied = gw.wait_access_logs(2, |v| log_is(v, "connect", "evil.test", "deny"));
    for line in &denied {
        assert_eq!(line["reason"], "not_allowlisted", "{line}");
        assert_eq!(line["namespace"], "app1", "{line}");
    }
    gw.wait_access_log(|v| log_is(v, "connect", "web.test", "allow"));
    assert_eq!(
        gw.connections_on("connect", "app1", "deny", "not_allowlisted"),
        Some(2.0)
    );
}

/// Domain fronting: the absolute-form authority decides and the upstream receives it as `Host`
/// (RFC 9112 §3.2.2), so a `Host` naming another site behind the same front never reaches it.
#[tokio::test(flavor = "multi_thread")]
async fn the_upstream_host_is_the_decided_authority_not_the_clients_host() {
    let origin = Origin::start().await;
    let (gw, _config) = gateway_to(&origin);
    let mut stream = connect_from(APP1, gw.addr("connect")).await;
    let answer = exchange(
        &mut stream,
        "GET http://web.test/ HTTP/1.1\r\nHost: evil.test\r\n\r\n",
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let seen = origin.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(header(&seen[0], "host"), Some("web.test"), "{}", seen[0]);
}

/// Connections that carried absolute-form requests on the `connect` listener leave the
/// active-connection gauge where it was once they close.
#[tokio::test(flavor = "multi_thread")]
async fn absolute_form_connections_leave_the_active_gauge_at_zero() {
    let origin = Origin::start().await;
    let (gw, _config) = gateway_to(&origin);
    for _ in 0..5 {
        let mut stream = connect_from(APP1, gw.addr("connect")).await;
        let answer = exchange(
            &mut stream,
            "GET http://web.test/ HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(answer.status, 200, "{answer:?}");
        assert!(closed(&mut stream).await);
    }
    gw.wait_access_logs(5, |v| log_is(v, "connect", "web.test", "allow"));
    let labels = [("namespace", "app1"), ("listener", "connect")];
    gw.wait_metric("egress_active_connections", &labels, |v| v == 0.0);
}

/// docs/serviceentries.md: HTTP ports get Host checks, inside CONNECT tunnels too. A request in a tunnel to
/// `web.test:80` that names another host is refused `403 host_mismatch` in the tunnel, the
/// tunnel closes, and the origin never sees it; one naming the tunnel's host goes through.
#[tokio::test(flavor = "multi_thread")]
async fn requests_in_a_tunnel_to_an_http_port_must_name_the_tunnels_host() {
    let origin = Origin::start().await;
    let (gw, _config) = gateway_to(&origin);

    let mut tunnel = open_tunnel(APP1, gw.addr("connect"), "web.test:80").await;
    let allowed = exchange(&mut tunnel, &get("web.test")).await;
    assert_eq!(allowed.status, 200, "{allowed:?}");
    let fronted = exchange(&mut tunnel, &get("evil.test")).await;
    assert_eq!(fronted.status, 403, "{fronted:?}");
    assert_eq!(
        header(&fronted.head, "x-egress-deny-reason"),
        Some("host_mismatch")
    );
    assert!(
        closed(&mut tunnel).await,
        "the tunnel closes after a refusal"
    );
    let seen = origin.requests();
    assert_eq!(seen.len(), 1, "only the allowed request arrived: {seen:?}");

    let line = gw.wait_access_log(|v| v["reason"] == "host_mismatch");
    assert_eq!(line["listener"], "connect", "{line}");
    assert_eq!(line["namespace"], "app1", "{line}");
    assert_eq!(
        gw.connections_on("connect", "app1", "deny", "host_mismatch"),
        Some(1.0)
    );
}
