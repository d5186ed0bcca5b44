//! Load tool: drives the release gateway binary over loopback and prints, for every scenario, a
//! same-run `direct` baseline (same driver, same origin, no proxy) and the ratio to it.
//!
//! ```text
//! cargo build --release
//! cargo bench --bench load -- [SCENARIO ...|all] [--secs N] [--workers 1,16] ...
//! ```
//!
//! Scenarios: `connect-rate`, `sni-rate`, `h2-rate`, `bulk`, `idle`, `reload-latency` (see
//! `benches/README.md`). The gateway runs with `runtime: {worker_threads: 1}` pinned to one core
//! (`taskset -c 1`), this driver and its origins to another (`taskset -p -c 0` on itself). Every
//! load loop is bounded in time (`--secs`) and in count (`--max-ops`); every address is
//! 127.0.0.1. Results are `RESULT scenario=... key=value ...` lines plus markdown tables.
//!
//! Run without cargo's `--bench` flag (as `cargo test --benches` does) it does nothing.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::error::Error;
use std::fmt::Write as _;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::spawn_local;
use tokio_rustls::TlsConnector;

type Res<T> = Result<T, Box<dyn Error>>;

const SCENARIOS: [&str; 6] = [
    "connect-rate",
    "sni-rate",
    "h2-rate",
    "bulk",
    "idle",
    "reload-latency",
];
/// One operation (or one tunnel setup) that takes longer than this is an error.
const OP_TIMEOUT: Duration = Duration::from_secs(5);
/// What each tunnel echoes once.
const PAYLOAD: [u8; 64] = [b'x'; 64];
/// The tenant identity of the mTLS client.
const SPIFFE: &str = "spiffe://cluster.local/ns/bench/sa/load";
/// The bulk origin's write buffer.
static ZEROS: [u8; 256 * 1024] = [0; 256 * 1024];
/// TLS alert the fake TLS origin answers a ClientHello with (handshake_failure).
const ORIGIN_ALERT: [u8; 7] = [0x15, 3, 3, 0, 2, 2, 40];

const USAGE: &str = "\
usage: cargo bench --bench load -- [SCENARIO ...|all] [options]

scenarios: connect-rate sni-rate h2-rate bulk idle reload-latency (default: all, briefly)

options:
  --secs N            measured seconds per run (default 5; 2 when running all)
  --warmup N          unrecorded seconds before each run (default 1; 0.5 when running all)
  --workers LIST      closed-loop concurrency for the rate scenarios (default 1,16)
  --tunnels LIST      tunnel counts for bulk (default 1,4)
  --n N               idle: connections held (default 2000)
  --entries N         reload-latency: allowlist entries (default 10000)
  --reload-every MS   reload-latency: config rewrite period (default 200)
  --max-ops N         count bound per run (default 5000000)
  --gateway PATH      gateway binary (default target/release/egress-gateway)
  --gateway-core N    core the gateway is pinned to (default 1)
  --driver-core N     core this driver and its origins are pinned to (default 0)
  --no-pin            do not pin anything
  --access-log PATH   where the gateway's stdout (access log) goes (default /dev/null)";

#[derive(Clone)]
struct Opts {
    scenarios: Vec<String>,
    secs: f64,
    warmup: f64,
    workers: Vec<usize>,
    tunnels: Vec<usize>,
    idle_n: usize,
    entries: usize,
    reload_every_ms: u64,
    max_ops: u64,
    gateway: PathBuf,
    gateway_core: usize,
    driver_core: usize,
    pin: bool,
    access_log: PathBuf,
}

fn list(value: &str) -> Result<Vec<usize>, String> {
    value
        .split(',')
        .map(|v| v.trim().parse().map_err(|_| format!("bad number {v:?}")))
        .collect()
}

fn parse_args(args: &[String]) -> Result<Opts, String> {
    let mut scenarios = Vec::new();
    let mut secs = None;
    let mut warmup = None;
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("target"));
    let mut opts = Opts {
        scenarios: Vec::new(),
        secs: 5.0,
        warmup: 1.0,
        workers: vec![1, 16],
        tunnels: vec![1, 4],
        idle_n: 2000,
        entries: 10_000,
        reload_every_ms: 200,
        max_ops: 5_000_000,
        gateway: target_dir.join("release").join("egress-gateway"),
        gateway_core: 1,
        driver_core: 0,
        pin: true,
        access_log: PathBuf::from("/dev/null"),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{arg} needs a value"))
        };
        let num = |v: String| -> Result<f64, String> {
            v.parse::<f64>().map_err(|_| format!("bad number {v:?}"))
        };
        match arg.as_str() {
            "--secs" => secs = Some(num(value()?)?),
            "--warmup" => warmup = Some(num(value()?)?),
            "--workers" => opts.workers = list(&value()?)?,
            "--tunnels" => opts.tunnels = list(&value()?)?,
            "--n" => opts.idle_n = num(value()?)? as usize,
            "--entries" => opts.entries = num(value()?)? as usize,
            "--reload-every" => opts.reload_every_ms = num(value()?)? as u64,
            "--max-ops" => opts.max_ops = num(value()?)? as u64,
            "--gateway" => opts.gateway = PathBuf::from(value()?),
            "--gateway-core" => opts.gateway_core = num(value()?)? as usize,
            "--driver-core" => opts.driver_core = num(value()?)? as usize,
            "--no-pin" => opts.pin = false,
            "--access-log" => opts.access_log = PathBuf::from(value()?),
            "-h" | "--help" => return Err(String::new()),
            "all" => scenarios.extend(SCENARIOS.iter().map(|s| (*s).to_owned())),
            s if SCENARIOS.contains(&s) => scenarios.push(s.to_owned()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let everything = scenarios.is_empty() || args.iter().any(|a| a == "all");
    if scenarios.is_empty() {
        scenarios.extend(SCENARIOS.iter().map(|s| (*s).to_owned()));
    }
    opts.scenarios = scenarios;
    opts.secs = secs.unwrap_or(if everything { 2.0 } else { 5.0 });
    opts.warmup = warmup.unwrap_or(if everything { 0.5 } else { 1.0 });
    if opts.secs <= 0.0 || opts.workers.contains(&0) || opts.tunnels.contains(&0) {
        return Err("--secs, --workers and --tunnels must be positive".into());
    }
    Ok(opts)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("load: skipped (not a test); run `cargo bench --bench load -- [scenario]`");
        return;
    }
    let args: Vec<String> = args.into_iter().filter(|a| a != "--bench").collect();
    let mut opts = match parse_args(&args) {
        Ok(opts) => opts,
        Err(problem) => {
            eprintln!("{problem}\n{USAGE}");
            std::process::exit(2);
        }
    };
    if !opts.gateway.exists() {
        eprintln!(
            "load: {} does not exist: run `cargo build --release` first (or pass --gateway PATH)",
            opts.gateway.display()
        );
        std::process::exit(2);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if opts.pin && cores < 2 {
        println!("# only {cores} core(s): not pinning");
        opts.pin = false;
    }
    if opts.pin {
        // Before any thread exists, so every thread of this process (runtime, log readers)
        // inherits the affinity.
        let pinned = Command::new("taskset")
            .args(["-p", "-c", &opts.driver_core.to_string()])
            .arg(std::process::id().to_string())
            .stdout(Stdio::null())
            .status();
        if !matches!(pinned, Ok(s) if s.success()) {
            println!("# taskset failed: not pinning");
            opts.pin = false;
        }
    }
    raise_nofile();
    let built = std::fs::metadata(&opts.gateway)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .map_or_else(String::new, |age| {
            format!(", built {} min ago", age.as_secs() / 60)
        });
    println!(
        "# load: gateway {}{built}; {cores} cores; gateway on core {}, driver+origins on core {}{}; secs={} warmup={} workers={:?}",
        opts.gateway.display(),
        opts.gateway_core,
        opts.driver_core,
        if opts.pin { "" } else { " (NOT pinned)" },
        opts.secs,
        opts.warmup,
        opts.workers
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    let code = local.block_on(&runtime, run(opts));
    std::process::exit(code);
}

/// Lifts this process's descriptor limit (inherited by the gateway): the idle scenario holds
/// thousands of sockets.
fn raise_nofile() {
    let pid = std::process::id().to_string();
    let set = |limit: &str| {
        Command::new("prlimit")
            .args(["--pid", &pid, &format!("--nofile={limit}")])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if set("65536:65536") {
        return;
    }
    // Not allowed to raise the hard limit: lift the soft limit up to it.
    let hard = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            limits
                .lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(4).map(str::to_owned))
        })
        .unwrap_or_default();
    if hard.is_empty() || !set(&format!("{hard}:{hard}")) {
        println!("# could not raise the descriptor limit; keeping the current one");
    } else {
        println!("# descriptor limit raised to the hard limit, {hard}");
    }
}

async fn run(opts: Opts) -> i32 {
    let world = match World::new().await {
        Ok(world) => Rc::new(world),
        Err(err) => {
            eprintln!("load: setup failed: {err}");
            return 1;
        }
    };
    let mut report = Report::default();
    let mut failed = false;
    for scenario in opts.scenarios.clone() {
        println!("# --- {scenario}");
        let result = match scenario.as_str() {
            "connect-rate" => connect_rate(&opts, &world, &mut report).await,
            "sni-rate" => sni_rate(&opts, &world, &mut report).await,
            "h2-rate" => h2_rate(&opts, &world, &mut report).await,
            "bulk" => bulk(&opts, &world, &mut report).await,
            "idle" => idle(&opts, &world, &mut report).await,
            "reload-latency" => reload_latency(&opts, &world, &mut report).await,
            _ => unreachable!("parsed"),
        };
        if let Err(err) = result {
            println!("RESULT scenario={scenario} error={:?}", err.to_string());
            failed = true;
        }
    }
    report.print();
    i32::from(failed)
}

// ------------------------------------------------------------------ world: PKI, origins, hello

/// Everything the scenarios share: origins, certificates, a captured ClientHello.
struct World {
    echo: SocketAddr,
    source: SocketAddr,
    tls: SocketAddr,
    pki: Pki,
    hello: &'static [u8],
}

impl World {
    async fn new() -> Res<Self> {
        let echo = serve(echo_conn).await?;
        let source = serve(source_conn).await?;
        let tls = serve(fake_tls_conn).await?;
        let hello: &'static [u8] = Box::leak(client_hello("allowed.test")?.into_boxed_slice());
        println!(
            "# origins: echo {echo}, source {source}, fake TLS {tls}; ClientHello {} bytes (rustls)",
            hello.len()
        );
        Ok(Self {
            echo,
            source,
            tls,
            pki: Pki::new()?,
            hello,
        })
    }

    /// A config directory: every listener on 127.0.0.1:0, one runtime worker, tenant `bench` by
    /// source address and by SPIFFE ID, and STATIC entries for `allowed.test` pointing at the
    /// origins; plus `filler` more entries in 100 other namespaces.
    fn config(&self, filler: usize) -> Res<tempfile::TempDir> {
        let dir = tempfile::tempdir()?;
        let path = dir.path();
        std::fs::create_dir_all(path.join("certs"))?;
        std::fs::create_dir_all(path.join("serviceentries/bench"))?;
        std::fs::write(path.join("certs/gw.pem"), &self.pki.server.0)?;
        std::fs::write(path.join("certs/gw-key.pem"), &self.pki.server.1)?;
        std::fs::write(path.join("certs/ca.pem"), &self.pki.ca_pem)?;
        std::fs::write(
            path.join("gateway.yaml"),
            "listeners:\n  connect: {address: \"127.0.0.1:0\"}\n  connect_tls: {address: \"127.0.0.1:0\"}\n  sni: {address: \"127.0.0.1:0\", port: 443}\ntls: {cert: certs/gw.pem, key: certs/gw-key.pem, client_ca: certs/ca.pem}\nidentity:\n  trust_domain: cluster.local\n  sources:\n    - {cidr: \"127.0.0.1/32\", namespace: bench}\ndns:\n  servers: [\"127.0.0.1:53\"]\nlimits:\n  max_connections_per_namespace: 1000000\n  max_streams_per_connection: 256\nruntime: {worker_threads: 1}\n",
        )?;
        std::fs::write(
            path.join("serviceentries/bench/allowed.yaml"),
            format!(
                "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: allowed}}\nspec:\n  hosts: [\"allowed.test\"]\n  ports:\n    - {{number: 9000, name: echo, protocol: TCP, targetPort: {}}}\n    - {{number: 9001, name: source, protocol: TCP, targetPort: {}}}\n    - {{number: 443, name: tls, protocol: TLS, targetPort: {}}}\n  resolution: STATIC\n  endpoints:\n    - address: 127.0.0.1\n",
                self.echo.port(),
                self.source.port(),
                self.tls.port()
            ),
        )?;
        let mut written = 0;
        let mut file = 0;
        while written < filler {
            let mut text = String::new();
            for _ in 0..100.min(filler - written) {
                let _ = write!(
                    text,
                    "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: e{written}, namespace: fill{}}}\nspec:\n  hosts: [\"{}svc{written}.fill.test\"]\n  ports:\n    - {{number: 443, name: https, protocol: HTTPS}}\n  resolution: {}\n",
                    written % 100,
                    if written % 10 == 0 { "*." } else { "" },
                    if written % 10 == 0 { "NONE" } else { "DNS" }
                );
                written += 1;
            }
            std::fs::write(
                path.join(format!("serviceentries/fill-{file:04}.yaml")),
                text,
            )?;
            file += 1;
        }
        Ok(dir)
    }
}

/// Binds 127.0.0.1:0 and serves each connection with `handler` until the process ends.
async fn serve<F, Fut>(handler: F) -> Res<SocketAddr>
where
    F: Fn(TcpStream) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    spawn_local(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    spawn_local(handler(stream));
                }
                // Out of descriptors and the like: back off, the driver bounds everything.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    });
    Ok(addr)
}

async fn echo_conn(mut stream: TcpStream) {
    let mut buf = [0u8; 2048];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Streams zeros until the reader goes away.
async fn source_conn(mut stream: TcpStream) {
    while stream.write_all(&ZEROS).await.is_ok() {}
}

/// Reads one TLS record, answers a 7-byte alert, then holds the connection until the client
/// closes it (so idle SNI connections stay up, and the client decides when they end).
async fn fake_tls_conn(mut stream: TcpStream) {
    let mut header = [0u8; 5];
    if stream.read_exact(&mut header).await.is_err() || header[0] != 0x16 {
        return;
    }
    let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
    let mut body = vec![0u8; len];
    if stream.read_exact(&mut body).await.is_err() {
        return;
    }
    drop(body);
    if stream.write_all(&ORIGIN_ALERT).await.is_err() {
        return;
    }
    let mut sink = [0u8; 64];
    let _ = tokio::time::timeout(Duration::from_secs(600), stream.read(&mut sink)).await;
}

/// The first flight of a real rustls client for `name` (ALPN h2 + http/1.1).
fn client_hello(name: &str) -> Res<Vec<u8>> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), ServerName::try_from(name)?.to_owned())?;
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out)?;
    }
    Ok(out)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A tenant CA, the gateway's server certificate and a tenant client certificate (SPIFFE).
struct Pki {
    ca_pem: String,
    server: (String, String),
    client: (String, String),
}

impl Pki {
    fn new() -> Res<Self> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "bench tenant CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate()?;
        let ca = ca_params.self_signed(&ca_key)?;
        let issue = |mut params: CertificateParams| -> Res<(String, String)> {
            let key = KeyPair::generate()?;
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            let cert = params.signed_by(&key, &ca, &ca_key)?;
            Ok((cert.pem(), key.serialize_pem()))
        };
        let mut server = CertificateParams::new(vec!["gateway.test".to_owned()])?;
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let mut client = CertificateParams::new(Vec::<String>::new())?;
        client
            .subject_alt_names
            .push(SanType::URI(SPIFFE.try_into()?));
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        Ok(Self {
            ca_pem: ca.pem(),
            server: issue(server)?,
            client: issue(client)?,
        })
    }

    /// A client config with the tenant certificate, offering `alpn`; session resumption off, so
    /// every connection is a full mTLS handshake.
    fn client_config(&self, alpn: &[u8]) -> Res<Arc<rustls::ClientConfig>> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut self.ca_pem.as_bytes()) {
            roots.add(cert?)?;
        }
        let chain: Vec<CertificateDer<'static>> =
            rustls_pemfile::certs(&mut self.client.0.as_bytes()).collect::<Result<_, _>>()?;
        let key: PrivateKeyDer<'static> =
            rustls_pemfile::private_key(&mut self.client.1.as_bytes())?.ok_or("no client key")?;
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)?;
        config.alpn_protocols = vec![alpn.to_vec()];
        config.resumption = rustls::client::Resumption::disabled();
        Ok(Arc::new(config))
    }
}

// ------------------------------------------------------------------ the gateway process

/// A gateway process on a temp config; killed (by its PID) on drop.
struct Gateway {
    child: Child,
    addrs: HashMap<String, SocketAddr>,
    log: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Gateway {
    /// Starts the gateway (pinned) and waits up to `within` for "gateway ready"; listener
    /// addresses come from its JSON "listening" log lines.
    fn start(opts: &Opts, dir: tempfile::TempDir, within: Duration) -> Res<Self> {
        let mut command = if opts.pin {
            let mut c = Command::new("taskset");
            c.args(["-c", &opts.gateway_core.to_string()])
                .arg(&opts.gateway);
            c
        } else {
            Command::new(&opts.gateway)
        };
        let stdout = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&opts.access_log)?;
        command
            .args(["--log-format", "json", "run", "--config"])
            .arg(dir.path())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::piped());
        let mut child = command.spawn()?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().expect("log lock").push(line);
            }
        });
        let mut gateway = Self {
            child,
            addrs: HashMap::new(),
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + within;
        while !gateway.lines().iter().any(|l| l.contains("gateway ready")) {
            if gateway.child.try_wait()?.is_some() || Instant::now() > deadline {
                let lines = gateway.lines();
                let tail = &lines[lines.len().saturating_sub(5)..];
                return Err(format!(
                    "gateway did not become ready ({} log lines; last: {})",
                    lines.len(),
                    tail.join(" | ")
                )
                .into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for line in gateway.lines() {
            let Ok(json) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let fields = &json["fields"];
            if fields["message"] == "listening" {
                if let (Some(name), Some(addr)) =
                    (fields["listener"].as_str(), fields["address"].as_str())
                {
                    gateway.addrs.insert(name.to_owned(), addr.parse()?);
                }
            }
        }
        Ok(gateway)
    }

    fn addr(&self, listener: &str) -> Res<SocketAddr> {
        self.addrs
            .get(listener)
            .copied()
            .ok_or_else(|| format!("no {listener} listener").into())
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn lines(&self) -> Vec<String> {
        self.log.lock().expect("log lock").clone()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// User and system CPU seconds of process `pid` (all threads) from `/proc/PID/stat`.
fn cpu_secs(pid: u32) -> (f64, f64) {
    static TICK: OnceLock<f64> = OnceLock::new();
    let tick = *TICK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .unwrap_or(100.0)
    });
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // After the command name: state is field 3, utime 14, stime 15.
    (field(11) / tick, field(12) / tick)
}

/// `VmRSS` of `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

// ------------------------------------------------------------------ operations

async fn tcp(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Sends `CONNECT authority`, reads the answer head; returns how many tunnel bytes came with it.
async fn connect_head<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    request: &[u8],
) -> Res<usize> {
    stream.write_all(request).await?;
    let mut buf = [0u8; 1024];
    let mut len = 0;
    loop {
        let n = stream.read(&mut buf[len..]).await?;
        if n == 0 {
            return Err("closed before the CONNECT answer".into());
        }
        len += n;
        if let Some(end) = buf[..len].windows(4).position(|w| w == b"\r\n\r\n") {
            if !buf.starts_with(b"HTTP/1.1 200") {
                let line = String::from_utf8_lossy(&buf[..end]);
                return Err(format!("CONNECT answered {:?}", line.lines().next()).into());
            }
            return Ok(len - end - 4);
        }
        if len == buf.len() {
            return Err("CONNECT answer head too long".into());
        }
    }
}

/// Writes the first `n` payload bytes and reads their echo.
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, n: usize) -> Res<()> {
    stream.write_all(&PAYLOAD[..n]).await?;
    let mut buf = [0u8; 64];
    stream.read_exact(&mut buf[..n]).await?;
    Ok(())
}

fn connect_request(authority: &str) -> &'static [u8] {
    Box::leak(
        format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n")
            .into_bytes()
            .into_boxed_slice(),
    )
}

/// Direct: connect to the echo origin, 64 B echo, close.
async fn op_direct_echo(origin: SocketAddr) -> Res<()> {
    let mut stream = tcp(origin).await?;
    echo(&mut stream, 64).await
}

/// Through the CONNECT listener: connect, CONNECT, 200, 64 B echo, close.
async fn op_connect(proxy: SocketAddr, request: &'static [u8]) -> Res<()> {
    let mut stream = tcp(proxy).await?;
    connect_head(&mut stream, request).await?;
    echo(&mut stream, 64).await
}

/// SNI (or the fake TLS origin directly): connect, ClientHello, first reply byte, close.
async fn op_sni(addr: SocketAddr, hello: &'static [u8]) -> Res<()> {
    let mut stream = tcp(addr).await?;
    stream.write_all(hello).await?;
    let mut byte = [0u8; 1];
    if stream.read(&mut byte).await? == 0 {
        return Err("closed without a reply".into());
    }
    Ok(())
}

/// mTLS: connect, full handshake (ALPN http/1.1), CONNECT, 200, 64 B echo, close.
async fn op_tls_connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    request: &'static [u8],
) -> Res<()> {
    let stream = tcp(addr).await?;
    let mut tls = TlsConnector::from(config)
        .connect(ServerName::try_from("gateway.test")?, stream)
        .await?;
    connect_head(&mut tls, request).await?;
    echo(&mut tls, 64).await
}

/// One HTTP/2 CONNECT stream on a warm connection: CONNECT, 200, 64 B echo, END_STREAM, and the
/// gateway's end of the stream.
async fn op_h2_stream(send: h2::client::SendRequest<Bytes>) -> Res<()> {
    let mut send = send.ready().await?;
    let request = http::Request::builder()
        .method(http::Method::CONNECT)
        .uri("allowed.test:9000")
        .body(())?;
    let (response, mut stream) = send.send_request(request, false)?;
    let response = response.await?;
    if response.status() != 200 {
        return Err(format!("h2 CONNECT answered {}", response.status()).into());
    }
    let mut body = response.into_body();
    stream.send_data(Bytes::from_static(&PAYLOAD), false)?;
    let mut got = 0;
    while got < PAYLOAD.len() {
        let chunk = body.data().await.ok_or("stream ended before the echo")??;
        got += chunk.len();
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    stream.send_data(Bytes::new(), true)?;
    while let Some(chunk) = body.data().await {
        match chunk {
            Ok(chunk) => {
                let _ = body.flow_control().release_capacity(chunk.len());
            }
            Err(err) if err.reason() == Some(h2::Reason::NO_ERROR) => break,
            Err(err) => return Err(err.into()),
        }
    }
    Ok(())
}

/// A warm HTTP/2 connection over mTLS, driven in the background.
async fn h2_session(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> Res<h2::client::SendRequest<Bytes>> {
    let stream = tcp(addr).await?;
    let tls = TlsConnector::from(config)
        .connect(ServerName::try_from("gateway.test")?, stream)
        .await?;
    if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
        return Err("the gateway did not choose h2".into());
    }
    let (send, connection) = h2::client::handshake(tls).await?;
    spawn_local(async move {
        let _ = connection.await;
    });
    Ok(send.ready().await?)
}

// ------------------------------------------------------------------ closed-loop runner

/// What one closed-loop run measured.
struct Rate {
    ops: u64,
    errors: u64,
    first_error: Option<String>,
    secs: f64,
    /// Sorted latencies of the measured operations, nanoseconds.
    lat: Vec<u64>,
    /// Gateway (user, system) CPU seconds over the measured window.
    cpu: Option<(f64, f64)>,
}

impl Rate {
    fn rate(&self) -> f64 {
        self.ops as f64 / self.secs
    }

    fn pct_ms(&self, q: f64) -> f64 {
        percentile(&self.lat, q)
    }

    fn cpu_us_per_op(&self) -> Option<f64> {
        let (u, s) = self.cpu?;
        (self.ops > 0).then(|| (u + s) * 1e6 / self.ops as f64)
    }
}

fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((q * sorted.len() as f64) as usize).min(sorted.len() - 1);
    sorted[i] as f64 / 1e6
}

/// Runs `op` in `workers` closed loops for warmup + secs (and at most `max_ops` measured
/// operations); operations completing inside the measured window count. `pid`: the gateway,
/// whose CPU is read at the window's edges.
async fn closed_loop<F, Fut>(opts: &Opts, workers: usize, pid: Option<u32>, op: F) -> Rate
where
    F: Fn() -> Fut + Clone + 'static,
    Fut: Future<Output = Res<()>> + 'static,
{
    let start = Instant::now();
    let from = start + Duration::from_secs_f64(opts.warmup);
    let end = from + Duration::from_secs_f64(opts.secs);
    let counted = Rc::new(Cell::new(0u64));
    let last = Rc::new(Cell::new(from));
    let max_ops = opts.max_ops;
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let op = op.clone();
        let counted = counted.clone();
        let last = last.clone();
        tasks.push(spawn_local(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut first_error = None;
            loop {
                let t0 = Instant::now();
                if t0 >= end || counted.get() >= max_ops {
                    break;
                }
                let result = tokio::time::timeout(OP_TIMEOUT, op()).await;
                let t1 = Instant::now();
                let measured = t1 >= from && t1 <= end;
                match result {
                    Ok(Ok(())) => {
                        if measured {
                            lat.push((t1 - t0).as_nanos() as u64);
                            counted.set(counted.get() + 1);
                            last.set(t1);
                        }
                    }
                    Ok(Err(err)) => {
                        errors += u64::from(measured);
                        first_error.get_or_insert_with(|| err.to_string());
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    Err(_) => {
                        errors += u64::from(measured);
                        first_error.get_or_insert_with(|| "operation timed out".to_owned());
                    }
                }
            }
            (lat, errors, first_error)
        }));
    }
    tokio::time::sleep_until(from.into()).await;
    let cpu0 = pid.map(cpu_secs);
    tokio::time::sleep_until(end.into()).await;
    let cpu1 = pid.map(cpu_secs);
    let mut rate = Rate {
        ops: 0,
        errors: 0,
        first_error: None,
        secs: opts.secs,
        lat: Vec::new(),
        cpu: None,
    };
    for task in tasks {
        let (lat, errors, first_error) = task.await.expect("worker");
        rate.lat.extend(lat);
        rate.errors += errors;
        if rate.first_error.is_none() {
            rate.first_error = first_error;
        }
    }
    rate.ops = rate.lat.len() as u64;
    if rate.ops >= max_ops {
        rate.secs = (last.get() - from).as_secs_f64().max(1e-3);
    }
    rate.lat.sort_unstable();
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        rate.cpu = Some((b.0 - a.0, b.1 - a.1));
    }
    rate
}

// ------------------------------------------------------------------ report

#[derive(Default)]
struct Report {
    /// (title, header, rows), in the order scenarios ran.
    tables: Vec<(String, String, Vec<String>)>,
}

impl Report {
    fn row(&mut self, title: &str, header: &str, row: String) {
        if let Some(table) = self.tables.iter_mut().find(|t| t.0 == title) {
            table.2.push(row);
        } else {
            self.tables
                .push((title.to_owned(), header.to_owned(), vec![row]));
        }
    }

    /// One rate run: a RESULT line and a table row.
    fn rate(&mut self, scenario: &str, target: &str, workers: usize, r: &Rate, base: &Rate) {
        let ratio = r.rate() / base.rate();
        let (cpu_pct, usr_pct, sys_pct, per_op) = match (r.cpu, r.cpu_us_per_op()) {
            (Some((u, s)), Some(per)) => (
                format!("{:.0}", (u + s) * 100.0 / r.secs),
                format!("{:.0}", u * 100.0 / r.secs),
                format!("{:.0}", s * 100.0 / r.secs),
                format!("{per:.1}"),
            ),
            _ => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        println!(
            "RESULT scenario={scenario} target={target} workers={workers} ops={} secs={:.2} rate={:.0} p50_ms={:.3} p99_ms={:.3} p999_ms={:.3} cpu_pct={cpu_pct} usr_pct={usr_pct} sys_pct={sys_pct} cpu_us_per_op={per_op} errors={} vs_direct={ratio:.2}{}",
            r.ops,
            r.secs,
            r.rate(),
            r.pct_ms(0.5),
            r.pct_ms(0.99),
            r.pct_ms(0.999),
            r.errors,
            r.first_error
                .as_ref()
                .map_or_else(String::new, |e| format!(" first_error={e:?}"))
        );
        self.row(
            scenario,
            "| target | workers | ops/s | vs direct | p50 ms | p99 ms | p99.9 ms | gateway CPU % (usr/sys) | gateway CPU µs/op | errors |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            format!(
                "| {target} | {workers} | {:.0} | {ratio:.2}x | {:.3} | {:.3} | {:.3} | {cpu_pct} ({usr_pct}/{sys_pct}) | {per_op} | {} |",
                r.rate(),
                r.pct_ms(0.5),
                r.pct_ms(0.99),
                r.pct_ms(0.999),
                r.errors
            ),
        );
    }

    fn print(&self) {
        println!("\n# summary");
        for (title, header, rows) in &self.tables {
            println!("\n### {title}\n\n{header}");
            for row in rows {
                println!("{row}");
            }
        }
    }
}

// ------------------------------------------------------------------ scenarios

async fn connect_rate(opts: &Opts, world: &Rc<World>, report: &mut Report) -> Res<()> {
    let gateway = Gateway::start(opts, world.config(0)?, Duration::from_secs(15))?;
    let proxy = gateway.addr("connect")?;
    let request = connect_request("allowed.test:9000");
    let origin = world.echo;
    for &workers in &opts.workers {
        let direct = closed_loop(opts, workers, None, move || op_direct_echo(origin)).await;
        report.rate("connect-rate", "direct", workers, &direct, &direct);
        let via = closed_loop(opts, workers, Some(gateway.pid()), move || {
            op_connect(proxy, request)
        })
        .await;
        report.rate("connect-rate", "gateway", workers, &via, &direct);
    }
    Ok(())
}

async fn sni_rate(opts: &Opts, world: &Rc<World>, report: &mut Report) -> Res<()> {
    let gateway = Gateway::start(opts, world.config(0)?, Duration::from_secs(15))?;
    let sni = gateway.addr("sni")?;
    let hello = world.hello;
    let origin = world.tls;
    // Policy sanity: an allowed name reaches the origin, a denied one gets the gateway's alert.
    for name in ["allowed.test", "denied.test", "allowed.test.evil.test"] {
        let hello = client_hello(name)?;
        let mut stream = tcp(sni).await?;
        stream.write_all(&hello).await?;
        let mut reply = [0u8; 7];
        let got = tokio::time::timeout(OP_TIMEOUT, stream.read_exact(&mut reply)).await;
        let what = match got {
            Ok(Ok(_)) if reply == ORIGIN_ALERT => "origin reply (allowed)".to_owned(),
            Ok(Ok(_)) if reply[0] == 0x15 => format!("gateway alert {} (denied)", reply[6]),
            Ok(Ok(_)) => format!("unexpected {reply:?}"),
            Ok(Err(err)) => format!("closed ({err})"),
            Err(_) => "no answer".to_owned(),
        };
        println!("# sni probe {name}: {what}");
    }
    for &workers in &opts.workers {
        let direct = closed_loop(opts, workers, None, move || op_sni(origin, hello)).await;
        report.rate("sni-rate", "direct", workers, &direct, &direct);
        let via = closed_loop(opts, workers, Some(gateway.pid()), move || {
            op_sni(sni, hello)
        })
        .await;
        report.rate("sni-rate", "gateway", workers, &via, &direct);
    }
    Ok(())
}

async fn h2_rate(opts: &Opts, world: &Rc<World>, report: &mut Report) -> Res<()> {
    let gateway = Gateway::start(opts, world.config(0)?, Duration::from_secs(15))?;
    let tls_addr = gateway.addr("connect_tls")?;
    let h1 = world.pki.client_config(b"http/1.1")?;
    let h2c = world.pki.client_config(b"h2")?;
    let request = connect_request("allowed.test:9000");
    let origin = world.echo;
    for &workers in &opts.workers {
        let direct = closed_loop(opts, workers, None, move || op_direct_echo(origin)).await;
        report.rate("h2-rate", "direct (TCP echo)", workers, &direct, &direct);
        let fresh = {
            let h1 = h1.clone();
            closed_loop(opts, workers, Some(gateway.pid()), move || {
                op_tls_connect(tls_addr, h1.clone(), request)
            })
            .await
        };
        report.rate(
            "h2-rate",
            "gateway HTTP/1.1 CONNECT, fresh mTLS each",
            workers,
            &fresh,
            &direct,
        );
        let send = h2_session(tls_addr, h2c.clone()).await?;
        let warm = closed_loop(opts, workers, Some(gateway.pid()), move || {
            op_h2_stream(send.clone())
        })
        .await;
        report.rate(
            "h2-rate",
            "gateway HTTP/2 CONNECT, warm mTLS connection",
            workers,
            &warm,
            &direct,
        );
        let ratio = warm.rate() / fresh.rate();
        let cpu_ratio = match (fresh.cpu_us_per_op(), warm.cpu_us_per_op()) {
            (Some(f), Some(w)) if w > 0.0 => format!("{:.2}", f / w),
            _ => "-".into(),
        };
        println!(
            "RESULT scenario=h2-rate workers={workers} h2_rate={:.0} h1_fresh_tls_rate={:.0} ratio={ratio:.2} cpu_per_op_ratio={cpu_ratio} target=5.0 met={}",
            warm.rate(),
            fresh.rate(),
            ratio >= 5.0
        );
        report.row(
            "h2-rate ratio (target ≥ 5×)",
            "| workers | h2 streams/s (warm) | h1 tunnels/s (fresh mTLS) | ratio | gateway CPU per op ratio | met |\n|---:|---:|---:|---:|---:|---|",
            format!(
                "| {workers} | {:.0} | {:.0} | {ratio:.2}x | {cpu_ratio}x | {} |",
                warm.rate(),
                fresh.rate(),
                if ratio >= 5.0 { "met" } else { "not met" }
            ),
        );
    }
    Ok(())
}

/// A stream to read bulk data from.
type Reader = Box<dyn AsyncRead + Unpin>;

/// Reads every stream for warmup + secs; returns (MB/s over the window, gateway CPU s, errors).
async fn drain(opts: &Opts, streams: Vec<Reader>, pid: Option<u32>) -> (f64, Option<f64>, u64) {
    let start = Instant::now();
    let from = start + Duration::from_secs_f64(opts.warmup);
    let end = from + Duration::from_secs_f64(opts.secs);
    let total = Rc::new(Cell::new(0u64));
    let errors = Rc::new(Cell::new(0u64));
    let max_reads = opts.max_ops * 10;
    let mut tasks = Vec::new();
    for mut stream in streams {
        let total = total.clone();
        let errors = errors.clone();
        tasks.push(spawn_local(async move {
            let mut buf = vec![0u8; 256 * 1024];
            let mut reads = 0u64;
            while Instant::now() < end && reads < max_reads {
                reads += 1;
                match tokio::time::timeout(OP_TIMEOUT, stream.read(&mut buf)).await {
                    Ok(Ok(n)) if n > 0 => total.set(total.get() + n as u64),
                    _ => {
                        errors.set(errors.get() + 1);
                        break;
                    }
                }
            }
        }));
    }
    tokio::time::sleep_until(from.into()).await;
    let (bytes0, cpu0) = (total.get(), pid.map(cpu_secs));
    tokio::time::sleep_until(end.into()).await;
    let (bytes1, cpu1) = (total.get(), pid.map(cpu_secs));
    for task in tasks {
        let _ = task.await;
    }
    let mb_s = (bytes1 - bytes0) as f64 / 1e6 / opts.secs;
    let cpu = cpu0.zip(cpu1).map(|(a, b)| (b.0 + b.1) - (a.0 + a.1));
    (mb_s, cpu, errors.get())
}

async fn bulk(opts: &Opts, world: &Rc<World>, report: &mut Report) -> Res<()> {
    let gateway = Gateway::start(opts, world.config(0)?, Duration::from_secs(15))?;
    let plain = gateway.addr("connect")?;
    let tls_addr = gateway.addr("connect_tls")?;
    let h1 = world.pki.client_config(b"http/1.1")?;
    let request = connect_request("allowed.test:9001");
    let header = "| target | tunnels | MB/s | vs direct | gateway CPU % | gateway CPU s/GB | errors |\n|---|---:|---:|---:|---:|---:|---:|";
    for &tunnels in &opts.tunnels {
        let mut results: Vec<(&str, f64)> = Vec::new();
        for via in ["direct", "plaintext tunnel", "mTLS tunnel"] {
            let mut streams: Vec<Reader> = Vec::new();
            for _ in 0..tunnels {
                let stream: Reader = match via {
                    "direct" => Box::new(tcp(world.source).await?),
                    "plaintext tunnel" => {
                        let mut s = tcp(plain).await?;
                        connect_head(&mut s, request).await?;
                        Box::new(s)
                    }
                    _ => {
                        let s = tcp(tls_addr).await?;
                        let mut tls = TlsConnector::from(h1.clone())
                            .connect(ServerName::try_from("gateway.test")?, s)
                            .await?;
                        connect_head(&mut tls, request).await?;
                        Box::new(tls)
                    }
                };
                streams.push(stream);
            }
            let pid = (via != "direct").then(|| gateway.pid());
            let (mb_s, cpu, errors) = drain(opts, streams, pid).await;
            let base = results.first().map_or(mb_s, |r| r.1);
            let ratio = mb_s / base;
            let (cpu_pct, s_per_gb) = cpu.map_or(("-".into(), "-".into()), |c| {
                (
                    format!("{:.0}", c * 100.0 / opts.secs),
                    format!("{:.3}", c / (mb_s * opts.secs / 1000.0)),
                )
            });
            println!(
                "RESULT scenario=bulk target={:?} tunnels={tunnels} secs={:.2} mb_s={mb_s:.1} vs_direct={ratio:.2} cpu_pct={cpu_pct} cpu_s_per_gb={s_per_gb} errors={errors}",
                via, opts.secs
            );
            report.row(
                "bulk",
                header,
                format!("| {via} | {tunnels} | {mb_s:.1} | {ratio:.2}x | {cpu_pct} | {s_per_gb} | {errors} |"),
            );
            results.push((via, mb_s));
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let tls_vs_plain = results[2].1 / results[1].1;
        println!("RESULT scenario=bulk tunnels={tunnels} mtls_vs_plaintext={tls_vs_plain:.2}");
    }
    Ok(())
}

async fn idle(opts: &Opts, world: &Rc<World>, report: &mut Report) -> Res<()> {
    let header = "| kind | held | RSS before KiB | RSS held KiB | KiB per connection | target | errors |\n|---|---:|---:|---:|---:|---:|---:|";
    for (kind, target_kib) in [("CONNECT tunnel", 6.0), ("SNI connection", 4.0)] {
        let gateway = Gateway::start(opts, world.config(0)?, Duration::from_secs(15))?;
        let addr = gateway.addr(if kind.starts_with("SNI") {
            "sni"
        } else {
            "connect"
        })?;
        let sni = kind.starts_with("SNI");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = rss_kib(gateway.pid());
        let request = connect_request("allowed.test:9000");
        let hello = world.hello;
        let mut held: Vec<TcpStream> = Vec::with_capacity(opts.idle_n);
        let mut errors = 0usize;
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut left = opts.idle_n;
        while left > 0 && Instant::now() < deadline {
            let batch = left.min(64);
            let mut tasks = Vec::with_capacity(batch);
            for _ in 0..batch {
                tasks.push(spawn_local(async move {
                    let open = async {
                        let mut stream = tcp(addr).await?;
                        if sni {
                            stream.write_all(hello).await?;
                            let mut byte = [0u8; 1];
                            stream.read_exact(&mut byte).await?;
                        } else {
                            connect_head(&mut stream, request).await?;
                            echo(&mut stream, 4).await?;
                        }
                        Ok::<_, Box<dyn Error>>(stream)
                    };
                    tokio::time::timeout(OP_TIMEOUT, open).await
                }));
            }
            for task in tasks {
                match task.await {
                    Ok(Ok(Ok(stream))) => held.push(stream),
                    _ => errors += 1,
                }
            }
            left -= batch;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = rss_kib(gateway.pid());
        let per = (after as f64 - before as f64) / held.len().max(1) as f64;
        let met = if per <= target_kib { "met" } else { "not met" };
        println!(
            "RESULT scenario=idle kind={kind:?} held={} rss_before_kib={before} rss_held_kib={after} kib_per_conn={per:.2} target_kib={target_kib} {met} errors={errors}",
            held.len()
        );
        report.row(
            "idle (gateway VmRSS, fresh process)",
            header,
            format!(
                "| {kind} | {} | {before} | {after} | {per:.2} | ≤ {target_kib} ({met}) | {errors} |",
                held.len()
            ),
        );
        drop(held);
        drop(gateway);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

/// Seconds since the epoch of an RFC 3339 UTC timestamp (`2026-11-28T08:03:00.123456Z`).
fn parse_ts(ts: &str) -> Option<f64> {
    let (date, time) = ts.trim_end_matches('Z').split_once('T')?;
    let mut d = date.split('-').map(|v| v.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':');
    let (h, min) = (
        t.next()?.parse::<f64>().ok()?,
        t.next()?.parse::<f64>().ok()?,
    );
    let s = t.next()?.parse::<f64>().ok()?;
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days as f64 * 86_400.0 + h * 3600.0 + min * 60.0 + s)
}

/// (timestamp, message) of the gateway's JSON log lines.
fn log_events(gateway: &Gateway) -> Vec<(f64, String)> {
    gateway
        .lines()
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            let ts = parse_ts(v["timestamp"].as_str()?)?;
            Some((ts, v["fields"]["message"].as_str()?.to_owned()))
        })
        .collect()
}

fn now_epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The rewritten entry of the reload scenario; `rev` changes its bytes.
fn touch_text(rev: u64) -> String {
    format!("# revision {rev}\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: touched}}\nspec:\n  hosts: [\"touched.test\"]\n  ports:\n    - {{number: 443, name: https, protocol: HTTPS}}\n  resolution: DNS\n")
}

async fn reload_latency(opts: &Opts, world: &Rc<World>, report: &mut Report) -> Res<()> {
    // allowed.yaml + touch.yaml + filler = --entries.
    let filler = opts.entries.saturating_sub(2);
    let dir = world.config(filler)?;
    let touch = dir.path().join("serviceentries/bench/touch.yaml");
    std::fs::write(&touch, touch_text(0))?;
    let started = Instant::now();
    let gateway = Gateway::start(opts, dir, Duration::from_secs(120))?;
    println!(
        "# reload-latency: {} entries, gateway ready in {:.2} s",
        opts.entries,
        started.elapsed().as_secs_f64()
    );
    let proxy = gateway.addr("connect")?;
    let request = connect_request("allowed.test:9000");
    let workers = opts.workers.iter().copied().max().unwrap_or(16);
    let writes: Rc<RefCell<Vec<f64>>> = Rc::default();
    let mut quiet = Rate {
        ops: 0,
        errors: 0,
        first_error: None,
        secs: 0.0,
        lat: Vec::new(),
        cpu: Some((0.0, 0.0)),
    };
    let mut busy = Rate {
        ops: 0,
        errors: 0,
        first_error: None,
        secs: 0.0,
        lat: Vec::new(),
        cpu: Some((0.0, 0.0)),
    };
    let mut rev = 1u64;
    // Alternate quiet and reloading runs twice, so drift hits both alike.
    for round in 0..4 {
        let reloading = round % 2 == 1;
        let writer = if reloading {
            let writes = writes.clone();
            let period = Duration::from_millis(opts.reload_every_ms);
            let until = Instant::now() + Duration::from_secs_f64(opts.warmup + opts.secs);
            let max = (opts.secs * 1000.0 / opts.reload_every_ms as f64) as u64 + 20;
            let first = rev;
            rev += max;
            let touch = touch.clone();
            let handle = spawn_local(async move {
                let mut ticker = tokio::time::interval(period);
                for i in 0..max {
                    ticker.tick().await;
                    if Instant::now() >= until {
                        break;
                    }
                    writes.borrow_mut().push(now_epoch());
                    let _ = std::fs::write(&touch, touch_text(first + i));
                }
            });
            Some(handle)
        } else {
            None
        };
        let run = closed_loop(opts, workers, Some(gateway.pid()), move || {
            op_connect(proxy, request)
        })
        .await;
        if let Some(handle) = writer {
            handle.abort();
        }
        let into = if reloading { &mut busy } else { &mut quiet };
        into.ops += run.ops;
        into.errors += run.errors;
        into.secs += run.secs;
        into.lat.extend(run.lat);
        if into.first_error.is_none() {
            into.first_error = run.first_error;
        }
        if let (Some(a), Some(b)) = (into.cpu, run.cpu) {
            into.cpu = Some((a.0 + b.0, a.1 + b.1));
        }
        // Let a pending reload finish before a quiet run.
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    quiet.lat.sort_unstable();
    busy.lat.sort_unstable();
    report.rate(
        "reload-latency",
        "gateway, no reloads",
        workers,
        &quiet,
        &quiet,
    );
    report.rate(
        "reload-latency",
        &format!(
            "gateway, config rewritten every {} ms",
            opts.reload_every_ms
        ),
        workers,
        &busy,
        &quiet,
    );
    // File change -> "config reloaded" (includes the watcher's debounce).
    let events = log_events(&gateway);
    let writes = writes.borrow().clone();
    let mut after_write: Vec<f64> = events
        .iter()
        .filter(|(_, m)| m == "config reloaded")
        .filter_map(|(ts, _)| {
            let last = writes.iter().rev().find(|w| *w <= ts)?;
            Some((ts - last) * 1e3)
        })
        .collect();
    after_write.sort_by(f64::total_cmp);
    // SIGHUP -> "config reloaded": the reload itself (read, validate, compile, swap).
    let mut hup = Vec::new();
    for _ in 0..3 {
        let seen = log_events(&gateway)
            .iter()
            .filter(|(_, m)| m == "config reloaded")
            .count();
        Command::new("kill")
            .args(["-HUP", &gateway.pid().to_string()])
            .status()?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let events = log_events(&gateway);
            let reloaded: Vec<f64> = events
                .iter()
                .filter(|(_, m)| m == "config reloaded")
                .map(|e| e.0)
                .collect();
            if reloaded.len() > seen {
                let done = reloaded[reloaded.len() - 1];
                if let Some(sig) = events
                    .iter()
                    .filter(|(ts, m)| m.starts_with("SIGHUP") && *ts <= done)
                    .map(|e| e.0)
                    .next_back()
                {
                    hup.push((done - sig) * 1e3);
                }
                break;
            }
            if Instant::now() > deadline {
                return Err("no reload after SIGHUP within 60 s".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    hup.sort_by(f64::total_cmp);
    let p99_ratio = busy.pct_ms(0.99) / quiet.pct_ms(0.99);
    let med = |v: &[f64]| v.get(v.len() / 2).copied().unwrap_or(f64::NAN);
    let met = if p99_ratio <= 1.10 { "met" } else { "not met" };
    println!(
        "RESULT scenario=reload-latency entries={} workers={workers} p99_quiet_ms={:.3} p99_reloading_ms={:.3} p99_ratio={p99_ratio:.2} {met} p50_ratio={:.2} writes={} reloads={} write_to_reloaded_ms_median={:.1} write_to_reloaded_ms_max={:.1} sighup_reload_ms_median={:.1}",
        opts.entries,
        quiet.pct_ms(0.99),
        busy.pct_ms(0.99),
        busy.pct_ms(0.5) / quiet.pct_ms(0.5),
        writes.len(),
        after_write.len(),
        med(&after_write),
        after_write.last().copied().unwrap_or(f64::NAN),
        med(&hup),
    );
    report.row(
        "reload-latency summary (target: p99 within 10 %)",
        "| entries | p99 quiet ms | p99 reloading ms | ratio | met | file writes | reloads | write → reloaded ms (median / max) | SIGHUP → reloaded ms (median) |\n|---:|---:|---:|---:|---|---:|---:|---:|---:|",
        format!(
            "| {} | {:.3} | {:.3} | {p99_ratio:.2}x | {met} | {} | {} | {:.1} / {:.1} | {:.1} |",
            opts.entries,
            quiet.pct_ms(0.99),
            busy.pct_ms(0.99),
            writes.len(),
            after_write.len(),
            med(&after_write),
            after_write.last().copied().unwrap_or(f64::NAN),
            med(&hup)
        ),
    );
    Ok(())
}
