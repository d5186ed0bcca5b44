//! The `plan` section on expiry: head entries whose `egress-gateway.io/expires` falls within
//! [`WINDOW`] of the plan's run, and those already expired (which the compile left out, so they
//! allow nothing), with owner and ticket, so a reviewer sees what is about to close.
//!
//! Listed, never counted by `--fail-on`: an expiry is not part of the change under review, and a
//! gate on it would fail every unrelated pull request once a date comes near. The alert
//! `EgressAllowlistEntryExpiringSoon` is what pages.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::exposure::{label, Tree};

/// How far ahead of now an expiry is flagged.
pub const WINDOW: Duration = Duration::from_secs(14 * 24 * 3600);

/// One head entry that expires soon or has expired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Expiring {
    /// `namespace/name`.
    pub entry: String,
    /// `egress-gateway.io/expires` as written.
    pub expires: String,
    /// Whether it had expired when the plan ran (the head compile left it out).
    pub expired: bool,
    /// Whole days from the plan's run to the expiry; negative once expired.
    pub days_left: i64,
    /// `egress-gateway.io/owner`, if set.
    pub owner: Option<String>,
    /// `egress-gateway.io/ticket`, if set.
    pub ticket: Option<String>,
}

/// Head entries expiring within [`WINDOW`] of the head compile, or already expired, soonest
/// first.
pub fn expiring(head: &Tree) -> Vec<Expiring> {
    let now = head.snapshot.loaded_at;
    let mut found: Vec<(SystemTime, Expiring)> = head
        .loaded
        .entries
        .iter()
        .filter_map(|entry| {
            let annotations = entry.annotations.as_deref()?;
            let expiry = annotations.expires.as_ref()?;
            (expiry.at <= now + WINDOW).then(|| {
                let row = Expiring {
                    entry: label(entry),
                    expires: expiry.written.to_string(),
                    expired: expiry.at <= now,
                    days_left: days_between(now, expiry.at),
                    owner: annotations.owner.as_deref().map(str::to_owned),
                    ticket: annotations.ticket.as_deref().map(str::to_owned),
                };
                (expiry.at, row)
            })
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.entry.cmp(&b.1.entry)));
    found.into_iter().map(|(_, row)| row).collect()
}

/// Whole days from `now` to `at`, rounded toward zero; negative when `at` has passed.
fn days_between(now: SystemTime, at: SystemTime) -> i64 {
    let day = 24 * 3600;
    match at.duration_since(now) {
        Ok(ahead) => i64::try_from(ahead.as_secs() / day).unwrap_or(i64::MAX),
        Err(behind) => -i64::try_from(behind.duration().as_secs() / day).unwrap_or(i64::MAX),
    }
}

/// The Markdown section listing `rows`; nothing when there are none.
pub fn markdown(out: &mut String, rows: &[Expiring]) {
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n### Expiring entries (within 14 days)\n");
    let _ = writeln!(out, "| entry | expires | status | owner | ticket |");
    let _ = writeln!(out, "|---|---|---|---|---|");
    for row in rows {
        let status = if row.expired {
            "expired: allows nothing".to_owned()
        } else {
            format!("{} day(s) left", row.days_left)
        };
        let cell = |value: &Option<String>| {
            value.as_deref().map_or_else(
                || "—".to_owned(),
                |v| format!("`{}`", super::replay::cell(v)),
            )
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {status} | {} | {} |",
            row.entry,
            row.expires,
            cell(&row.owner),
            cell(&row.ticket)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_toward_zero_either_way() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        let hours = |h: u64| Duration::from_secs(h * 3600);
        assert_eq!(days_between(now, now + hours(47)), 1);
        assert_eq!(days_between(now, now + hours(1)), 0);
        assert_eq!(days_between(now, now - hours(49)), -2);
    }
}
