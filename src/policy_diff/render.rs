//! Printing a plan: Markdown made for a pull-request comment, or JSON with stable field names.

use std::fmt::Write as _;

use super::exposure::{Exposure, EVERY_OTHER_NAMESPACE};
use super::risk::Risk;
use super::{NamespacePlan, Report};

/// The plan as one JSON object (the field names of [`Report`] are the contract).
pub fn json(report: &Report) -> String {
    serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// Longest Markdown printed: GitHub refuses comments over 65 536 characters.
pub const MARKDOWN_LIMIT: usize = 60_000;

/// The plan as Markdown: a summary line, then per namespace a table of opened and closed
/// destinations and a list of risks and redundant entries; cut at whole lines to
/// [`MARKDOWN_LIMIT`] with a note saying so.
pub fn markdown(report: &Report) -> String {
    let replay = report.replay.as_ref().map(super::replay::markdown);
    fit(
        &(full_markdown(report) + replay.as_deref().unwrap_or_default()),
        MARKDOWN_LIMIT,
    )
}

/// `text` when it fits in `limit` characters; otherwise its first lines and a note.
fn fit(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let total = text.lines().count();
    let mut out = String::new();
    let mut kept = 0;
    for line in text.lines() {
        if out.len() + line.len() + 1 > limit.saturating_sub(200) {
            break;
        }
        out.push_str(line);
        out.push('\n');
        kept += 1;
    }
    let _ = writeln!(
        out,
        "\n_Cut to fit a pull-request comment: {} of {total} lines shown; `--format json` lists everything._",
        kept
    );
    out
}

fn full_markdown(report: &Report) -> String {
    let mut out = changes(report);
    super::expiring::markdown(&mut out, &report.expiring);
    out
}

/// The summary line and the per-namespace changes.
fn changes(report: &Report) -> String {
    let s = &report.summary;
    let mut out = String::new();
    let _ = writeln!(out, "## Egress allowlist plan\n");
    if s.namespaces_changed == 0 && report.gateway_risks.is_empty() {
        let _ = writeln!(
            out,
            "No change: every namespace reaches exactly what it reached before."
        );
        return out;
    }
    let _ = writeln!(
        out,
        "**{} opened, {} closed, {} risk(s), {} redundant entr{}** in {} namespace(s).",
        s.opened,
        s.closed,
        s.risks,
        s.redundant,
        if s.redundant == 1 { "y" } else { "ies" },
        s.namespaces_changed
    );
    if !report.gateway_risks.is_empty() {
        let _ = writeln!(out, "\n### gateway.yaml (every namespace)\n");
        risk_list(&mut out, &report.gateway_risks);
    }
    for (plan, names) in grouped(&report.namespaces) {
        let _ = writeln!(out, "\n### {}\n", title(&names));
        if !plan.opened.is_empty() || !plan.closed.is_empty() {
            let _ = writeln!(out, "| change | destination | port | protocol | entry |");
            let _ = writeln!(out, "|---|---|---|---|---|");
            exposure_rows(&mut out, "opened", &plan.opened);
            exposure_rows(&mut out, "closed", &plan.closed);
            if !plan.risks.is_empty() || !plan.redundant.is_empty() {
                out.push('\n');
            }
        }
        risk_list(&mut out, &plan.risks);
        for redundant in &plan.redundant {
            let _ = writeln!(
                out,
                "- redundant: `{}` is already covered by {}",
                redundant.entry,
                quoted(&redundant.covered_by)
            );
        }
    }
    out
}

/// Namespaces with the very same changes (an entry exported to `*` opens the same rows for
/// every namespace), in report order, so the comment shows each set of changes once.
fn grouped(plans: &[NamespacePlan]) -> Vec<(&NamespacePlan, Vec<&str>)> {
    let mut groups: Vec<(&NamespacePlan, Vec<&str>)> = Vec::new();
    for plan in plans {
        let same = groups.iter_mut().find(|(first, _)| {
            first.opened == plan.opened
                && first.closed == plan.closed
                && first.risks == plan.risks
                && first.redundant == plan.redundant
        });
        match same {
            Some((_, names)) => names.push(&plan.namespace),
            None => groups.push((plan, vec![&plan.namespace])),
        }
    }
    groups
}

/// `namespace `a``, `namespaces `a`, `b``, and `every other namespace (`*`)` for the pseudo one.
fn title(names: &[&str]) -> String {
    let named: Vec<String> = names
        .iter()
        .filter(|name| **name != EVERY_OTHER_NAMESPACE)
        .map(|name| format!("`{name}`"))
        .collect();
    let named = match named.len() {
        0 => String::new(),
        1 => format!("namespace {}", named[0]),
        _ => format!("namespaces {}", named.join(", ")),
    };
    match (named.is_empty(), names.contains(&EVERY_OTHER_NAMESPACE)) {
        (_, false) => named,
        (true, true) => "every other namespace (`*`)".to_owned(),
        (false, true) => format!("{named} and every other namespace (`*`)"),
    }
}

fn exposure_rows(out: &mut String, change: &str, rows: &[Exposure]) {
    for row in rows {
        let _ = writeln!(
            out,
            "| {change} | `{}` | {} | {} | `{}` |",
            row.destination, row.port, row.protocol, row.via
        );
    }
}

fn risk_list(out: &mut String, risks: &[Risk]) {
    for risk in risks {
        let entry = risk
            .entry
            .as_ref()
            .map(|e| format!(" (`{e}`)"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "- :warning: **risk** `{}`{entry}: {}",
            risk.kind, risk.detail
        );
    }
}

fn quoted(labels: &[String]) -> String {
    labels
        .iter()
        .map(|l| format!("`{l}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_comment_is_cut_at_a_whole_line_with_a_note() {
        let text: String = (0..1000).map(|i| format!("| row {i} |\n")).collect();
        let cut = fit(&text, 1000);
        assert!(cut.len() <= 1000, "{}", cut.len());
        assert!(cut.contains("of 1000 lines shown"), "{cut}");
        assert!(cut.lines().next().is_some_and(|l| l == "| row 0 |"));
        assert_eq!(fit("short\n", 1000), "short\n");
    }
}
