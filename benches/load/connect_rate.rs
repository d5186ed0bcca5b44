//! `connect-rate`: fresh plaintext CONNECT tunnels with one 64-byte echo, against direct echo
//! connections.

use std::rc::Rc;
use std::time::Duration;

use crate::gateway::Gateway;
use crate::ops::{connect_request, op_connect, op_direct_echo};
use crate::report::Report;
use crate::runner::closed_loop;
use crate::world::World;
use crate::{Opts, Res};

pub(crate) async fn connect_rate(opts: &Opts, world: &Rc<World>, report: &mut Report) -> Res<()> {
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
