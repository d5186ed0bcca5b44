//! The closed-loop runner: N workers repeat one operation for warmup + secs, and the measured
//! window yields a `Rate` (ops, latencies, errors, gateway CPU).

use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::task::spawn_local;

use crate::gateway::cpu_secs;
use crate::{Opts, Res, OP_TIMEOUT};

/// What one closed-loop run measured.
pub(crate) struct Rate {
    pub(crate) ops: u64,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    pub(crate) secs: f64,
    /// Sorted latencies of the measured operations, nanoseconds.
    pub(crate) lat: Vec<u64>,
    /// Gateway (user, system) CPU seconds over the measured window.
    pub(crate) cpu: Option<(f64, f64)>,
}

impl Rate {
    pub(crate) fn rate(&self) -> f64 {
        self.ops as f64 / self.secs
    }

    pub(crate) fn pct_ms(&self, q: f64) -> f64 {
        percentile(&self.lat, q)
    }

    pub(crate) fn cpu_us_per_op(&self) -> Option<f64> {
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
pub(crate) async fn closed_loop<F, Fut>(
    opts: &Opts,
    workers: usize,
    pid: Option<u32>,
    op: F,
) -> Rate
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
