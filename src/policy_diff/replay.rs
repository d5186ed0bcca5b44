//! `plan --access-log`: every flow the gateway logged, decided again by the planner of both
//! trees; the flows whose outcome flips are what the change breaks (let through before, denied
//! after) and what it unlocks (denied before, let through after), with how often and when they
//! were last seen.

use serde::Serialize;
use std::fmt::Write as _;

use super::exposure::Tree;
use crate::account::access_log::rfc3339;
use crate::observed::line::printable;
use crate::observed::verdict::{replay, Replayed};
use crate::observed::{Diagnostics, Flow, Observed, Seen, MAX_FLOWS};

/// What replaying the log found.
#[derive(Debug, Serialize)]
pub struct Replay {
    /// Totals.
    pub summary: ReplaySummary,
    /// Flows let through by base and denied by head, most frequent first.
    pub breaks: Vec<Flip>,
    /// Flows denied by base and let through by head, most frequent first.
    pub unlocks: Vec<Flip>,
    /// What was read and skipped, with the first problems by file and line.
    pub diagnostics: Diagnostics,
}

/// Totals of a replay.
#[derive(Debug, Default, Serialize)]
pub struct ReplaySummary {
    /// Distinct flows read.
    pub flows: usize,
    /// Flows put to both planners.
    pub replayed: usize,
    /// Flows that name no listener the gateway has.
    pub unreplayable: usize,
    /// Flows broken by the change.
    pub breaks: usize,
    /// Flows unlocked by the change.
    pub unlocks: usize,
}

/// One flow whose outcome changes.
#[derive(Debug, Serialize)]
pub struct Flip {
    /// Tenant namespace.
    pub namespace: String,
    /// Listener it arrived on.
    pub listener: String,
    /// Destination host.
    pub host: String,
    /// Destination port.
    pub port: u16,
    /// ClientHello SNI, when one was logged.
    pub sni: Option<String>,
    /// Log lines naming the flow.
    pub count: u64,
    /// First time seen (RFC 3339).
    pub first_seen: String,
    /// Last time seen (RFC 3339).
    pub last_seen: String,
    /// Base verdict: `allow`, `audit` or `deny`.
    pub base: &'static str,
    /// Base reason (`none` when allowed).
    pub base_reason: &'static str,
    /// Head verdict.
    pub head: &'static str,
    /// Head reason.
    pub head_reason: &'static str,
    /// The entry that lets it through: base's for a break, head's for an unlock.
    pub entry: Option<String>,
}

/// Replays every flow of `observed` against both trees.
pub fn replay_flows(base: &Tree, head: &Tree, observed: Observed) -> Replay {
    let mut summary = ReplaySummary {
        flows: observed.flows.len(),
        ..ReplaySummary::default()
    };
    let (mut breaks, mut unlocks) = (Vec::new(), Vec::new());
    for (flow, seen) in &observed.flows {
        let (Ok(before), Ok(after)) = (
            replay(&base.snapshot, flow, seen),
            replay(&head.snapshot, flow, seen),
        ) else {
            summary.unreplayable += 1;
            continue;
        };
        summary.replayed += 1;
        match (before.verdict.lets_through(), after.verdict.lets_through()) {
            (true, false) => breaks.push(flip(flow, seen, &before, &after, before.entry.clone())),
            (false, true) => unlocks.push(flip(flow, seen, &before, &after, after.entry.clone())),
            _ => {}
        }
    }
    for list in [&mut breaks, &mut unlocks] {
        list.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| key(a).cmp(&key(b))));
    }
    summary.breaks = breaks.len();
    summary.unlocks = unlocks.len();
    Replay {
        summary,
        breaks,
        unlocks,
        diagnostics: observed.diagnostics,
    }
}

fn flip(flow: &Flow, seen: &Seen, base: &Replayed, head: &Replayed, entry: Option<String>) -> Flip {
    Flip {
        namespace: flow.namespace.to_string(),
        listener: flow.listener.to_string(),
        host: flow.host.to_string(),
        port: flow.port,
        sni: flow.sni.as_deref().map(str::to_owned),
        count: seen.count,
        first_seen: rfc3339(seen.first),
        last_seen: rfc3339(seen.last),
        base: base.verdict.label(),
        base_reason: base.verdict.reason_label(),
        head: head.verdict.label(),
        head_reason: head.verdict.reason_label(),
        entry,
    }
}

fn key(f: &Flip) -> (&str, &str, u16, &str, Option<&str>) {
    (&f.namespace, &f.host, f.port, &f.listener, f.sni.as_deref())
}

/// Log text as a Markdown table cell: printable, no pipe or backtick to break out of it.
pub(super) fn cell(text: &str) -> String {
    printable(text, 300).replace('|', "\\|").replace('`', "'")
}

/// The replay as a Markdown section: totals, then a table of breaks and one of unlocks.
pub fn markdown(replay: &Replay) -> String {
    let (s, d) = (&replay.summary, &replay.diagnostics);
    let mut out = String::from("\n### Replay of the access log\n\n");
    let _ = writeln!(
        out,
        "**{} break(s), {} unlock(s)** among {} distinct flow(s) from {} line(s).",
        s.breaks, s.unlocks, s.flows, d.lines
    );
    let skipped = d.malformed + d.too_long + d.skipped + d.unreadable + d.beyond_flow_cap;
    if skipped > 0 || s.unreplayable > 0 {
        let _ = writeln!(
            out,
            "\nNot replayed: {} malformed line(s), {} over-long, {} without a tenant or destination, {} unreadable file(s), {} flow(s) on an unknown listener, {} line(s) of flows beyond the first {MAX_FLOWS} distinct ones.",
            d.malformed, d.too_long, d.skipped, d.unreadable, s.unreplayable, d.beyond_flow_cap
        );
        for example in &d.examples {
            let _ = writeln!(out, "- `{}`", cell(example));
        }
    }
    table(
        &mut out,
        "Breaks: let through before, denied after",
        &replay.breaks,
    );
    table(
        &mut out,
        "Unlocks: denied before, let through after",
        &replay.unlocks,
    );
    out
}

fn table(out: &mut String, title: &str, flips: &[Flip]) {
    if flips.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n#### {title}\n");
    let _ = writeln!(
        out,
        "| namespace | listener | destination | sni | count | last seen | base | head | entry |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    for f in flips {
        let _ = writeln!(
            out,
            "| `{}` | {} | `{}:{}` | {} | {} | {} | {} {} | {} {} | {} |",
            cell(&f.namespace),
            cell(&f.listener),
            cell(&f.host),
            f.port,
            f.sni
                .as_deref()
                .map_or("-".to_owned(), |s| format!("`{}`", cell(s))),
            f.count,
            f.last_seen,
            f.base,
            f.base_reason,
            f.head,
            f.head_reason,
            f.entry
                .as_deref()
                .map_or("-".to_owned(), |e| format!("`{e}`")),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_text_cannot_break_out_of_a_table_cell() {
        assert_eq!(cell("a|b`c\nd"), "a\\|b'c?d");
    }
}
