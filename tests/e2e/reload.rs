//! Hot reload: editing a tenant's ServiceEntry file changes its pod's outcome, no restart.

use std::time::{Duration, Instant};

use crate::checks::Checks;
use crate::config::app2_entries;
use crate::curl::curl;
use crate::harness::Gateway;
use crate::APP2_A;

/// Editing app2's ServiceEntry file flips its pod's curl from denied to allowed, no restart.
pub fn hot_reload(c: &mut Checks, gw: &Gateway, ca: &str) {
    let r = curl(APP2_A, &[], &["--cacert", ca, "https://api.example.test/"]);
    c.check(r.alert_access_denied(), || {
        format!("hot reload: before the edit app2 -> api must be denied: {r}")
    });
    let path = gw.config_dir().join("serviceentries/app2/egress.yaml");
    std::fs::write(&path, app2_entries(true)).expect("edit app2's entry");
    let edited = Instant::now();
    let mut last;
    loop {
        last = curl(APP2_A, &[], &["--cacert", ca, "https://api.example.test/"]);
        if last.exit == 0 || edited.elapsed() > Duration::from_secs(3) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = edited.elapsed();
    c.check(last.exit == 0 && last.status == 200, || {
        format!("hot reload: app2 -> api still denied {took:?} after the edit: {last}")
    });
    c.check(took <= Duration::from_secs(1), || {
        format!("hot reload: app2 -> api allowed only {took:?} after the edit (want <= 1s)")
    });
    eprintln!("e2e: hot reload flipped app2 -> api to allowed in {took:?}");
    let line = gw.access_after(0, |v| {
        v["namespace"] == "app2" && v["host"] == "api.example.test" && v["decision"] == "allow"
    });
    c.check(
        line.as_ref()
            .is_some_and(|l| l["service_entry"] == "app2/api" && l["listener"] == "sni"),
        || format!("hot reload: access log of the allowed connection: {line:?}"),
    );
}
