//! `h2-rate`: HTTP/2 CONNECT streams on a warm mTLS connection against HTTP/1.1 CONNECT with a
//! fresh mTLS handshake each, both against direct echo connections.

use std::rc::Rc;
use std::time::Duration;

use crate::gateway::Gateway;
use crate::ops::{connect_request, h2_session, op_direct_echo, op_h2_stream, op_tls_connect};
use crate::report::Report;
use crate::runner::closed_loop;
use crate::world::World;
use crate::{Opts, Res};

pub(crate) async fn h2_rate(opts: &Opts, world: &Rc<World>, report: &mut Report) -> Res<()> {
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
