//! Composition root: load and compile the config, bind listeners, start the admin server, the
//! accept loops and the reloader, and run the drain on SIGTERM/SIGINT.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::accept;
use crate::account::metrics;
use crate::account::Accounting;
use crate::admin::{self, AdminState};
use crate::config::load::{FileDigest, ParseCache, Sources};
use crate::config::{self, last_good, Diagnostic, LoadedConfig};
use crate::dial::pool::IdlePool;
use crate::dial::{Dialer, DnsResolver};
use crate::limit::TenantLimiter;
use crate::pipeline::{self, Context};
use crate::plan::Listener;
use crate::reload::{self, ReloadState, Reloader};
use crate::snapshot::{self, CompileCache, Snapshot, SnapshotCell};
use crate::tls::TlsReloader;

/// Loads and compiles `dir` from scratch (`check`, `explain`).
pub fn load(dir: &Path, generation: u64) -> Result<(LoadedConfig, Snapshot), Vec<Diagnostic>> {
    load_reusing(&Sources::dir(dir), generation, &mut LoadCaches::default())
}

/// What one load hands the next: parsed files and compiled allowlists, reused while unchanged.
#[derive(Default)]
pub(crate) struct LoadCaches {
    parsed: ParseCache,
    /// Compiled entries and allowlists; an expiry recompile reuses them without a load.
    pub(crate) compiled: CompileCache,
}

/// Loads and compiles `dir`, reusing `caches`: the one path `run`, `check`, `explain` and
/// reloads share, so a reload accepts exactly what `check` accepts.
pub(crate) fn load_reusing(
    sources: &Sources,
    generation: u64,
    caches: &mut LoadCaches,
) -> Result<(LoadedConfig, Snapshot), Vec<Diagnostic>> {
    let mut loaded = config::load::load_from(sources, &mut caches.parsed)?;
    let snapshot = snapshot::compile_reusing(&loaded, generation, &mut caches.compiled)?;
    loaded
        .warnings
        .extend(snapshot::expiry::expired_warnings(&snapshot));
    Ok((loaded, snapshot))
}

/// Runs the gateway until SIGTERM/SIGINT and the drain complete.
pub async fn run(dir: PathBuf) -> anyhow::Result<()> {
    let signals = Signals::install()?;
    let prometheus = metrics::install().map_err(anyhow::Error::msg)?;
    metrics::spawn_upkeep(prometheus.clone()).context("starting the metrics upkeep thread")?;
    let mut caches = LoadCaches::default();
    let Start {
        loaded,
        snapshot,
        last_good_in_use,
    } = start_config(&dir, &mut caches)?;
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let persisted = if last_good_in_use {
        Vec::new()
    } else {
        persist_last_good(&loaded, &[])
    };
    let gateway = loaded.gateway.clone();
    let listener_names = enabled_listeners(&loaded);
    reload::publish(&snapshot, &listener_names, reload::Cause::Load);
    metrics::config_reload_outcome(!last_good_in_use);
    metrics::last_good_in_use(last_good_in_use);
    let snapshots = Arc::new(SnapshotCell::new(snapshot));

    let mut bound = Vec::new();
    let listeners = &gateway.listeners;
    let connect = match &listeners.connect {
        Some(l) => Some(bind(Listener::Connect, l.address, &mut bound).await?),
        None => None,
    };
    let connect_tls = match &listeners.connect_tls {
        Some(l) => {
            let files = gateway
                .tls
                .clone()
                .context("listeners.connect_tls needs a `tls` section")?;
            let tls = Arc::new(TlsReloader::new(files).map_err(anyhow::Error::msg)?);
            Some((
                bind(Listener::ConnectTls, l.address, &mut bound).await?,
                tls,
            ))
        }
        None => None,
    };
    let sni = match &listeners.sni {
        Some(l) => Some((bind(Listener::Sni, l.address, &mut bound).await?, l.port)),
        None => None,
    };
    let http = match &listeners.http {
        Some(l) => Some((bind(Listener::Http, l.address, &mut bound).await?, l.port)),
        None => None,
    };
    let admin_listener = match &gateway.admin {
        Some(a) => Some(bind("admin", a.address, &mut bound).await?),
        None => None,
    };

    let resolver = DnsResolver::new(&gateway.dns.servers, gateway.timeouts.connect)
        .map_err(anyhow::Error::msg)?;
    let hard_stop = CancellationToken::new();
    let draining = CancellationToken::new();
    let tracker = TaskTracker::new();
    let ctx = Arc::new(Context {
        snapshots: snapshots.clone(),
        dialer: Dialer::new(Box::new(resolver), bound),
        limiter: TenantLimiter::default(),
        draining: draining.clone(),
        hard_stop: hard_stop.clone(),
        tasks: tracker.clone(),
        accounting: Arc::new(Accounting::stdout(gateway.access_log.buffer_lines)),
        pool: IdlePool::default(),
    });
    tokio::spawn(pipeline::pooled::upkeep(ctx.clone()));
    let stop_accepting = CancellationToken::new();

    let admin_state = Arc::new(AdminState {
        snapshots: snapshots.clone(),
        prometheus,
        ready: AtomicBool::new(false),
        draining: AtomicBool::new(false),
        degraded: AtomicBool::new(last_good_in_use),
    });
    let admin_stop = CancellationToken::new();
    if let Some(listener) = admin_listener {
        tokio::spawn(admin::serve(
            listener,
            admin_state.clone(),
            admin_stop.clone(),
        ));
    }
    let mut loops = Vec::new();
    let (stop, track) = (&stop_accepting, &tracker);
    if let Some(listener) = connect {
        let accept = accept::connect(listener, ctx.clone(), stop.clone(), track.clone());
        loops.push(tokio::spawn(accept));
    }
    let tls = connect_tls.as_ref().map(|(_, tls)| tls.clone());
    if let Some((listener, tls)) = connect_tls {
        let accept = accept::connect_tls(listener, tls, ctx.clone(), stop.clone(), track.clone());
        loops.push(tokio::spawn(accept));
        metrics::touch_tls_errors(Listener::ConnectTls);
    }
    if let Some((listener, port)) = sni {
        let accept = accept::sni(listener, port, ctx.clone(), stop.clone(), track.clone());
        loops.push(tokio::spawn(accept));
    }
    if let Some((listener, port)) = http {
        let accept = accept::http(listener, port, ctx.clone(), stop.clone(), track.clone());
        loops.push(tokio::spawn(accept));
    }
    let reloader = Arc::new(Reloader {
        dir: dir.clone(),
        snapshots: snapshots.clone(),
        listeners: listener_names,
        state: Mutex::new(ReloadState {
            generation: 1,
            caches,
            persisted,
            loaded,
        }),
        tls,
        admin: admin_state.clone(),
    });
    let reloads =
        reload::ReloadThread::spawn(reloader.clone()).context("starting the reload thread")?;
    // Watching starts before readiness, so no change made after `/readyz` says 200 is missed.
    let _watcher = watch(&reloader, &reloads, &gateway.serviceentries.dir)?;
    admin_state.ready.store(true, Ordering::Release);
    tracing::info!(generation = 1, dir = %dir.display(), "gateway ready");
    wait_for_shutdown(&reloads, signals).await?;

    admin_state.draining.store(true, Ordering::Release);
    stop_accepting.cancel();
    draining.cancel();
    for accept in loops {
        let _ = accept.await;
    }
    tracker.close();
    let drain = gateway.timeouts.drain;
    tracing::info!(open = tracker.len(), drain = ?drain, "draining open connections");
    if tokio::time::timeout(drain, tracker.wait()).await.is_err() {
        tracing::warn!(
            open = tracker.len(),
            "drain deadline passed: closing open connections"
        );
        hard_stop.cancel();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), tracker.wait()).await;
    }
    admin_stop.cancel();
    ctx.accounting.log.flush();
    tracing::info!("stopped");
    Ok(())
}

/// The config a gateway starts with, and whether it is the last good copy.
struct Start {
    loaded: LoadedConfig,
    snapshot: Snapshot,
    last_good_in_use: bool,
}

/// Loads `dir`; when it is invalid and its gateway.yaml names a `state_dir` holding a last good
/// copy, loads that copy instead (after logging every problem of `dir`), so a broken merge does
/// not turn every restart into a crash loop. Without a copy, an invalid config is fatal.
fn start_config(dir: &Path, caches: &mut LoadCaches) -> anyhow::Result<Start> {
    let problems = match load_reusing(&Sources::dir(dir), 1, caches) {
        Ok((loaded, snapshot)) => {
            return Ok(Start {
                loaded,
                snapshot,
                last_good_in_use: false,
            })
        }
        Err(problems) => problems,
    };
    log_problems(&problems);
    let invalid = format!(
        "config in {} is invalid ({} errors)",
        dir.display(),
        problems.iter().filter(|p| p.is_error()).count()
    );
    let Some(state_dir) = config::load::read_state_dir(dir) else {
        anyhow::bail!(invalid);
    };
    let Some(sources) = last_good::sources(&state_dir, dir) else {
        anyhow::bail!(
            "{invalid}, and {} holds no last good copy",
            state_dir.display()
        );
    };
    match load_reusing(&sources, 1, caches) {
        Ok((loaded, snapshot)) => {
            tracing::error!(
                state_dir = %state_dir.display(),
                "{invalid}: serving the last good config from state_dir until a reload succeeds"
            );
            Ok(Start {
                loaded,
                snapshot,
                last_good_in_use: true,
            })
        }
        Err(copy_problems) => {
            log_problems(&copy_problems);
            anyhow::bail!(
                "{invalid}, and so is the last good copy in {}",
                state_dir.display()
            );
        }
    }
}

/// Copies the inputs of `loaded` to its `state_dir` (if it has one) unless they are the
/// `persisted` ones; returns what the state dir now holds. A failed copy is logged and leaves the
/// previous one.
/// Logs a failed load's findings at their own level: the warnings that came with the errors are
/// not errors themselves.
pub(crate) fn log_problems(problems: &[Diagnostic]) {
    for problem in problems {
        if problem.is_error() {
            tracing::error!("{problem}");
        } else {
            tracing::warn!("{problem}");
        }
    }
}

pub(crate) fn persist_last_good(
    loaded: &LoadedConfig,
    persisted: &[FileDigest],
) -> Vec<FileDigest> {
    let Some(state_dir) = &loaded.gateway.state_dir else {
        return Vec::new();
    };
    if loaded.files == persisted {
        return persisted.to_vec();
    }
    match last_good::persist(state_dir, loaded) {
        Ok(()) => loaded.files.clone(),
        Err(err) => {
            tracing::warn!(state_dir = %state_dir.display(), "could not keep a copy of the config that loaded: {err}");
            persisted.to_vec()
        }
    }
}

/// Watches the config directory (and the ServiceEntry folder and TLS files when they live
/// elsewhere), reloading after each burst of changes.
fn watch(
    reloader: &Reloader,
    reloads: &reload::ReloadThread,
    entries_dir: &Path,
) -> anyhow::Result<reload::ConfigWatcher> {
    let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let mut watched = vec![reloader.dir.clone()];
    let entries_dir = canonical(entries_dir);
    if !entries_dir.starts_with(canonical(&reloader.dir)) {
        watched.push(entries_dir);
    }
    let tls_files = reloader.tls.as_ref().map(|t| t.files()).unwrap_or_default();
    let reloads = reloads.clone();
    reload::watch(watched, tls_files, move || reloads.request())
        .context("watching the config directory")
}

/// The signals the gateway handles, installed before anything is bound so that a signal sent as
/// soon as the process is ready is never fatal.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate()).context("SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("SIGINT handler")?,
            hup: signal(SignalKind::hangup()).context("SIGHUP handler")?,
        })
    }
}

/// Waits for SIGTERM/SIGINT, reloading on every SIGHUP meanwhile.
async fn wait_for_shutdown(reloads: &reload::ReloadThread, signals: Signals) -> anyhow::Result<()> {
    let Signals {
        mut term,
        mut int,
        mut hup,
    } = signals;
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: shutting down"); return Ok(()); }
            _ = int.recv() => { tracing::info!("SIGINT: shutting down"); return Ok(()); }
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading");
                reloads.request();
            }
        }
    }
}

fn enabled_listeners(loaded: &LoadedConfig) -> Vec<Listener> {
    let l = &loaded.gateway.listeners;
    [
        (Listener::Connect, l.connect.is_some()),
        (Listener::ConnectTls, l.connect_tls.is_some()),
        (Listener::Sni, l.sni.is_some()),
        (Listener::Http, l.http.is_some()),
    ]
    .into_iter()
    .filter_map(|(listener, on)| on.then_some(listener))
    .collect()
}

async fn bind(
    name: impl std::fmt::Display,
    address: SocketAddr,
    bound: &mut Vec<SocketAddr>,
) -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("binding the {name} listener on {address}"))?;
    accept::no_delay_for_accepted(&listener)
        .with_context(|| format!("setting TCP_NODELAY on the {name} listener"))?;
    let local = listener.local_addr()?;
    tracing::info!(listener = %name, address = %local, "listening");
    bound.push(local);
    Ok(listener)
}
