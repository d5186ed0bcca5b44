//! The thread reloads run on: one at a time, at the lowest CPU priority the system grants.
//!
//! Reading, checking and compiling ten thousand entries takes tens of milliseconds of CPU. On the
//! runtime's workers (or an ordinary blocking thread beside them) that time is taken from
//! connections; under `SCHED_IDLE` the scheduler runs the reload only when no worker wants the
//! core, so a reload under load finishes later instead of making connections wait. The same thread frees
//! snapshots a reload replaced, once their last tunnel has closed.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use thread_priority::{
    set_current_thread_priority, set_thread_priority_and_policy, thread_native_id,
    NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
};

/// How long the thread waits for a request before running its idle work.
const IDLE_WORK_EVERY: Duration = Duration::from_secs(1);

/// A handle on the reload thread; the thread ends when every handle is gone.
#[derive(Clone)]
pub struct ReloadThread {
    requests: mpsc::Sender<()>,
}

impl ReloadThread {
    /// Starts the thread: `reload` runs for each batch of requests that arrived together,
    /// `idle_work` about every second when none arrive.
    pub fn spawn(
        reload: impl Fn() + Send + 'static,
        idle_work: impl Fn() + Send + 'static,
    ) -> std::io::Result<Self> {
        let (requests, incoming) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("reload".into())
            .spawn(move || {
                lowest_priority();
                loop {
                    match incoming.recv_timeout(IDLE_WORK_EVERY) {
                        Ok(()) => {
                            // Requests that queued up during the last reload share this one.
                            incoming.try_iter().for_each(drop);
                            reload();
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                    idle_work();
                }
            })?;
        Ok(Self { requests })
    }

    /// Asks for a reload without waiting for it; the outcome is logged and counted by the
    /// reload itself, and the caller (a signal handler, the watcher) stays free meanwhile.
    pub fn request(&self) {
        let _ = self.requests.send(());
    }
}

/// Puts the calling thread under `SCHED_IDLE`, which runs it only on a core nothing else wants
/// and lets any woken worker preempt it at once; where that is refused, nice 19.
fn lowest_priority() {
    let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
    if set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle).is_ok() {
        return;
    }
    if let Err(err) = set_current_thread_priority(ThreadPriority::Min) {
        tracing::warn!(error = ?err, "reload thread keeps the default CPU priority");
    }
}
