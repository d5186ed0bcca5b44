//! `plan --base DIR --head DIR`: what an allowlist change opens, closes and risks, per namespace,
//! computed on the compiled policies of both trees (so it agrees with `run` and `explain`), for a
//! pull-request comment (Markdown) or a pipeline (JSON), with an exit code a pipeline can gate on.

pub mod expiring;
pub mod exposure;
pub mod redundancy;
pub mod render;
pub mod replay;
pub mod risk;
pub mod visibility;

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::app;
use crate::observed::Observed;
use exposure::{Exposure, Tree};
use redundancy::Redundant;
use risk::Risk;

/// Exit code when both trees are valid and the `--fail-on` condition does not hold.
pub const EXIT_OK: i32 = 0;
/// Exit code when the `--fail-on` condition holds.
pub const EXIT_FAILED_CONDITION: i32 = 1;
/// Exit code when either tree is invalid.
pub const EXIT_INVALID: i32 = 2;

/// How the plan is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Markdown for a pull-request comment.
    Markdown,
    /// One JSON object, for pipelines.
    Json,
}

/// Which outcome makes `plan` exit 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    /// Any risk is found.
    Risk,
    /// Anything is closed.
    Close,
    /// Anything is opened or closed, or any risk is found.
    Any,
    /// A flow of the `--access-log` replay that base lets through is denied by head.
    Break,
}

/// The whole plan: what `--format json` prints.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Totals over every namespace.
    pub summary: Summary,
    /// Risks of `gateway.yaml` that hold for every namespace.
    pub gateway_risks: Vec<Risk>,
    /// Every namespace with a change, by name; `*` stands for namespaces neither tree names.
    pub namespaces: Vec<NamespacePlan>,
    /// Head entries expiring within 14 days, or already expired (never counted by `--fail-on`).
    pub expiring: Vec<expiring::Expiring>,
    /// The `--access-log` replay, when logs were given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay: Option<replay::Replay>,
}

/// Totals.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    /// Namespaces with any change.
    pub namespaces_changed: usize,
    /// Opened (destination, port, protocol) rows over all namespaces.
    pub opened: usize,
    /// Closed rows over all namespaces.
    pub closed: usize,
    /// Risks, gateway-wide ones included.
    pub risks: usize,
    /// Entries newly redundant in head.
    pub redundant: usize,
    /// Head entries expiring within 14 days, or already expired.
    pub expiring: usize,
}

/// What the change does to one namespace.
#[derive(Debug, Serialize)]
pub struct NamespacePlan {
    /// Namespace name (`*`: every namespace the trees do not name).
    pub namespace: String,
    /// Reachable in head, not in base.
    pub opened: Vec<Exposure>,
    /// Reachable in base, not in head.
    pub closed: Vec<Exposure>,
    /// Risky changes.
    pub risks: Vec<Risk>,
    /// Head entries another entry of the namespace makes redundant (and base's did not).
    pub redundant: Vec<Redundant>,
}

/// Runs `plan`: loads both trees as `check` does, replays `access_logs` against both, prints the
/// plan, returns the exit code.
pub fn run(
    base: &Path,
    head: &Path,
    access_logs: &[PathBuf],
    format: Format,
    fail_on: Option<FailOn>,
) -> i32 {
    if fail_on == Some(FailOn::Break) && access_logs.is_empty() {
        eprintln!("--fail-on break needs --access-log: breaks are found by replaying a log");
        return EXIT_INVALID;
    }
    let (Some(base), Some(head)) = (load(base), load(head)) else {
        return EXIT_INVALID;
    };
    let mut report = plan(&base, &head);
    if !access_logs.is_empty() {
        let observed = Observed::read(access_logs);
        report.replay = Some(replay::replay_flows(&base, &head, observed));
    }
    let text = match format {
        Format::Markdown => render::markdown(&report),
        Format::Json => render::json(&report) + "\n",
    };
    let written = std::io::stdout().lock().write_all(text.as_bytes());
    if let Err(err) = written.and_then(|()| std::io::stdout().flush()) {
        if err.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("cannot write the plan: {err}");
        }
    }
    if fail_on.is_some_and(|condition| holds(condition, &report)) {
        EXIT_FAILED_CONDITION
    } else {
        EXIT_OK
    }
}

/// Whether `condition` holds for a plan.
pub fn holds(condition: FailOn, report: &Report) -> bool {
    let summary = &report.summary;
    match condition {
        FailOn::Risk => summary.risks > 0,
        FailOn::Close => summary.closed > 0,
        FailOn::Any => summary.opened + summary.closed + summary.risks > 0,
        FailOn::Break => report.replay.as_ref().is_some_and(|r| !r.breaks.is_empty()),
    }
}

/// Loads and compiles `dir` on the path `check` takes, printing its problems the way `check`
/// does when it is invalid (`suggest --config` loads its tree here too).
pub fn load(dir: &Path) -> Option<Tree> {
    match app::load(dir, 1) {
        Ok((loaded, snapshot)) => Some(Tree { loaded, snapshot }),
        Err(problems) => {
            let errors = problems.iter().filter(|p| p.is_error()).count();
            for problem in &problems {
                eprintln!("{problem}");
            }
            eprintln!("config in {} is INVALID: {errors} error(s)", dir.display());
            None
        }
    }
}

/// Compares two compiled trees.
pub fn plan(base: &Tree, head: &Tree) -> Report {
    let mut exposure = exposure::diff(base, head);
    let was_redundant = redundancy::redundant(base);
    let mut redundant = redundancy::redundant(head);
    for (namespace, entries) in &mut redundant {
        let before = was_redundant.get(namespace);
        entries.retain(|r| !before.is_some_and(|b| b.iter().any(|old| old.entry == r.entry)));
    }
    let gateway_risks = risk::gateway_risks(base, head);
    let before = risk::BaseEntries::new(base);
    let mut summary = Summary {
        risks: gateway_risks.len(),
        ..Summary::default()
    };
    let mut namespaces = Vec::new();
    for namespace in exposure::namespaces([base, head]) {
        let change = exposure.remove(&namespace).unwrap_or_default();
        let risks = risk::namespace_risks(base, head, &before, &namespace, Some(&change));
        let redundant = redundant.remove(&namespace).unwrap_or_default();
        if change.opened.is_empty()
            && change.closed.is_empty()
            && risks.is_empty()
            && redundant.is_empty()
        {
            continue;
        }
        summary.namespaces_changed += 1;
        summary.opened += change.opened.len();
        summary.closed += change.closed.len();
        summary.risks += risks.len();
        summary.redundant += redundant.len();
        namespaces.push(NamespacePlan {
            namespace,
            opened: change.opened,
            closed: change.closed,
            risks,
            redundant,
        });
    }
    let expiring = expiring::expiring(head);
    summary.expiring = expiring.len();
    Report {
        summary,
        gateway_risks,
        namespaces,
        expiring,
        replay: None,
    }
}
