//! `sni-rate`: a policy probe of allowed and denied names, then ClientHello → first reply byte
//! through the SNI listener, against the fake TLS origin directly.

use std::rc::Rc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::gateway::Gateway;
use crate::ops::{op_sni, tcp};
use crate::origins::ORIGIN_ALERT;
use crate::report::Report;
use crate::runner::closed_loop;
use crate::world::{client_hello, World};
use crate::{Opts, Res, OP_TIMEOUT};

pub(crate) async fn sni_rate(opts: &Opts, world: &Rc<World>, report: &mut Report) -> Res<()> {
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
