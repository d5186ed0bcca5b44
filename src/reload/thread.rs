//! The thread reloads run on: one at a time, at the lowest CPU priority the system grants.
//!
//! Reading, checking and compiling ten thousand entries takes tens of milliseconds of CPU. On the
//! runtime's workers (or an ordinary blocking thread beside them) that time is taken from
//! connections; at nice 19 the scheduler hands it back to them as soon as they have work, so a
//! reload under load finishes later instead of making connections wait. The same thread frees
//! snapshots a reload replaced, once their last tunnel has closed.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use thread_priority::{set_current_thread_priority, ThreadPriority};
use tokio::sync::oneshot;

/// How long the thread waits for a request before running its idle work.
const IDLE_WORK_EVERY: Duration = Duration::from_secs(1);

/// A reload request; `done` hears whether the reload succeeded.
struct Request {
    done: Option<oneshot::Sender<bool>>,
}

/// A handle on the reload thread; the thread ends when every handle is gone.
#[derive(Clone)]
pub struct ReloadThread {
    requests: mpsc::Sender<Request>,
}

impl ReloadThread {
    /// Starts the thread: `reload` runs for each batch of requests that arrived together,
    /// `idle_work` about every second when none arrive.
    pub fn spawn(
        reload: impl Fn() -> bool + Send + 'static,
        idle_work: impl Fn() + Send + 'static,
    ) -> std::io::Result<Self> {
        let (requests, incoming) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("reload".into())
            .spawn(move || {
                if let Err(err) = set_current_thread_priority(ThreadPriority::Min) {
                    tracing::warn!(error = ?err, "reload thread keeps the default CPU priority");
                }
                loop {
                    let first = match incoming.recv_timeout(IDLE_WORK_EVERY) {
                        Ok(request) => request,
                        Err(RecvTimeoutError::Timeout) => {
                            idle_work();
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => return,
                    };
                    // Requests that queued up during the last reload are served by one reload.
                    let batch: Vec<Request> =
                        std::iter::once(first).chain(incoming.try_iter()).collect();
                    let ok = reload();
                    for done in batch.into_iter().filter_map(|r| r.done) {
                        let _ = done.send(ok);
                    }
                    idle_work();
                }
            })?;
        Ok(Self { requests })
    }

    /// Asks for a reload without waiting for it.
    pub fn request(&self) {
        let _ = self.requests.send(Request { done: None });
    }

    /// Asks for a reload and waits for it; `false` when it failed (or the thread is gone).
    pub async fn reload(&self) -> bool {
        let (done, outcome) = oneshot::channel();
        if self.requests.send(Request { done: Some(done) }).is_err() {
            return false;
        }
        outcome.await.unwrap_or(false)
    }
}
