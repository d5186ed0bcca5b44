//! `runtime.busy_poll` against the real binary: with it on, tunnels work as before, a worker
//! spins after traffic (it uses CPU while nothing arrives) and goes back to sleep once the window
//! has passed, so an idle gateway does not burn a core. Latency figures are in benches/README.md.

mod common;

use std::time::Duration;

use common::*;

const WINDOW: Duration = Duration::from_millis(300);

#[tokio::test(flavor = "multi_thread")]
async fn a_busy_polling_worker_spins_after_traffic_and_sleeps_once_it_stops() {
    let echo = echo_server().await;
    let config = ConfigDir::new(&gateway_yaml(
        "runtime: {worker_threads: 1, busy_poll: 300ms}\n",
    ));
    config.entry(
        "app1/echo.yaml",
        &static_entry("echo", "echo.test", 7000, "TCP", echo),
    );
    let gw = Gateway::start(&config);

    let before = gw.cpu_time();
    let mut tunnel = open_tunnel(APP1, gw.addr("connect"), "echo.test:7000").await;
    echo_roundtrip(&mut tunnel, b"spin after me")
        .await
        .expect("a tunnel works with busy polling on");
    drop(tunnel);
    // The window after the last wake-up, plus margin: the worker spun through it.
    tokio::time::sleep(WINDOW * 3).await;
    let spun = gw.cpu_time() - before;
    assert!(
        spun >= WINDOW / 10,
        "the worker should spin for the {WINDOW:?} window after traffic; it used {spun:?} of CPU"
    );

    // No traffic now: the worker sleeps, so a second passes at next to no CPU.
    let quiet_start = gw.cpu_time();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = gw.cpu_time() - quiet_start;
    assert!(
        idle <= Duration::from_millis(100),
        "an idle busy-polling gateway must sleep; it used {idle:?} of CPU in a quiet second"
    );
}
