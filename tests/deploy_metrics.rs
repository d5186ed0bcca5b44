//! The monitoring shipped in `deploy/monitoring` queries only metrics the real gateway
//! exports.
//!
//! The metric names are read from the alerting rules (`expr:` values of
//! `deploy/monitoring/rules/egress-gateway.rules.yaml`) and the Grafana dashboard (`"expr"`
//! strings of `deploy/monitoring/dashboards/egress-gateway.json`). Then the real binary is
//! started on loopback with a config that turns on the connect and connect_tls listeners,
//! made to produce every kind of series (an allowed and a denied CONNECT to a local echo
//! server through an entry with an expiry, a failed TLS handshake, a SIGHUP reload), and its `GET /metrics` must carry a
//! `# TYPE` line for each name, of type `histogram` where the dashboard uses `_bucket`.
//!
//! Everything listens on and dials 127.0.0.1 only. Needs the `openssl` command to make a
//! throw-away certificate for the mTLS listener.

#![cfg(unix)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

/// The histograms of the metric catalog (src/account/metrics.rs): a query may name them with `_bucket`, `_sum` or `_count`.
const HISTOGRAMS: &[&str] = &[
    "egress_connection_duration_seconds",
    "egress_upstream_connect_duration_seconds",
];

const IO_TIMEOUT: Duration = Duration::from_secs(5);

fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

// ---------------------------------------------------------------------------------------
// Collecting metric names from the rules and the dashboard
// ---------------------------------------------------------------------------------------

/// The `expr:` values of a Prometheus rules file: plain, quoted, or block scalars (`|`, `>`).
fn rule_exprs(yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut exprs = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start().trim_start_matches("- ");
        i += 1;
        let Some(rest) = trimmed.strip_prefix("expr:") else {
            continue;
        };
        let rest = rest.trim();
        if rest.starts_with('|') || rest.starts_with('>') {
            let key_indent = line.len() - line.trim_start().len();
            let mut block = String::new();
            while i < lines.len() {
                let next = lines[i];
                let indent = next.len() - next.trim_start().len();
                if !next.trim().is_empty() && indent <= key_indent {
                    break;
                }
                block.push_str(next.trim());
                block.push('\n');
                i += 1;
            }
            exprs.push(block);
        } else if let Some(quoted) = rest.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
            exprs.push(quoted.replace("\\\"", "\"").replace("\\\\", "\\"));
        } else if let Some(quoted) = rest.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
            exprs.push(quoted.replace("''", "'"));
        } else {
            // A plain scalar ends at a comment (PromQL itself has no '#').
            exprs.push(rest.split(" #").next().unwrap_or(rest).to_owned());
        }
    }
    exprs
}

/// Decodes the JSON string literal starting at `s` (just after the opening quote); returns
/// the text and the rest of the input after the closing quote.
fn json_string(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &s[i + 1..])),
            '\\' => {
                let (_, esc) = chars.next()?;
                match esc {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'u' => {
                        let mut code = 0u32;
                        for _ in 0..4 {
                            code = code * 16 + chars.next()?.1.to_digit(16)?;
                        }
                        out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                    }
                    other => out.push(other), // \" \\ \/
                }
            }
            c => out.push(c),
        }
    }
    None
}

/// Every `"expr": "<string>"` value in a Grafana dashboard, at any depth.
fn dashboard_exprs(json: &str) -> Vec<String> {
    let mut exprs = Vec::new();
    let mut rest = json;
    while let Some(at) = rest.find("\"expr\"") {
        rest = &rest[at + "\"expr\"".len()..];
        let after = rest.trim_start();
        let Some(after) = after.strip_prefix(':') else {
            continue;
        };
        let Some(after) = after.trim_start().strip_prefix('"') else {
            continue;
        };
        if let Some((text, tail)) = json_string(after) {
            exprs.push(text);
            rest = tail;
        }
    }
    exprs
}

/// Records `word` if it is an `egress_*` name, with a histogram suffix stripped, then
/// clears it.
fn take_word(word: &mut String, found: &mut Vec<(String, bool)>) {
    if word.starts_with("egress_") {
        let mut name = word.clone();
        let mut histogram = false;
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = word.strip_suffix(suffix) {
                if HISTOGRAMS.contains(&base) {
                    name = base.to_owned();
                    histogram = true;
                }
            }
        }
        found.push((name, histogram));
    }
    word.clear();
}

/// The `egress_*` metric names in a PromQL expression, with histogram suffixes stripped:
/// (base name, whether the query needs it to be a histogram). Identifiers are runs of
/// `[A-Za-z0-9_:]`; quoted strings (label values) are skipped.
fn egress_metrics(expr: &str) -> Vec<(String, bool)> {
    let mut found = Vec::new();
    let mut chars = expr.chars();
    let mut word = String::new();
    while let Some(c) = chars.next() {
        if c == '"' || c == '\'' || c == '`' {
            take_word(&mut word, &mut found);
            while let Some(d) = chars.next() {
                if d == '\\' {
                    chars.next();
                } else if d == c {
                    break;
                }
            }
        } else if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
        } else {
            take_word(&mut word, &mut found);
        }
    }
    take_word(&mut word, &mut found);
    found
}

/// name -> must be a histogram, over the rules and the dashboard.
fn wanted_metrics() -> BTreeMap<String, bool> {
    let rules = fs::read_to_string(repo_path(
        "deploy/monitoring/rules/egress-gateway.rules.yaml",
    ))
    .expect("read the rules file");
    let dashboard = fs::read_to_string(repo_path(
        "deploy/monitoring/dashboards/egress-gateway.json",
    ))
    .expect("read the dashboard");
    let rule_exprs = rule_exprs(&rules);
    let dash_exprs = dashboard_exprs(&dashboard);
    assert!(
        rule_exprs.len() >= 5,
        "found only {} rule expressions",
        rule_exprs.len()
    );
    assert!(
        dash_exprs.len() >= 5,
        "found only {} dashboard expressions",
        dash_exprs.len()
    );
    let mut wanted = BTreeMap::new();
    for expr in rule_exprs.iter().chain(&dash_exprs) {
        for (name, histogram) in egress_metrics(expr) {
            *wanted.entry(name).or_insert(false) |= histogram;
        }
    }
    wanted
}

#[test]
fn tokenizer_reads_rules_and_dashboard_syntax() {
    let yaml = "groups:\n  - rules:\n      - alert: A\n        expr: increase(egress_config_reloads_total{result=\"failure\"}[10m]) > 0 # c\n      - alert: B\n        expr: |\n          sum by (namespace) (rate(egress_connections_total[5m]))\n          > 1\n        for: 5m\n      - record: r\n        expr: 'up{job=\"egress_x\"}'\n";
    let exprs = rule_exprs(yaml);
    assert_eq!(exprs.len(), 3, "{exprs:?}");
    assert!(exprs[1].contains("> 1"), "{exprs:?}");
    let names: Vec<_> = exprs.iter().flat_map(|e| egress_metrics(e)).collect();
    assert_eq!(
        names,
        vec![
            ("egress_config_reloads_total".to_owned(), false),
            ("egress_connections_total".to_owned(), false),
        ]
    );
    let json = r#"{"targets": [{"expr" : "histogram_quantile(0.99, sum by (le) (rate(egress_upstream_connect_duration_seconds_bucket{namespace=~\"$namespace\"}[5m])))"}]}"#;
    let exprs = dashboard_exprs(json);
    assert_eq!(exprs.len(), 1);
    assert_eq!(
        egress_metrics(&exprs[0]),
        vec![("egress_upstream_connect_duration_seconds".to_owned(), true)]
    );
}

// ---------------------------------------------------------------------------------------
// Running the gateway
// ---------------------------------------------------------------------------------------

/// A port that was free a moment ago (bound on 127.0.0.1:0, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// A TCP echo server on 127.0.0.1; its threads end with the test process.
fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the echo server");
    let port = listener.local_addr().expect("echo address").port();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || {
                let mut stream = stream;
                let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 || stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// A self-signed certificate and key for the mTLS listener, also used as its client CA.
fn write_certs(dir: &Path) {
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=egress-gateway.test"])
        .args(["-addext", "subjectAltName=DNS:egress-gateway.test"])
        .arg("-keyout")
        .arg(dir.join("gateway-key.pem"))
        .arg("-out")
        .arg(dir.join("gateway.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("this test needs the `openssl` command (Debian package openssl)");
    assert!(
        status.success(),
        "openssl could not make a test certificate"
    );
    fs::copy(dir.join("gateway.pem"), dir.join("tenant-ca.pem")).expect("write the client CA");
}

/// Reads an HTTP/1.1 response head (through the blank line), byte by byte so that nothing
/// after it (tunnel bytes) is consumed.
fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => head.push(byte[0]),
            Err(e) => panic!("reading a response head: {e}"),
        }
        assert!(head.len() < 16 * 1024, "response head too long");
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Sends a CONNECT and returns the stream and the response head.
fn connect_request(proxy: SocketAddr, authority: &str) -> (TcpStream, String) {
    let mut stream = TcpStream::connect_timeout(&proxy, IO_TIMEOUT).expect("connect to the proxy");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    write!(
        stream,
        "CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n"
    )
    .unwrap();
    let head = read_head(&mut stream);
    (stream, head)
}

/// `# TYPE <name> <type>` lines of a Prometheus text exposition.
fn exposed_types(scrape: &str) -> BTreeMap<String, String> {
    scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
        })
        .collect()
}

fn missing(wanted: &BTreeMap<String, bool>, types: &BTreeMap<String, String>) -> BTreeSet<String> {
    wanted
        .iter()
        .filter(|(name, histogram)| match types.get(*name) {
            None => true,
            Some(t) => **histogram && t != "histogram",
        })
        .map(|(name, histogram)| {
            let have = types.get(name).map_or("absent", String::as_str);
            if *histogram {
                format!("{name} (need histogram, have {have})")
            } else {
                format!("{name} ({have})")
            }
        })
        .collect()
}

#[test]
fn monitoring_queries_only_exported_metrics() {
    let wanted = wanted_metrics();
    assert!(
        wanted.contains_key("egress_connections_total") && wanted.len() >= 5,
        "suspiciously few metric names in rules + dashboard: {wanted:?}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path();
    let echo_port = echo_server();
    // Nothing listens here: should the gateway ever resolve a name, the query stays on
    // loopback and fails fast.
    let dns: SocketAddr = ([127, 0, 0, 1], free_port()).into();

    fs::create_dir_all(config.join("certs")).unwrap();
    write_certs(&config.join("certs"));
    fs::write(
        config.join("gateway.yaml"),
        format!(
            r#"listeners:
  connect: {{address: "127.0.0.1:0"}}
  connect_tls: {{address: "127.0.0.1:0"}}
admin: {{address: "127.0.0.1:0"}}
tls:
  cert: certs/gateway.pem
  key: certs/gateway-key.pem
  client_ca: certs/tenant-ca.pem
identity:
  trust_domain: cluster.local
  sources:
    - {{cidr: "127.0.0.1/32", namespace: app1}}
serviceentries:
  dir: serviceentries
enforcement:
  default: enforce
dns:
  servers: ["{dns}"]
upstream:
  namespaces:
    app9: {{proxy: {{address: "127.0.0.1:9"}}}}
timeouts: {{sniff: 2s, connect: 2s, idle: 60s, drain: 1s}}
"#
        ),
    )
    .unwrap();
    fs::create_dir_all(config.join("serviceentries/app1")).unwrap();
    fs::write(
        config.join("serviceentries/app1/echo.yaml"),
        format!(
            r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: echo
  namespace: app1
  annotations:
    egress-gateway.io/expires: "2999-01-01T00:00:00Z"
spec:
  hosts: [echo.test]
  location: MESH_EXTERNAL
  ports:
    - {{number: {echo_port}, name: tcp-echo, protocol: TCP}}
  addresses: ["127.0.0.1/32"]
  resolution: STATIC
  endpoints:
    - address: 127.0.0.1
"#
        ),
    )
    .unwrap();

    let gateway = common::Gateway::start_at(config);
    let (connect, connect_tls) = (gateway.addr("connect"), gateway.addr("connect_tls"));

    // Allowed: a tunnel to the echo server, with bytes both ways, then closed.
    let (mut tunnel, head) = connect_request(connect, &format!("echo.test:{echo_port}"));
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "allowed CONNECT answered {head:?}"
    );
    tunnel.write_all(b"ping").unwrap();
    let mut pong = [0u8; 4];
    tunnel
        .read_exact(&mut pong)
        .expect("echo through the tunnel");
    assert_eq!(&pong, b"ping");
    tunnel.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    let _ = tunnel.read_to_end(&mut rest);
    drop(tunnel);

    // Denied: a host no ServiceEntry lists (decided before any DNS lookup).
    let (denied, head) = connect_request(connect, &format!("denied.test:{echo_port}"));
    assert!(
        head.starts_with("HTTP/1.1 403"),
        "denied CONNECT answered {head:?}"
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("x-egress-deny-reason: not_allowlisted"),
        "denied CONNECT without the deny reason header: {head:?}"
    );
    drop(denied);

    // A failed TLS handshake: plaintext HTTP on the mTLS listener.
    let mut plain = TcpStream::connect_timeout(&connect_tls, IO_TIMEOUT)
        .expect("connect to the connect_tls (mTLS) listener");
    plain.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: egress-gateway.test\r\n\r\n")
        .unwrap();
    let mut sink = Vec::new();
    let _ = plain.read_to_end(&mut sink);
    drop(plain);

    // A reload (docs/operations.md: SIGHUP re-reads the config directory).
    gateway.signal("HUP");

    // Accounting happens as connections close; poll for up to 5 s.
    let mut last = (BTreeSet::new(), String::new());
    for _ in 0..100 {
        if let Some((200, body)) = gateway.try_admin_get("/metrics") {
            let gaps = missing(&wanted, &exposed_types(&body));
            if gaps.is_empty() {
                return;
            }
            last = (gaps, body);
        }
        thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "GET /metrics lacks metrics that deploy/monitoring queries: {:?}\n--- last scrape ---\n{}",
        last.0, last.1
    );
}
