//! Expiring ServiceEntries for tests: an entry with `egress-gateway.io/*` annotations, an expiry
//! instant a few whole seconds ahead, and that instant as RFC 3339.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `entry` (a document whose metadata is `metadata: {name: NAME}`, as `static_entry` and
/// `entry_yaml` write it) with `annotations` added; each value is written as given, so the caller
/// quotes it the way the test needs.
pub fn annotated(entry: &str, name: &str, annotations: &[(&str, &str)]) -> String {
    let flow = format!("metadata: {{name: {name}}}\n");
    assert!(entry.contains(&flow), "entry has no `{flow}`");
    let mut block = format!("metadata:\n  name: {name}\n  annotations:\n");
    for (key, value) in annotations {
        block.push_str(&format!("    {key}: {value}\n"));
    }
    entry.replace(&flow, &block)
}

/// A whole second at least `ahead` from now: RFC 3339 without fractions names it exactly.
pub fn whole_second_after(ahead: Duration) -> SystemTime {
    let target = SystemTime::now() + ahead;
    let secs = target
        .duration_since(UNIX_EPOCH)
        .expect("after the epoch")
        .as_secs();
    UNIX_EPOCH + Duration::from_secs(secs + 1)
}

/// `at` as RFC 3339 UTC with whole seconds, the way an operator writes an expiry.
pub fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

/// Unix seconds of `at`.
pub fn unix_seconds(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .expect("after the epoch")
        .as_secs() as f64
}
