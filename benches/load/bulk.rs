//! `bulk`: throughput of N streams reading the zero source directly, through plaintext CONNECT
//! tunnels and through mTLS CONNECT tunnels.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::spawn_local;
use tokio_rustls::TlsConnector;

use crate::gateway::{cpu_secs, Gateway};
use crate::ops::{connect_head, connect_request, tcp};
use crate::report::Report;
use crate::world::World;
use crate::{Opts, Res, OP_TIMEOUT};

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

pub(crate) async fn bulk(opts: &Opts, world: &Rc<World>, report: &mut Report) -> Res<()> {
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
