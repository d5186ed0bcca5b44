//! `reload-latency`: CONNECT p99 on a large config with and without a file rewritten every few
//! ms, and the file-write → reloaded and SIGHUP → reloaded delays from the gateway's log.

use std::cell::RefCell;
use std::process::Command;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::task::spawn_local;

use crate::gateway::{thread_cpu_secs, Gateway};
use crate::ops::{connect_request, op_connect};
use crate::report::Report;
use crate::runner::{closed_loop, Rate};
use crate::world::World;
use crate::{Opts, Res};

/// Seconds since the epoch of an RFC 3339 UTC timestamp (`2026-11-28T08:03:00.123456Z`).
fn parse_ts(ts: &str) -> Option<f64> {
    let (date, time) = ts.trim_end_matches('Z').split_once('T')?;
    let mut d = date.split('-').map(|v| v.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':');
    let (h, min) = (
        t.next()?.parse::<f64>().ok()?,
        t.next()?.parse::<f64>().ok()?,
    );
    let s = t.next()?.parse::<f64>().ok()?;
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days as f64 * 86_400.0 + h * 3600.0 + min * 60.0 + s)
}

/// (timestamp, message) of the gateway's JSON log lines.
fn log_events(gateway: &Gateway) -> Vec<(f64, String)> {
    gateway
        .lines()
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            let ts = parse_ts(v["timestamp"].as_str()?)?;
            Some((ts, v["fields"]["message"].as_str()?.to_owned()))
        })
        .collect()
}

fn now_epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The rewritten entry of the reload scenario; `rev` changes its bytes.
fn touch_text(rev: u64) -> String {
    format!("# revision {rev}\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: touched}}\nspec:\n  hosts: [\"touched.test\"]\n  ports:\n    - {{number: 443, name: https, protocol: HTTPS}}\n  resolution: DNS\n")
}

pub(crate) async fn reload_latency(opts: &Opts, world: &Rc<World>, report: &mut Report) -> Res<()> {
    // allowed.yaml + touch.yaml + filler = --entries.
    let filler = opts.entries.saturating_sub(2);
    let dir = world.config(filler)?;
    let touch = dir.path().join("serviceentries/bench/touch.yaml");
    std::fs::write(&touch, touch_text(0))?;
    let started = Instant::now();
    let gateway = Gateway::start(opts, dir, Duration::from_secs(120))?;
    println!(
        "# reload-latency: {} entries, gateway ready in {:.2} s",
        opts.entries,
        started.elapsed().as_secs_f64()
    );
    let proxy = gateway.addr("connect")?;
    let request = connect_request("allowed.test:9000");
    let workers = opts.workers.iter().copied().max().unwrap_or(16);
    let writes: Rc<RefCell<Vec<f64>>> = Rc::default();
    let mut quiet = Rate {
        ops: 0,
        errors: 0,
        first_error: None,
        secs: 0.0,
        lat: Vec::new(),
        cpu: Some((0.0, 0.0)),
    };
    let mut busy = Rate {
        ops: 0,
        errors: 0,
        first_error: None,
        secs: 0.0,
        lat: Vec::new(),
        cpu: Some((0.0, 0.0)),
    };
    let mut rev = 1u64;
    let reload_cpu_before = thread_cpu_secs(gateway.pid(), "reload");
    // Alternate quiet and reloading runs twice, so drift hits both alike.
    for round in 0..4 {
        let reloading = round % 2 == 1;
        let writer = if reloading {
            let writes = writes.clone();
            let period = Duration::from_millis(opts.reload_every_ms);
            let until = Instant::now() + Duration::from_secs_f64(opts.warmup + opts.secs);
            let max = (opts.secs * 1000.0 / opts.reload_every_ms as f64) as u64 + 20;
            let first = rev;
            rev += max;
            let touch = touch.clone();
            let handle = spawn_local(async move {
                let mut ticker = tokio::time::interval(period);
                for i in 0..max {
                    ticker.tick().await;
                    if Instant::now() >= until {
                        break;
                    }
                    writes.borrow_mut().push(now_epoch());
                    let _ = std::fs::write(&touch, touch_text(first + i));
                }
            });
            Some(handle)
        } else {
            None
        };
        let run = closed_loop(opts, workers, Some(gateway.pid()), move || {
            op_connect(proxy, request)
        })
        .await;
        if let Some(handle) = writer {
            handle.abort();
        }
        let into = if reloading { &mut busy } else { &mut quiet };
        into.ops += run.ops;
        into.errors += run.errors;
        into.secs += run.secs;
        into.lat.extend(run.lat);
        if into.first_error.is_none() {
            into.first_error = run.first_error;
        }
        if let (Some(a), Some(b)) = (into.cpu, run.cpu) {
            into.cpu = Some((a.0 + b.0, a.1 + b.1));
        }
        // Let a pending reload finish before a quiet run.
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    let reload_cpu = {
        let after = thread_cpu_secs(gateway.pid(), "reload");
        (after.0 + after.1) - (reload_cpu_before.0 + reload_cpu_before.1)
    };
    quiet.lat.sort_unstable();
    busy.lat.sort_unstable();
    report.rate(
        "reload-latency",
        "gateway, no reloads",
        workers,
        &quiet,
        &quiet,
    );
    report.rate(
        "reload-latency",
        &format!(
            "gateway, config rewritten every {} ms",
            opts.reload_every_ms
        ),
        workers,
        &busy,
        &quiet,
    );
    // File change -> "config reloaded" (includes the watcher's debounce).
    let events = log_events(&gateway);
    let writes = writes.borrow().clone();
    let mut after_write: Vec<f64> = events
        .iter()
        .filter(|(_, m)| m == "config reloaded")
        .filter_map(|(ts, _)| {
            let last = writes.iter().rev().find(|w| *w <= ts)?;
            Some((ts - last) * 1e3)
        })
        .collect();
    after_write.sort_by(f64::total_cmp);
    // The reload thread's CPU over the runs, per reload they triggered.
    let reload_cpu_ms = reload_cpu * 1e3 / after_write.len().max(1) as f64;
    // SIGHUP -> "config reloaded": the reload itself (read, validate, compile, swap).
    let mut hup = Vec::new();
    for _ in 0..3 {
        let seen = log_events(&gateway)
            .iter()
            .filter(|(_, m)| m == "config reloaded")
            .count();
        Command::new("kill")
            .args(["-HUP", &gateway.pid().to_string()])
            .status()?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let events = log_events(&gateway);
            let reloaded: Vec<f64> = events
                .iter()
                .filter(|(_, m)| m == "config reloaded")
                .map(|e| e.0)
                .collect();
            if reloaded.len() > seen {
                let done = reloaded[reloaded.len() - 1];
                if let Some(sig) = events
                    .iter()
                    .filter(|(ts, m)| m.starts_with("SIGHUP") && *ts <= done)
                    .map(|e| e.0)
                    .next_back()
                {
                    hup.push((done - sig) * 1e3);
                }
                break;
            }
            if Instant::now() > deadline {
                return Err("no reload after SIGHUP within 60 s".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    hup.sort_by(f64::total_cmp);
    let p99_ratio = busy.pct_ms(0.99) / quiet.pct_ms(0.99);
    let med = |v: &[f64]| v.get(v.len() / 2).copied().unwrap_or(f64::NAN);
    let met = if p99_ratio <= 1.10 { "met" } else { "not met" };
    println!(
        "RESULT scenario=reload-latency entries={} workers={workers} p99_quiet_ms={:.3} p99_reloading_ms={:.3} p99_ratio={p99_ratio:.2} {met} p50_ratio={:.2} writes={} reloads={} write_to_reloaded_ms_median={:.1} write_to_reloaded_ms_max={:.1} sighup_reload_ms_median={:.1} reload_cpu_ms={reload_cpu_ms:.1}",
        opts.entries,
        quiet.pct_ms(0.99),
        busy.pct_ms(0.99),
        busy.pct_ms(0.5) / quiet.pct_ms(0.5),
        writes.len(),
        after_write.len(),
        med(&after_write),
        after_write.last().copied().unwrap_or(f64::NAN),
        med(&hup),
    );
    report.row(
        "reload-latency summary (target: p99 within 10 %)",
        "| entries | p99 quiet ms | p99 reloading ms | ratio | met | file writes | reloads | write → reloaded ms (median / max) | SIGHUP → reloaded ms (median) | reload CPU ms per reload |\n|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
        format!(
            "| {} | {:.3} | {:.3} | {p99_ratio:.2}x | {met} | {} | {} | {:.1} / {:.1} | {:.1} | {reload_cpu_ms:.1} |",
            opts.entries,
            quiet.pct_ms(0.99),
            busy.pct_ms(0.99),
            writes.len(),
            after_write.len(),
            med(&after_write),
            after_write.last().copied().unwrap_or(f64::NAN),
            med(&hup)
        ),
    );
    Ok(())
}
