//! `/proc` probes of a running [`Gateway`]: open descriptors, threads and their scheduling, CPU
//! time, and whether its config watcher (inotify) is up yet.

use std::path::Path;
use std::time::{Duration, Instant};

use super::{Gateway, WAIT};

/// `SCHED_OTHER` from `<sched.h>`, as `/proc/PID/task/*/stat` reports it.
pub const SCHED_OTHER: i64 = 0;

impl Gateway {
    /// The scheduling policy and nice value of the gateway's thread named `name`, from
    /// `/proc/PID/task/*/stat`.
    pub fn thread_scheduling(&self, name: &str) -> Option<(i64, i64)> {
        std::fs::read_dir(format!("/proc/{}/task", self.pid()))
            .expect("the gateway's threads")
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("stat")).ok())
            .find_map(|stat| {
                // "tid (comm) state ..."; fields after the comm start with field 3 (state), so
                // nice (field 19) is index 16 and policy (field 41) is index 38.
                let (head, rest) = stat.rsplit_once(") ")?;
                let comm = head.split_once(" (")?.1;
                let fields: Vec<&str> = rest.split_whitespace().collect();
                let field = |index: usize| fields.get(index)?.parse().ok();
                (comm == name).then(|| Some((field(38)?, field(16)?)))?
            })
    }

    /// Open file descriptors of the gateway process.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("/proc/<pid>/fd")
            .count()
    }

    /// Threads of the gateway process (`Threads:` in `/proc/<pid>/status`).
    pub fn threads(&self) -> usize {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("/proc/<pid>/status")
            .lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("Threads")
    }

    /// CPU time the gateway process has used so far, user plus system (`/proc/<pid>/stat`
    /// fields 14 and 15, in clock ticks of 10 ms).
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .expect("/proc/<pid>/stat");
        // Fields after "(comm) " start with field 3 (state): utime is index 11, stime index 12.
        let (_, rest) = stat.rsplit_once(") ").expect("stat format");
        let fields: Vec<u64> = rest
            .split_whitespace()
            .skip(11)
            .take(2)
            .map(|f| f.parse().expect("a tick count"))
            .collect();
        Duration::from_millis(10 * fields.iter().sum::<u64>())
    }

    /// Waits (bounded by [`WAIT`]) until the gateway's config watcher is up: its inotify
    /// descriptor exists and holds a watch for every folder below the config directory (the
    /// process logs `gateway ready` before it starts the watcher, so a test that changes files
    /// right after start must wait for this).
    pub fn wait_watching(&self) {
        let folders = count_folders(&self.config);
        let deadline = Instant::now() + WAIT;
        loop {
            let watches = self.inotify_watches();
            if watches >= folders {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the config watcher never came up ({watches} of {folders} folders watched)"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Watches held by the process's inotify descriptors (`inotify wd:` lines in fdinfo).
    fn inotify_watches(&self) -> usize {
        let pid = self.pid();
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            return 0;
        };
        fds.flatten()
            .filter(|fd| {
                std::fs::read_link(fd.path()).is_ok_and(|t| t.to_string_lossy().contains("inotify"))
            })
            .filter_map(|fd| {
                std::fs::read_to_string(format!(
                    "/proc/{pid}/fdinfo/{}",
                    fd.file_name().to_string_lossy()
                ))
                .ok()
            })
            .map(|info| {
                info.lines()
                    .filter(|l| l.starts_with("inotify wd:"))
                    .count()
            })
            .sum()
    }
}

/// Distinct folders (by inode, following symlinks) at and below `root`.
fn count_folders(root: &Path) -> usize {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(meta) = std::fs::metadata(&dir) else {
            continue;
        };
        if !meta.is_dir() || !seen.insert((meta.dev(), meta.ino())) || seen.len() > 10_000 {
            continue;
        }
        if let Ok(listing) = std::fs::read_dir(&dir) {
            stack.extend(listing.flatten().map(|e| e.path()));
        }
    }
    seen.len()
}
