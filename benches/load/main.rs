//! Load tool: drives the release gateway binary over loopback and prints, for every scenario, a
//! same-run `direct` baseline (same driver, same origin, no proxy) and the ratio to it.
//!
//! ```text
//! cargo build --release
//! cargo bench --bench load -- [SCENARIO ...|all] [--secs N] [--workers 1,16] ...
//! ```
//!
//! Scenarios: `connect-rate`, `sni-rate`, `h2-rate`, `http-rate`, `bulk`, `idle`, `reload-latency`,
//! `soak` (see
//! `benches/README.md`). The gateway runs with `runtime: {worker_threads: 1}` pinned to one core
//! (`taskset -c 1`), this driver and its origins to another (`taskset -p -c 0` on itself). Every
//! load loop is bounded in time (`--secs`) and in count (`--max-ops`); every address is
//! 127.0.0.1. Results are `RESULT scenario=... key=value ...` lines plus markdown tables.
//!
//! Run without cargo's `--bench` flag (as `cargo test --benches` does) it does nothing.
//!
//! Layout: this file parses arguments and runs the chosen scenarios; `world` (origins'
//! addresses, PKI, config directories), `origins` (echo, zero source, fake TLS), `gateway` (the
//! process, its addresses, /proc CPU and RSS), `ops` (one client operation each), `runner` (the
//! closed loop), `report` (RESULT lines and markdown tables), and one file per scenario.

mod bulk;
mod connect_rate;
mod gateway;
mod h2_rate;
mod http_rate;
mod idle;
mod ops;
mod origins;
mod reload_latency;
mod report;
mod runner;
mod sni_rate;
mod soak;
mod world;

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use report::Report;
use world::World;

type Res<T> = Result<T, Box<dyn Error>>;

const SCENARIOS: [&str; 8] = [
    "connect-rate",
    "sni-rate",
    "h2-rate",
    "http-rate",
    "bulk",
    "idle",
    "reload-latency",
    "soak",
];
/// One operation (or one tunnel setup) that takes longer than this is an error.
const OP_TIMEOUT: Duration = Duration::from_secs(5);

const USAGE: &str = "\
usage: cargo bench --bench load -- [SCENARIO ...|all] [options]

scenarios: connect-rate sni-rate h2-rate http-rate bulk idle reload-latency soak (default: all,
           briefly)

options:
  --secs N            measured seconds per run (default 5; 2 when running all)
  --warmup N          unrecorded seconds before each run (default 1; 0.5 when running all)
  --workers LIST      closed-loop concurrency for the rate scenarios (default 1,16)
  --tunnels LIST      tunnel counts for bulk (default 1,4)
  --n N               idle, soak: connections held (default 2000; soak is sized with 20000)
  --entries N         reload-latency: allowlist entries (default 10000)
  --reload-every MS   reload-latency: config rewrite period (default 200)
  --max-ops N         count bound per run (default 5000000)
  --gateway PATH      gateway binary (default target/release/egress-gateway)
  --gateway-core N    core the gateway is pinned to (default 1)
  --driver-core N     core this driver and its origins are pinned to (default 0)
  --no-pin            do not pin anything
  --access-log PATH   where the gateway's stdout (access log) goes (default /dev/null)
  --http-peer N=A[@P] http-rate: also drive the forward proxy named N at 127.0.0.1 address A
                      (absolute-form GETs), reading process P's CPU; repeatable";

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
    http_peers: Vec<HttpPeer>,
}

/// A peer forward proxy measured in `http-rate` beside the gateway.
#[derive(Clone)]
struct HttpPeer {
    name: String,
    addr: std::net::SocketAddr,
    pid: Option<u32>,
}

/// `NAME=ADDR[@PID]`.
fn http_peer(value: &str) -> Result<HttpPeer, String> {
    let (name, rest) = value
        .split_once('=')
        .ok_or_else(|| format!("--http-peer {value:?}: want NAME=ADDR[@PID]"))?;
    let (addr, pid) = match rest.split_once('@') {
        Some((addr, pid)) => (
            addr,
            Some(pid.parse().map_err(|_| format!("bad pid {pid:?}"))?),
        ),
        None => (rest, None),
    };
    let addr = addr.parse().map_err(|_| format!("bad address {addr:?}"))?;
    Ok(HttpPeer {
        name: name.to_owned(),
        addr,
        pid,
    })
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
        http_peers: Vec::new(),
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
            "--http-peer" => opts.http_peers.push(http_peer(&value()?)?),
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
            "connect-rate" => connect_rate::connect_rate(&opts, &world, &mut report).await,
            "sni-rate" => sni_rate::sni_rate(&opts, &world, &mut report).await,
            "h2-rate" => h2_rate::h2_rate(&opts, &world, &mut report).await,
            "http-rate" => http_rate::http_rate(&opts, &world, &mut report).await,
            "bulk" => bulk::bulk(&opts, &world, &mut report).await,
            "idle" => idle::idle(&opts, &world, &mut report).await,
            "reload-latency" => reload_latency::reload_latency(&opts, &world, &mut report).await,
            "soak" => soak::soak(&opts, &world, &mut report).await,
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
