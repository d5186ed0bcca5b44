//! Watching the config directory (and TLS files) and turning bursts of file events into one
//! reload: editors' write-then-rename, deletes, new folders and the kubelet's `..data` symlink
//! swap all arrive as events here.
//!
//! Debounced: a reload runs once events have been quiet for `QUIET`, and at the latest `MAX_WAIT`
//! after the first event of a burst, so a stream of writes cannot postpone it forever. What a
//! reload does is the caller's business; [`ReloadThread`] is where it runs.

mod reloader;
mod thread;

pub(crate) use reloader::ReloadState;
pub use reloader::{publish, Cause, Reloader};
pub use thread::{Jobs, ReloadThread};

use std::path::PathBuf;
use std::time::Duration;

use notify::{Event, EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Quiet period that ends a burst.
const QUIET: Duration = Duration::from_millis(150);
/// Longest a burst may delay its reload.
const MAX_WAIT: Duration = Duration::from_millis(600);

/// A running watcher; dropping it stops the watching.
pub struct ConfigWatcher {
    _watcher: notify::RecommendedWatcher,
}

/// Watches `recursive` folders (and their sub-folders) and the parent folders of `files`, calling
/// `reload` after each burst of changes, until the returned watcher is dropped.
pub fn watch(
    recursive: Vec<PathBuf>,
    files: Vec<PathBuf>,
    reload: impl Fn() + Send + 'static,
) -> notify::Result<ConfigWatcher> {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<Event>| {
        if let Ok(event) = event {
            // Our own reads show up as access events; only changes matter.
            if !matches!(event.kind, EventKind::Access(_)) {
                let _ = tx.send(());
            }
        }
    })?;
    for dir in &recursive {
        watcher.watch(dir, RecursiveMode::Recursive)?;
    }
    for file in &files {
        let parent = file.parent().map(PathBuf::from).unwrap_or_default();
        if !recursive.iter().any(|dir| parent.starts_with(dir)) {
            watcher.watch(&parent, RecursiveMode::NonRecursive)?;
        }
    }
    tokio::spawn(debounce(rx, reload));
    Ok(ConfigWatcher { _watcher: watcher })
}

async fn debounce(mut events: mpsc::UnboundedReceiver<()>, reload: impl Fn()) {
    while events.recv().await.is_some() {
        let deadline = Instant::now() + MAX_WAIT;
        loop {
            let quiet_until = (Instant::now() + QUIET).min(deadline);
            tokio::select! {
                more = events.recv() => if more.is_none() { return },
                _ = tokio::time::sleep_until(quiet_until) => break,
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        while events.try_recv().is_ok() {}
        reload();
    }
}
