//! `docs/metrics.md` against the shipped alerts and dashboard: every alert and every dashboard
//! panel is named in the section of each gateway metric its expression reads (through recording
//! rules too), so the "used by" lines cannot drift from `deploy/monitoring/`.

use std::collections::BTreeMap;

use serde_json::Value;

use super::catalog::metric_section;
use super::{doc, repo};

/// Recording rule name → its expression.
type Records = BTreeMap<String, String>;

/// Deeper than any chain of recording rules; keeps a self-referencing rule bounded.
const MAX_RECORD_DEPTH: usize = 4;

/// The `egress_*` metric families an expression reads, directly or through recording rules
/// (histogram suffixes folded).
fn metrics_in(expr: &str, records: &Records) -> Vec<String> {
    let mut found = Vec::new();
    collect_metrics(expr, records, 0, &mut found);
    found.sort();
    found.dedup();
    found
}

fn collect_metrics(expr: &str, records: &Records, depth: usize, found: &mut Vec<String>) {
    let words = expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'));
    for word in words {
        if let Some(inner) = records.get(word) {
            if depth < MAX_RECORD_DEPTH {
                collect_metrics(inner, records, depth + 1, found);
            }
        } else if word.starts_with("egress_") {
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| word.strip_suffix(suffix))
                .filter(|base| base.ends_with("_seconds"))
                .unwrap_or(word);
            found.push(family.to_owned());
        }
    }
}

/// Fails unless `name` (as `mention` renders it) appears where the doc describes each metric of
/// `expr`, or anywhere in the doc when `expr` reads no gateway metric.
fn assert_mentioned(text: &str, kind: &str, mention: &str, expr: &str, records: &Records) {
    let metrics = metrics_in(expr, records);
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
    let all_rules: Vec<&serde_yaml::Value> = groups
        .iter()
        .flat_map(|g| g["rules"].as_sequence().into_iter().flatten())
        .collect();
    let records: Records = all_rules
        .iter()
        .filter_map(|rule| {
            let name = rule["record"].as_str()?;
            Some((name.to_owned(), rule["expr"].as_str()?.to_owned()))
        })
        .collect();
    for rule in &all_rules {
        let (Some(alert), Some(expr)) = (rule["alert"].as_str(), rule["expr"].as_str()) else {
            continue;
        };
        assert_mentioned(&text, "alert", &format!("`{alert}`"), expr, &records);
    }

    let dashboard = repo().join("deploy/monitoring/dashboards/egress-gateway.json");
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(dashboard).expect("read")).expect("json");
    for panel in dashboard["panels"].as_array().expect("panels") {
        let title = panel["title"].as_str().unwrap_or_default();
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap_or_default();
            let mention = format!("\"{title}\"");
            assert_mentioned(&text, "dashboard panel", &mention, expr, &records);
        }
    }
}
