//! `soak`: the gateway's memory per open tunnel at its worst, the figure the Deployment's memory
//! request and limit are computed from (deploy/README.md, "Capacity").
//!
//! For each kind of tunnel (plaintext CONNECT, mTLS CONNECT with its TLS buffers, HTTP/2 CONNECT
//! streams with their flow-control windows) a fresh gateway gets `--n` tunnels that stay open
//! after a 4-byte echo; then, with all of them held, 1 % of that count (at least 4, at most 64)
//! more tunnels of the same kind stream bulk data for `--secs`, so that copy buffers and TLS
//! records are full while the rest sit idle. `VmRSS` is sampled from `/proc/PID/status` every
//! 100 ms over that window; the per-tunnel figure is (highest RSS - RSS before) / tunnels held.

use std::cell::Cell;
use std::error::Error;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::task::spawn_local;
use tokio_rustls::TlsConnector;

use crate::gateway::{rss_kib, Gateway};
use crate::ops::{connect_head, connect_request, echo, h2_session, tcp};
use crate::report::Report;
use crate::world::World;
use crate::{Opts, Res, OP_TIMEOUT};

/// Tunnels opened at once while filling the gateway.
const BATCH: usize = 64;
/// Longest the whole fill of one kind may take.
const FILL_DEADLINE: Duration = Duration::from_secs(600);
/// HTTP/2 streams per connection (the gateway's `max_streams_per_connection` in the bench config).
const STREAMS_PER_H2: usize = 256;

/// A held tunnel or connection of any kind; dropping it closes it.
type Held = Box<dyn std::any::Any>;

/// What filling a gateway left open.
#[derive(Default)]
struct Filled {
    /// Tunnels, and for HTTP/2 the connections that carry them.
    keep: Vec<Held>,
    /// Tunnels open (echo proven).
    tunnels: usize,
    /// Tunnels that failed to open.
    errors: usize,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Plain,
    Mtls,
    H2,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Plain => "plaintext CONNECT",
            Kind::Mtls => "mTLS CONNECT",
            Kind::H2 => "HTTP/2 CONNECT stream (mTLS)",
        }
    }
}

/// Where a tunnel of some kind is opened.
#[derive(Clone)]
struct Dialer {
    kind: Kind,
    plain: SocketAddr,
    tls: SocketAddr,
    h1: Arc<rustls::ClientConfig>,
}

impl Dialer {
    /// An HTTP/1.1 CONNECT tunnel to `authority`, after its `200`.
    async fn tunnel(&self, authority: &str) -> Res<Box<dyn Stream>> {
        let request = connect_request(authority);
        if self.kind == Kind::Plain {
            let mut stream = tcp(self.plain).await?;
            connect_head(&mut stream, request).await?;
            return Ok(Box::new(stream));
        }
        let stream = tcp(self.tls).await?;
        let mut tls = TlsConnector::from(self.h1.clone())
            .connect(ServerName::try_from("gateway.test")?, stream)
            .await?;
        connect_head(&mut tls, request).await?;
        Ok(Box::new(tls))
    }
}

trait Stream: AsyncRead + AsyncWrite + Unpin {}
impl<S: AsyncRead + AsyncWrite + Unpin> Stream for S {}

pub(crate) async fn soak(opts: &Opts, world: &Rc<World>, report: &mut Report) -> Res<()> {
    let header = "| tunnel kind | held | streaming | RSS before KiB | RSS held KiB | RSS peak KiB | KiB per tunnel (peak) | MB/s | errors |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|";
    let mut worst: f64 = 0.0;
    for kind in [Kind::Plain, Kind::Mtls, Kind::H2] {
        let gateway = Gateway::start(opts, world.config(0)?, Duration::from_secs(15))?;
        let dialer = Dialer {
            kind,
            plain: gateway.addr("connect")?,
            tls: gateway.addr("connect_tls")?,
            h1: world.pki.client_config(b"http/1.1")?,
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = rss_kib(gateway.pid());
        let filled = if kind == Kind::H2 {
            fill_h2(opts.idle_n, &gateway, world).await?
        } else {
            fill_h1(opts.idle_n, &dialer).await
        };
        let mut errors = filled.errors;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let idle_rss = rss_kib(gateway.pid());
        let streaming = (opts.idle_n / 100).clamp(4, 64);
        let (peak, mb_s, bulk_errors) =
            stream_bulk(opts, &dialer, &gateway, world, streaming).await;
        errors += bulk_errors;
        let per = (peak.max(idle_rss) as f64 - before as f64) / filled.tunnels.max(1) as f64;
        worst = worst.max(per);
        println!(
            "RESULT scenario=soak kind={:?} held={} streaming={streaming} rss_before_kib={before} rss_held_kib={idle_rss} rss_peak_kib={peak} kib_per_tunnel={per:.2} mb_s={mb_s:.1} errors={errors}",
            kind.label(),
            filled.tunnels
        );
        report.row(
            "soak (gateway VmRSS, fresh process per kind)",
            header,
            format!(
                "| {} | {} | {streaming} | {before} | {idle_rss} | {peak} | {per:.2} | {mb_s:.1} | {errors} |",
                kind.label(),
                filled.tunnels
            ),
        );
        drop(filled);
        drop(gateway);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!("RESULT scenario=soak worst_kib_per_tunnel={worst:.2}");
    Ok(())
}

/// Opens `n` HTTP/1.1 tunnels (plaintext or mTLS) to the echo origin, each proven with a 4-byte
/// echo, and keeps them.
async fn fill_h1(n: usize, dialer: &Dialer) -> Filled {
    let mut filled = Filled::default();
    let deadline = Instant::now() + FILL_DEADLINE;
    while filled.tunnels + filled.errors < n && Instant::now() < deadline {
        let batch = (n - filled.tunnels - filled.errors).min(BATCH);
        let tasks: Vec<_> = (0..batch)
            .map(|_| {
                let dialer = dialer.clone();
                spawn_local(async move {
                    let open = async {
                        let mut stream = dialer.tunnel("allowed.test:9000").await?;
                        echo(&mut stream, 4).await?;
                        Ok::<_, Box<dyn Error>>(stream)
                    };
                    tokio::time::timeout(OP_TIMEOUT, open).await
                })
            })
            .collect();
        for task in tasks {
            match task.await {
                Ok(Ok(Ok(stream))) => {
                    filled.keep.push(Box::new(stream));
                    filled.tunnels += 1;
                }
                _ => filled.errors += 1,
            }
        }
    }
    filled
}

/// Opens `n` HTTP/2 CONNECT streams to the echo origin over as few mTLS connections as the
/// stream limit allows, each proven with a 4-byte echo, and keeps them with their connections.
async fn fill_h2(n: usize, gateway: &Gateway, world: &World) -> Res<Filled> {
    let addr = gateway.addr("connect_tls")?;
    let h2 = world.pki.client_config(b"h2")?;
    let mut filled = Filled::default();
    let deadline = Instant::now() + FILL_DEADLINE;
    let mut tried = 0;
    while tried < n && Instant::now() < deadline {
        let send = h2_session(addr, h2.clone()).await?;
        filled.keep.push(Box::new(send.clone()));
        let on_this = (n - tried).min(STREAMS_PER_H2 - 1);
        let mut left = on_this;
        while left > 0 {
            let batch = left.min(BATCH);
            let tasks: Vec<_> = (0..batch)
                .map(|_| {
                    let send = send.clone();
                    spawn_local(
                        async move { tokio::time::timeout(OP_TIMEOUT, h2_stream(send)).await },
                    )
                })
                .collect();
            for task in tasks {
                match task.await {
                    Ok(Ok(Ok(stream))) => {
                        filled.keep.push(stream);
                        filled.tunnels += 1;
                    }
                    _ => filled.errors += 1,
                }
            }
            left -= batch;
        }
        tried += on_this;
    }
    Ok(filled)
}

/// One HTTP/2 CONNECT stream, echoed once and left open.
async fn h2_stream(send: h2::client::SendRequest<Bytes>) -> Res<Held> {
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
    stream.send_data(Bytes::from_static(b"ping"), false)?;
    let mut got = 0;
    while got < 4 {
        let chunk = body.data().await.ok_or("stream ended before the echo")??;
        got += chunk.len();
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    Ok(Box::new((stream, body)))
}

/// While everything else is held: `count` more tunnels of the dialer's kind read the zero
/// source for `--secs`; returns (highest VmRSS seen, MB/s, errors).
async fn stream_bulk(
    opts: &Opts,
    dialer: &Dialer,
    gateway: &Gateway,
    world: &World,
    count: usize,
) -> (u64, f64, usize) {
    let total = Rc::new(Cell::new(0u64));
    let mut errors = 0;
    let end = Instant::now() + Duration::from_secs_f64(opts.warmup + opts.secs);
    let mut tasks = Vec::new();
    let h2 = if dialer.kind == Kind::H2 {
        match (gateway.addr("connect_tls"), world.pki.client_config(b"h2")) {
            (Ok(addr), Ok(config)) => h2_session(addr, config).await.ok(),
            _ => None,
        }
    } else {
        None
    };
    for _ in 0..count {
        let total = total.clone();
        let dialer = dialer.clone();
        let h2 = h2.clone();
        tasks.push(spawn_local(async move {
            if let Some(send) = h2 {
                return h2_bulk(send, &total, end).await;
            }
            let mut stream = dialer.tunnel("allowed.test:9001").await?;
            let mut buf = vec![0u8; 64 * 1024];
            while Instant::now() < end {
                match tokio::time::timeout(OP_TIMEOUT, stream.read(&mut buf)).await {
                    Ok(Ok(n)) if n > 0 => total.set(total.get() + n as u64),
                    _ => return Err::<(), Box<dyn Error>>("bulk read failed".into()),
                }
            }
            Ok(())
        }));
    }
    let mut peak = 0;
    while Instant::now() < end {
        peak = peak.max(rss_kib(gateway.pid()));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for task in tasks {
        if !matches!(task.await, Ok(Ok(()))) {
            errors += 1;
        }
    }
    let mb_s = total.get() as f64 / 1e6 / (opts.warmup + opts.secs);
    (peak, mb_s, errors)
}

/// One HTTP/2 CONNECT stream to the zero source, read until `end`.
async fn h2_bulk(send: h2::client::SendRequest<Bytes>, total: &Cell<u64>, end: Instant) -> Res<()> {
    let mut send = send.ready().await?;
    let request = http::Request::builder()
        .method(http::Method::CONNECT)
        .uri("allowed.test:9001")
        .body(())?;
    let (response, _stream) = send.send_request(request, false)?;
    let response = response.await?;
    if response.status() != 200 {
        return Err(format!("h2 CONNECT answered {}", response.status()).into());
    }
    let mut body = response.into_body();
    while Instant::now() < end {
        let chunk = tokio::time::timeout(OP_TIMEOUT, body.data())
            .await?
            .ok_or("stream ended")??;
        total.set(total.get() + chunk.len() as u64);
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    Ok(())
}
