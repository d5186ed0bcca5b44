//! `idle`: the gateway's RSS per held idle connection (CONNECT tunnels, then SNI connections), each
//! kind on a fresh gateway process.

use std::error::Error;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::spawn_local;

use crate::gateway::{rss_kib, Gateway};
use crate::ops::{connect_head, connect_request, echo, tcp};
use crate::report::Report;
use crate::world::World;
use crate::{Opts, Res, OP_TIMEOUT};

pub(crate) async fn idle(opts: &Opts, world: &Rc<World>, report: &mut Report) -> Res<()> {
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
