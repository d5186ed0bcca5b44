//! `http-rate`: keep-alive GETs, each worker on one client connection, through the gateway's
//! `http` listener (transparent, `Host` names the destination) and as absolute-form requests on
//! its `connect` listener, against the same GETs sent straight to the origin; plus any peer
//! forward proxy given with `--http-peer NAME=ADDR[@PID]` (absolute-form to
//! `allowed.test:<origin port>`, the peer resolving `allowed.test` to 127.0.0.1 itself).
//! Upstream, the gateway keeps its connections to the origin in its pool; a second gateway with
//! the pool turned off (`upstream.pool.max_idle: 0`) runs the same two paths (`*-nopool`), so
//! what the pool buys is measured in the same run.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::gateway::Gateway;
use crate::ops::tcp;
use crate::report::Report;
use crate::runner::closed_loop;
use crate::world::World;
use crate::{Opts, Res};

/// One worker's keep-alive connection and the request it repeats. `Clone` gives a new worker
/// its own (empty) connection slot; `handle` shares the slot within one worker.
struct KeepAliveGet {
    addr: SocketAddr,
    request: Rc<[u8]>,
    conn: Rc<RefCell<Option<TcpStream>>>,
}

impl Clone for KeepAliveGet {
    fn clone(&self) -> Self {
        Self {
            addr: self.addr,
            request: self.request.clone(),
            conn: Rc::default(),
        }
    }
}

impl KeepAliveGet {
    fn new(addr: SocketAddr, request: String) -> Self {
        Self {
            addr,
            request: request.into_bytes().into(),
            conn: Rc::default(),
        }
    }

    fn handle(&self) -> Self {
        Self {
            conn: self.conn.clone(),
            ..self.clone()
        }
    }

    /// One GET and its whole answer on the worker's connection (opened on first use or after a
    /// failure).
    async fn get(self) -> Res<()> {
        let taken = self.conn.borrow_mut().take();
        let mut stream = match taken {
            Some(stream) => stream,
            None => tcp(self.addr).await?,
        };
        stream.write_all(&self.request).await?;
        read_answer(&mut stream).await?;
        *self.conn.borrow_mut() = Some(stream);
        Ok(())
    }
}

/// Reads one `200` answer with a `Content-Length` body.
async fn read_answer(stream: &mut TcpStream) -> Res<()> {
    let mut buf = [0u8; 4096];
    let mut len = 0;
    loop {
        let n = stream.read(&mut buf[len..]).await?;
        if n == 0 {
            return Err("closed before the answer".into());
        }
        len += n;
        let Some(end) = buf[..len].windows(4).position(|w| w == b"\r\n\r\n") else {
            if len == buf.len() {
                return Err("answer head too long".into());
            }
            continue;
        };
        let head = std::str::from_utf8(&buf[..end])?;
        if !head.starts_with("HTTP/1.1 200") {
            return Err(format!("answered {:?}", head.lines().next()).into());
        }
        let body: usize = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .ok_or("no Content-Length")?;
        let mut missing = (end + 4 + body).saturating_sub(len);
        while missing > 0 {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Err("closed inside the body".into());
            }
            missing = missing.saturating_sub(n);
        }
        return Ok(());
    }
}

fn get_request(target: &str, host: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n")
}

pub(crate) async fn http_rate(opts: &Opts, world: &Rc<World>, report: &mut Report) -> Res<()> {
    let gateway = Gateway::start(opts, world.config(0)?, Duration::from_secs(15))?;
    let unpooled = world.config(0)?;
    let mut gateway_yaml = std::fs::OpenOptions::new()
        .append(true)
        .open(unpooled.path().join("gateway.yaml"))?;
    std::io::Write::write_all(&mut gateway_yaml, b"upstream:\n  pool: {max_idle: 0}\n")?;
    let unpooled = Gateway::start(opts, unpooled, Duration::from_secs(15))?;
    let origin = world.http;
    let origin_authority = format!("allowed.test:{}", origin.port());
    let mut runs = Vec::new();
    for (suffix, gateway) in [("", &gateway), ("-nopool", &unpooled)] {
        runs.push((
            format!("gateway-http{suffix}"),
            gateway.addr("http")?,
            get_request("/", "allowed.test"),
            Some(gateway.pid()),
        ));
        runs.push((
            format!("gateway-absolute{suffix}"),
            gateway.addr("connect")?,
            get_request("http://allowed.test/", "allowed.test"),
            Some(gateway.pid()),
        ));
    }
    let peers = opts.http_peers.iter().map(|peer| {
        (
            peer.name.clone(),
            peer.addr,
            get_request(&format!("http://{origin_authority}/"), &origin_authority),
            peer.pid,
        )
    });
    runs.extend(peers);
    for &workers in &opts.workers {
        let direct = KeepAliveGet::new(origin, get_request("/", &origin_authority));
        let direct = closed_loop(opts, workers, None, move || direct.handle().get()).await;
        report.rate("http-rate", "direct", workers, &direct, &direct);
        for (name, addr, request, pid) in &runs {
            let op = KeepAliveGet::new(*addr, request.clone());
            let via = closed_loop(opts, workers, *pid, move || op.handle().get()).await;
            report.rate("http-rate", name, workers, &via, &direct);
        }
    }
    Ok(())
}
