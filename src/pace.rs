//! Long configuration work that, for a while, gives the CPU back to connections every fraction of
//! a millisecond.
//!
//! Reloads run on a nice-19 thread, which keeps their share of a busy core small, but not their
//! turns short: once the scheduler has picked a task it lets it run out its slice (a few ms)
//! before a worker woken by new connections gets the core back. On a gateway pinned to one core
//! that wait landed in concurrent connections' p99. Yielding between small units of work (the
//! loops over files, entries and namespaces) bounds most of it to [`TURN`]; freeing what the
//! previous snapshot alone held is not paced.
//!
//! Only for a while: each yield also gives up the rest of the thread's slice, so on a host where
//! busy threads always want the core a reload that kept yielding took 5–20 s instead of ~2 s.
//! A thread asks for yielding with [`yield_for`]; once that patience has run out its pacers stop
//! yielding and the work finishes at plain nice 19, so an allowlist change still lands. Threads
//! that never ask (`check`, start-up) never yield.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// Longest stretch of work between two yields.
pub const TURN: Duration = Duration::from_micros(100);

thread_local! {
    /// Until when pacers on this thread yield.
    static YIELD_UNTIL: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Makes pacers on the calling thread yield at every turn for the next `patience`.
pub fn yield_for(patience: Duration) {
    YIELD_UNTIL.set(Some(Instant::now() + patience));
}

/// Tracks how long the current stretch of work has run.
#[derive(Debug)]
pub struct Pacer {
    turn_started: Instant,
}

impl Default for Pacer {
    fn default() -> Self {
        Self {
            turn_started: Instant::now(),
        }
    }
}

impl Pacer {
    /// Called between units of work: once the current stretch has lasted [`TURN`], yields the
    /// CPU if this thread's [`yield_for`] patience lasts.
    pub fn step(&mut self) {
        let now = Instant::now();
        if now.duration_since(self.turn_started) < TURN {
            return;
        }
        self.turn_started = now;
        if YIELD_UNTIL.get().is_some_and(|until| now < until) {
            std::thread::yield_now();
        }
    }
}
