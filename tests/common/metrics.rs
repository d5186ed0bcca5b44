//! Prometheus metrics as tests read them: finding a series in `/metrics` text, polling a
//! [`Gateway`] until a series reaches a value, and the connection and reload counters.

use std::time::{Duration, Instant};

use super::{Gateway, WAIT};

/// Finds a series value in Prometheus text.
pub fn metric_value(body: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

impl Gateway {
    /// Polls `/metrics` (bounded by [`WAIT`]) until the series `name{labels}` satisfies `ok`;
    /// returns its value. Panics with the last value seen on timeout.
    pub fn wait_metric(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        ok: impl Fn(f64) -> bool,
    ) -> f64 {
        self.wait_metric_within(name, labels, WAIT, ok)
    }

    /// [`Gateway::wait_metric`] with an explicit bound.
    pub fn wait_metric_within(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        within: Duration,
        ok: impl Fn(f64) -> bool,
    ) -> f64 {
        let deadline = Instant::now() + within;
        loop {
            let value = self.metric(name, labels);
            if let Some(v) = value.filter(|v| ok(*v)) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {name}{labels:?}; last value {value:?}"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The counter `egress_connections_total` for one namespace/decision/reason on `connect`.
    pub fn connections(&self, namespace: &str, decision: &str, reason: &str) -> Option<f64> {
        self.metric(
            "egress_connections_total",
            &[
                ("namespace", namespace),
                ("listener", "connect"),
                ("decision", decision),
                ("reason", reason),
            ],
        )
    }

    /// The counter `egress_connections_total` for one listener/namespace/decision/reason.
    pub fn connections_on(
        &self,
        listener: &str,
        namespace: &str,
        decision: &str,
        reason: &str,
    ) -> Option<f64> {
        self.metric(
            "egress_connections_total",
            &[
                ("namespace", namespace),
                ("listener", listener),
                ("decision", decision),
                ("reason", reason),
            ],
        )
    }

    /// Waits (bounded by [`WAIT`]) until `egress_connections_total` for one listener, namespace,
    /// decision and reason is exactly `n`: a connection is counted when its handler finishes,
    /// which can be just after the client saw the answer.
    pub fn wait_connections_on(
        &self,
        listener: &str,
        namespace: &str,
        decision: &str,
        reason: &str,
        n: u64,
    ) {
        let labels = [
            ("namespace", namespace),
            ("listener", listener),
            ("decision", decision),
            ("reason", reason),
        ];
        self.wait_metric("egress_connections_total", &labels, |v| v == n as f64);
    }

    /// `egress_config_generation` now.
    pub fn generation(&self) -> f64 {
        self.metric("egress_config_generation", &[])
            .expect("egress_config_generation")
    }

    /// `egress_config_reloads_total{result}` now (0 before the first such reload).
    pub fn reloads(&self, result: &str) -> f64 {
        self.metric("egress_config_reloads_total", &[("result", result)])
            .unwrap_or(0.0)
    }

    /// Successful plus failed reloads, once the count has not moved for one second (bounded by
    /// [`WAIT`]).
    pub fn settled_reloads(&self) -> f64 {
        let deadline = Instant::now() + WAIT;
        let total = || self.reloads("success") + self.reloads("failure");
        let mut last = total();
        let mut since = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let now = total();
            if now != last {
                last = now;
                since = Instant::now();
            } else if since.elapsed() >= Duration::from_secs(1) {
                return last;
            }
            assert!(Instant::now() < deadline, "reloads never settled");
        }
    }

    /// Sends SIGHUP and waits until `egress_config_generation` is at least `generation`.
    pub fn reload_to(&self, generation: u64) {
        self.signal("HUP");
        self.wait_metric("egress_config_generation", &[], |g| g >= generation as f64);
    }
}
