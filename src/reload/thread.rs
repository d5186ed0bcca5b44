//! The thread reloads run on: one at a time, at the lowest CPU priority the system grants.
//!
//! Reading, checking and compiling ten thousand entries takes tens of milliseconds of CPU (about
//! ten when only some files changed, see `snapshot::reuse`). On the
//! runtime's workers (or an ordinary blocking thread beside them) that time is taken from
//! connections; at nice 19 the scheduler gives it only a small share of a core they keep busy, so
//! a reload under load finishes later instead of making connections wait. The same thread frees
//! snapshots a reload replaced, once their last tunnel has closed.
//!
//! Nice 19 keeps a reload's share of a busy core small, not its turns short: for its first
//! [`YIELDING`] a reload also yields between small steps (see [`crate::pace`]).
//!
//! The same thread compiles again when an entry's `egress-gateway.io/expires` comes (see
//! [`Jobs::expire`]): that reads no file, so it is no reload, and it never runs beside one.
//!
//! Not `SCHED_IDLE`: it moved concurrent p99 less during reloads (1.00× against 1.20×), but it
//! runs only on CPU nobody else wants, so on a saturated host a reload waited for a lull — three
//! busy loops on two cores made `tests/reload.rs` miss its one-second pickup. Nice 19 still gets a
//! small, guaranteed share, and an allowlist change must land while the gateway is busy.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use thread_priority::{set_current_thread_priority, ThreadPriority};

use crate::pace;

/// How long the thread waits for a request before running its idle work; also the longest it
/// sleeps before looking at the wall clock again, so a clock stepped past an expiry is noticed
/// within this.
const IDLE_WORK_EVERY: Duration = Duration::from_secs(1);

/// How long a reload yields to connections between small steps before it just finishes (see
/// [`crate::pace`]).
const YIELDING: Duration = Duration::from_millis(250);

/// What the reload thread runs, one at a time.
pub trait Jobs: Send + Sync + 'static {
    /// Re-reads the config files and publishes what they compile to.
    fn reload(&self);
    /// When the serving snapshot's next entry expires, if any.
    fn next_expiry(&self) -> Option<SystemTime>;
    /// Compiles the config last read again, without reading a file, once the entry expiring
    /// at `due` expired.
    fn expire(&self, due: SystemTime);
    /// Housekeeping, about every second.
    fn idle(&self);
}

/// A handle on the reload thread; the thread ends when every handle is gone.
#[derive(Clone)]
pub struct ReloadThread {
    requests: mpsc::Sender<()>,
}

impl ReloadThread {
    /// Starts the thread: `jobs.reload` runs for each batch of requests that arrived together,
    /// `jobs.expire` once the wall clock reaches `jobs.next_expiry`, `jobs.idle` about every
    /// second. Returns once the thread runs at its priority, so a gateway that reports ready has
    /// its reload thread in place.
    pub fn spawn(jobs: Arc<impl Jobs>) -> std::io::Result<Self> {
        let (requests, incoming) = mpsc::channel::<()>();
        let (started, running) = mpsc::sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("reload".into())
            .spawn(move || {
                if let Err(err) = set_current_thread_priority(ThreadPriority::Min) {
                    tracing::warn!(error = ?err, "reload thread keeps the default CPU priority");
                }
                let _ = started.send(());
                let mut expiries = ExpiryTimer::default();
                loop {
                    match incoming.recv_timeout(expiries.wait(jobs.next_expiry())) {
                        Ok(()) => {
                            // Requests that queued up during the last reload share this one.
                            incoming.try_iter().for_each(drop);
                            pace::yield_for(YIELDING);
                            jobs.reload();
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                    if let Some(due) = expiries.due(jobs.next_expiry(), SystemTime::now()) {
                        jobs.expire(due);
                    }
                    jobs.idle();
                }
            })?;
        let _ = running.recv();
        Ok(Self { requests })
    }

    /// Asks for a reload without waiting for it; the outcome is logged and counted by the
    /// reload itself, and the caller (a signal handler, the watcher) stays free meanwhile.
    pub fn request(&self) {
        let _ = self.requests.send(());
    }
}

/// When to wake for the next expiry. The wait is measured on the monotonic clock but the
/// expiry is judged on the wall clock at every wake, so an early wake (or a clock set back)
/// only waits again, and a clock stepped forward is noticed within [`IDLE_WORK_EVERY`].
#[derive(Debug, Default)]
struct ExpiryTimer {
    /// The expiry last acted on: if acting on it published nothing newer, it is not retried in
    /// a loop, only with the next file reload.
    attempted: Option<SystemTime>,
}

impl ExpiryTimer {
    /// How long to wait for a request before looking at the clock again.
    fn wait(&self, next: Option<SystemTime>) -> Duration {
        match next.filter(|at| Some(*at) != self.attempted) {
            Some(at) => at
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO)
                .min(IDLE_WORK_EVERY),
            None => IDLE_WORK_EVERY,
        }
    }

    /// The expiry `next`, when it has come at `now` and was not acted on yet (and notes that
    /// it is).
    fn due(&mut self, next: Option<SystemTime>, now: SystemTime) -> Option<SystemTime> {
        match next {
            Some(at) if at <= now && self.attempted != Some(at) => {
                self.attempted = Some(at);
                Some(at)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expiry_is_due_at_its_instant_on_the_wall_clock_and_once() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        let mut timer = ExpiryTimer::default();
        assert_eq!(
            timer.due(Some(at), at - Duration::from_millis(1)),
            None,
            "early wake"
        );
        assert_eq!(timer.due(None, at), None);
        assert_eq!(timer.due(Some(at), at), Some(at));
        assert_eq!(
            timer.due(Some(at), at),
            None,
            "a failed recompile is not retried in a loop"
        );
        assert_eq!(timer.wait(Some(at)), IDLE_WORK_EVERY);
        let later = at + Duration::from_secs(60);
        assert_eq!(
            timer.due(Some(later), later + Duration::from_secs(1)),
            Some(later)
        );
    }

    #[test]
    fn the_wait_never_exceeds_a_second_so_a_stepped_clock_is_noticed() {
        let timer = ExpiryTimer::default();
        let far = SystemTime::now() + Duration::from_secs(3600);
        assert_eq!(timer.wait(Some(far)), IDLE_WORK_EVERY);
        assert_eq!(timer.wait(Some(SystemTime::UNIX_EPOCH)), Duration::ZERO);
        assert_eq!(timer.wait(None), IDLE_WORK_EVERY);
    }
}
