//! `docs/metrics.md` against the shipped alerts and dashboard: every alert and every dashboard
//! panel is named in the section of each gateway metric its expression reads, so the "used by"
//! lines cannot drift from `deploy/monitoring/`.

use serde_json::Value;

use super::catalog::metric_section;
use super::{doc, repo};

/// The `egress_*` metric families an expression reads (histogram suffixes folded).
fn metrics_in(expr: &str) -> Vec<String> {
    let mut found: Vec<String> = expr
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("egress_"))
        .map(|word| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| word.strip_suffix(suffix))
                .filter(|base| base.ends_with("_seconds"))
                .unwrap_or(word)
                .to_owned()
        })
        .collect();
    found.sort();
    found.dedup();
    found
}

/// Fails unless `name` (as `mention` renders it) appears where the doc describes each metric of
/// `expr`, or anywhere in the doc when `expr` reads no gateway metric.
fn assert_mentioned(text: &str, kind: &str, mention: &str, expr: &str) {
    let metrics = metrics_in(expr);
    if metrics.is_empty() {
        assert!(
            text.contains(mention),
            "docs/metrics.md does not mention the {kind} {mention}"
        );
    }
    for metric in metrics {
        assert!(
            metric_section(text, &metric).contains(mention),
            "docs/metrics.md: the {kind} {mention} reads `{metric}`, but that metric's section \
             does not name it"
        );
    }
}

#[test]
fn every_alert_and_panel_is_named_under_the_metrics_it_reads() {
    let text = doc("metrics.md");
    let rules = repo().join("deploy/monitoring/rules/egress-gateway.rules.yaml");
    let rules: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(rules).expect("read rules")).expect("yaml");
    let groups = rules["groups"].as_sequence().expect("groups");
    for rule in groups
        .iter()
        .flat_map(|g| g["rules"].as_sequence().into_iter().flatten())
    {
        let (Some(alert), Some(expr)) = (rule["alert"].as_str(), rule["expr"].as_str()) else {
            continue;
        };
        assert_mentioned(&text, "alert", &format!("`{alert}`"), expr);
    }

    let dashboard = repo().join("deploy/monitoring/dashboards/egress-gateway.json");
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(dashboard).expect("read")).expect("json");
    for panel in dashboard["panels"].as_array().expect("panels") {
        let title = panel["title"].as_str().unwrap_or_default();
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap_or_default();
            assert_mentioned(&text, "dashboard panel", &format!("\"{title}\""), expr);
        }
    }
}
