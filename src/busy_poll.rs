//! Opt-in busy polling (`runtime.busy_poll`): after a worker wakes for an event it keeps polling
//! for new ones for a short window instead of going back to sleep at once.
//!
//! On a virtual machine most of a short tunnel's latency is wake-ups: each event finds the worker
//! asleep in `epoll_wait`, and the hypervisor has to wake the core first. A worker still polling
//! when the next event comes picks it up at once. The price is CPU, and it is paid per wake-up,
//! not per byte: any event restarts the window, including the 5-second progress timer of every
//! open tunnel, so a gateway holding many quiet tunnels rarely sleeps; and a spinner resumed by
//! one worker's wake-up is scheduled through the shared queue, which wakes the other workers too,
//! so with several workers one event spins them all. Only a gateway with no traffic and no open
//! tunnels sleeps. HAProxy's `busy-polling` makes the same trade without a window.
//!
//! The spinning is done by one task per worker that yields in a loop: a worker with a yielded task
//! polls its event driver with a zero timeout instead of sleeping. When the window ends, the task
//! waits until the worker it ran on next wakes from sleep (`on_thread_unpark`).

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Builder;
use tokio::sync::Notify;
use tokio::time::Instant;

thread_local! {
    /// Spinners waiting for this worker thread's next wake-up.
    static WAITING_SPINNERS: RefCell<Vec<Arc<Notify>>> = const { RefCell::new(Vec::new()) };
}

/// Lets spinners resume when their worker wakes; call on the builder before building.
pub fn install_wake_hook(builder: &mut Builder) {
    builder.on_thread_unpark(|| {
        WAITING_SPINNERS.with(|waiting| {
            for spinner in waiting.borrow_mut().drain(..) {
                spinner.notify_one();
            }
        });
    });
}

/// Starts one spinner per runtime worker; each keeps its worker polling for `window` after every
/// wake-up. Call from inside the runtime built with [`install_wake_hook`].
pub fn start(window: Duration) {
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    for _ in 0..workers {
        tokio::spawn(spin(window));
    }
}

async fn spin(window: Duration) {
    let woken = Arc::new(Notify::new());
    loop {
        let until = Instant::now() + window;
        while Instant::now() < until {
            tokio::task::yield_now().await;
        }
        // Registered on the thread that polls this task now, i.e. the worker it would keep awake.
        WAITING_SPINNERS.with(|waiting| waiting.borrow_mut().push(woken.clone()));
        woken.notified().await;
    }
}
