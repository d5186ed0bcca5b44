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
//! Not `SCHED_IDLE`: it moved concurrent p99 less during reloads (1.00× against 1.20×), but it
//! runs only on CPU nobody else wants, so on a saturated host a reload waited for a lull — three
//! busy loops on two cores made `tests/reload.rs` miss its one-second pickup. Nice 19 still gets a
//! small, guaranteed share, and an allowlist change must land while the gateway is busy.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use thread_priority::{set_current_thread_priority, ThreadPriority};

use crate::pace;

/// How long the thread waits for a request before running its idle work.
const IDLE_WORK_EVERY: Duration = Duration::from_secs(1);

/// How long a reload yields to connections between small steps before it just finishes (see
/// [`crate::pace`]).
const YIELDING: Duration = Duration::from_millis(250);

/// A handle on the reload thread; the thread ends when every handle is gone.
#[derive(Clone)]
pub struct ReloadThread {
    requests: mpsc::Sender<()>,
}

impl ReloadThread {
    /// Starts the thread: `reload` runs for each batch of requests that arrived together,
    /// `idle_work` about every second when none arrive. Returns once the thread runs at its
    /// priority, so a gateway that reports ready has its reload thread in place.
    pub fn spawn(
        reload: impl Fn() + Send + 'static,
        idle_work: impl Fn() + Send + 'static,
    ) -> std::io::Result<Self> {
        let (requests, incoming) = mpsc::channel::<()>();
        let (started, running) = mpsc::sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("reload".into())
            .spawn(move || {
                if let Err(err) = set_current_thread_priority(ThreadPriority::Min) {
                    tracing::warn!(error = ?err, "reload thread keeps the default CPU priority");
                }
                let _ = started.send(());
                loop {
                    match incoming.recv_timeout(IDLE_WORK_EVERY) {
                        Ok(()) => {
                            // Requests that queued up during the last reload share this one.
                            incoming.try_iter().for_each(drop);
                            pace::yield_for(YIELDING);
                            reload();
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                    idle_work();
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
