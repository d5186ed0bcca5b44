//! `docs/metrics.md`, `docs/access-log.md` and `docs/deny-reasons.md` against the metrics catalog,
//! the access-log line and the deny-reason enum, each read from the code and from a running
//! gateway.

use std::collections::{BTreeMap, BTreeSet};

use egress_gateway::plan::{Alert, DenyReason};
use serde_json::Value;

use super::common::*;
use super::markdown::{code_headings, keyed_rows};
use super::{assert_same, doc, repo};

/// Metric names from the catalog's `pub const`s, the one place that spells them.
fn catalog_metric_names() -> BTreeSet<String> {
    let source = std::fs::read_to_string(repo().join("src/account/metrics.rs")).expect("read");
    source
        .lines()
        .filter(|line| line.starts_with("pub const ") && line.contains(": &str = \"egress_"))
        .filter_map(|line| line.split('"').nth(1).map(str::to_owned))
        .collect()
}

/// Field names of the access-log line struct, as its source declares them.
fn access_log_struct_fields() -> BTreeSet<String> {
    let source = std::fs::read_to_string(repo().join("src/account/access_log.rs")).expect("read");
    let body = source
        .split("pub struct AccessLogLine")
        .nth(1)
        .and_then(|rest| rest.split("\n}\n").next())
        .expect("AccessLogLine struct");
    body.lines()
        .filter_map(|line| line.trim().strip_prefix("pub "))
        .filter_map(|line| line.split(':').next().map(str::to_owned))
        .collect()
}

/// What a running gateway shows after one allowed tunnel (through an entry with an expiry, owner
/// and ticket) and one denied CONNECT: the metric families on `/metrics` with their label names,
/// and the keys of its access-log lines.
struct Observed {
    metric_labels: BTreeMap<String, BTreeSet<String>>,
    log_fields: BTreeSet<String>,
}

async fn observe_running_gateway() -> Observed {
    let echo = echo_server().await;
    let config = ConfigDir::new(&gateway_yaml(""));
    let expires = rfc3339(whole_second_after(std::time::Duration::from_secs(86_400)));
    let entry = static_entry("a", "a.test", 9000, "TCP", echo);
    let owned = [
        ("egress-gateway.io/expires", expires.as_str()),
        ("egress-gateway.io/owner", "team-a"),
        ("egress-gateway.io/ticket", "CHG-1"),
    ];
    config.entry("app1/a.yaml", &annotated(&entry, "a", &owned));
    let gateway = Gateway::start(&config);
    let proxy = gateway.addr("connect");
    let mut tunnel = open_tunnel(APP1, proxy, "a.test:9000").await;
    echo_roundtrip(&mut tunnel, b"hello").await.expect("echo");
    drop(tunnel);
    let denied = connect_request(APP1, proxy, "b.test:9000").await;
    assert_eq!(denied.status, 403, "{}", denied.head);
    let lines = gateway.wait_access_logs(2, |_| true);
    let log_fields = lines
        .iter()
        .filter_map(Value::as_object)
        .flat_map(|line| line.keys().cloned())
        .collect();
    let (status, body) = gateway.admin_get("/metrics");
    assert_eq!(status, 200);
    Observed {
        metric_labels: metric_labels(&body),
        log_fields,
    }
}

/// Metric family name → label names, from Prometheus text (histogram series folded into their
/// family, `le` left out).
fn metric_labels(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut families: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap_or_default();
            families.entry(name.to_owned()).or_default();
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let series = line.split(' ').next().unwrap_or_default();
        let (name, labels) = series.split_once('{').unwrap_or((series, ""));
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                name.strip_suffix(suffix)
                    .filter(|base| families.contains_key(*base))
            })
            .unwrap_or(name);
        let names = labels
            .trim_end_matches('}')
            .split(',')
            .filter_map(|pair| pair.split_once('=').map(|(k, _)| k.to_owned()))
            .filter(|k| k != "le");
        families.entry(family.to_owned()).or_default().extend(names);
    }
    families
}

/// The text of `docs/metrics.md` under the heading naming `metric`, up to the next `##` heading
/// (PromQL comments in code blocks also start with `#`).
pub fn metric_section<'a>(text: &'a str, metric: &str) -> &'a str {
    let heading = format!("`{metric}`");
    let start = text
        .lines()
        .position(|l| l.starts_with('#') && l.trim_start_matches('#').trim() == heading)
        .unwrap_or_else(|| panic!("docs/metrics.md has no heading {heading}"));
    let offset: usize = text.lines().take(start + 1).map(|l| l.len() + 1).sum();
    let rest = &text[offset.min(text.len())..];
    let end = rest.find("\n##").unwrap_or(rest.len());
    &rest[..end]
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_and_access_log_fields_match_the_code_and_a_running_gateway() {
    let observed = observe_running_gateway().await;

    let metrics_doc = doc("metrics.md");
    let documented: BTreeSet<String> = code_headings(&metrics_doc)
        .into_iter()
        .filter(|h| h.starts_with("egress_"))
        .collect();
    let catalog = catalog_metric_names();
    let path = repo().join("docs/metrics.md");
    assert_same("metrics (catalog)", &path, &catalog, &documented);
    let scraped: BTreeSet<String> = observed.metric_labels.keys().cloned().collect();
    let unlisted: Vec<_> = scraped.difference(&documented).collect();
    assert!(
        unlisted.is_empty(),
        "a running gateway exports metrics docs/metrics.md does not describe: {unlisted:?}"
    );
    for (metric, labels) in &observed.metric_labels {
        let section = metric_section(&metrics_doc, metric);
        for label in labels {
            assert!(
                section.contains(&format!("`{label}`")),
                "docs/metrics.md: `{metric}` does not describe its label `{label}`"
            );
        }
    }

    let mut fields = access_log_struct_fields();
    fields.extend(observed.log_fields);
    let documented: BTreeSet<String> = keyed_rows(&doc("access-log.md"))
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    let path = repo().join("docs/access-log.md");
    assert_same("access-log fields", &path, &fields, &documented);
}

/// The alert's name as RFC 8446 spells it.
fn alert_name(alert: Alert) -> &'static str {
    match alert {
        Alert::AccessDenied => "access_denied",
        Alert::UnrecognizedName => "unrecognized_name",
        Alert::InternalError => "internal_error",
    }
}

/// Reasons a TLS client gets no alert for: the ClientHello never arrived, so the connection is
/// only closed.
const SILENT: [DenyReason; 1] = [DenyReason::SniffTimeout];

/// Columns of the summary table in `docs/deny-reasons.md`.
const STATUS: usize = 1;
const ALERT: usize = 2;
const AUDIT: usize = 3;

#[test]
fn every_deny_reason_is_documented_with_what_the_client_sees() {
    let text = doc("deny-reasons.md");
    let path = repo().join("docs/deny-reasons.md");
    let code: BTreeSet<String> = DenyReason::ALL
        .iter()
        .map(|r| r.as_str().to_owned())
        .collect();
    let headings: BTreeSet<String> = code_headings(&text).into_iter().collect();
    assert_same("deny reasons (sections)", &path, &code, &headings);
    let rows = keyed_rows(&text);
    let tabled: BTreeSet<String> = rows.iter().map(|(key, _)| key.clone()).collect();
    assert_same("deny reasons (summary table)", &path, &code, &tabled);
    for (name, row) in &rows {
        let reason = DenyReason::ALL
            .into_iter()
            .find(|r| r.as_str() == name)
            .expect("checked above");
        let cell = |i: usize| row.get(i).map(String::as_str).unwrap_or("");
        let status = reason.http_status().to_string();
        assert!(
            cell(STATUS).contains(&status),
            "docs/deny-reasons.md: `{name}` answers HTTP {status}, the table says {:?}",
            cell(STATUS)
        );
        let alert = if SILENT.contains(&reason) {
            "none"
        } else {
            alert_name(Alert::for_reason(reason))
        };
        assert!(
            cell(ALERT).contains(alert),
            "docs/deny-reasons.md: `{name}` is the TLS alert {alert}, the table says {:?}",
            cell(ALERT)
        );
        let audit = if reason.is_allowlist() {
            "relaxed"
        } else {
            "enforced"
        };
        assert!(
            cell(AUDIT).starts_with(audit),
            "docs/deny-reasons.md: audit mode has `{name}` {audit}, the table says {:?}",
            cell(AUDIT)
        );
    }
}
