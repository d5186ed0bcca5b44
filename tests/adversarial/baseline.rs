//! What "nothing leaked" means for every attack: the gateway's open file descriptors
//! (`/proc/<pid>/fd`) and the sum of `egress_active_connections` return to what they were before
//! the attack, polled with a bounded deadline. Idle upstream connections the pool keeps on
//! purpose (`egress_upstream_pool_idle_connections`, one descriptor each) are not leaks.

use std::time::{Duration, Instant};

use crate::common::{Gateway, WAIT};

/// Descriptors and active connections of a gateway at rest.
#[derive(Debug, Clone, Copy)]
pub struct Baseline {
    fds: usize,
    active: f64,
}

/// The sum of every `egress_active_connections` series.
pub fn active_connections(gw: &Gateway) -> f64 {
    metric_sum(gw, "egress_active_connections")
}

fn metric_sum(gw: &Gateway, name: &str) -> f64 {
    let (_, body) = gw.admin_get("/metrics");
    body.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

impl Baseline {
    /// Takes the baseline once the gateway is quiet: descriptors and the gauge have not moved
    /// for 200 ms (bounded by [`WAIT`]).
    pub fn take(gw: &Gateway) -> Self {
        let deadline = Instant::now() + WAIT;
        let mut last = Self::now(gw);
        loop {
            std::thread::sleep(Duration::from_millis(200));
            let now = Self::now(gw);
            if now.fds == last.fds && now.active == last.active {
                return now;
            }
            assert!(Instant::now() < deadline, "the gateway never settled");
            last = now;
        }
    }

    fn now(gw: &Gateway) -> Self {
        // Whole idle connections only: the gauge counts descriptors the pool holds on purpose.
        let pooled = metric_sum(gw, "egress_upstream_pool_idle_connections") as usize;
        Self {
            fds: gw.open_fds().saturating_sub(pooled),
            active: active_connections(gw),
        }
    }

    /// Waits (bounded by [`WAIT`]) until descriptors and active connections are back at or
    /// below the baseline; `what` names the attack in the failure message.
    pub fn settle(&self, gw: &Gateway, what: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let now = Self::now(gw);
            if now.fds <= self.fds && now.active <= self.active {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: leaked: {} fds (baseline {}), {} active connections (baseline {})",
                now.fds,
                self.fds,
                now.active,
                self.active
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
