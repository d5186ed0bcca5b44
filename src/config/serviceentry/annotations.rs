//! The gateway's own ServiceEntry annotations (docs/serviceentries.md): when an entry stops
//! matching (`egress-gateway.io/expires`) and who answers for it (`egress-gateway.io/owner`,
//! `egress-gateway.io/ticket`).
//!
//! Parsed once per entry by the loader; the compile excludes an expired entry, the reloader
//! republishes at the next expiry, and the access log, `explain`, `plan` and `/metrics` show the
//! owner and ticket. This module only reads `metadata.annotations`; it never looks at a clock.

use std::time::SystemTime;

use serde_yaml::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::wire::ObjectMeta;

/// The instant (RFC 3339, with `Z` or a numeric offset) from which the entry no longer matches.
pub const EXPIRES: &str = "egress-gateway.io/expires";
/// Who answers for the entry (a team, a person); shown in the access log, `explain` and `plan`.
pub const OWNER: &str = "egress-gateway.io/owner";
/// The change ticket that asked for the entry; shown where the owner is.
pub const TICKET: &str = "egress-gateway.io/ticket";

/// Longest owner or ticket, in characters: they end up on every access-log line the entry
/// allows, and the owner in a metric label.
pub const MAX_TEXT_CHARS: usize = 128;

/// What the `egress-gateway.io/*` annotations of one entry say. An entry with none of them has
/// no `EntryAnnotations` at all, so the common case costs nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryAnnotations {
    /// From this instant on the entry does not match.
    pub expires: Option<Expiry>,
    /// `egress-gateway.io/owner`, free of control characters and at most [`MAX_TEXT_CHARS`].
    pub owner: Option<Box<str>>,
    /// `egress-gateway.io/ticket`, bounded like the owner.
    pub ticket: Option<Box<str>>,
}

/// An expiry instant and the text it was written as (operators recognise their own offset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    /// The instant, as a wall-clock time.
    pub at: SystemTime,
    /// Whole seconds since the Unix epoch (negative before it): the metric's value.
    pub unix_seconds: i64,
    /// The annotation as written.
    pub written: Box<str>,
}

/// One annotation that cannot be accepted: the path of its key and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnotationProblem {
    /// `metadata.annotations.<key>`, for the loader's locator.
    pub path: String,
    /// The rule broken and the bad value.
    pub message: String,
}

impl EntryAnnotations {
    /// Reads the gateway's annotations from `meta`; `Ok(None)` when there are none, and every
    /// problem when any is malformed.
    pub fn parse(meta: &ObjectMeta) -> Result<Option<Self>, Vec<AnnotationProblem>> {
        let Some(annotations) = meta.rest.get("annotations").filter(|v| !v.is_null()) else {
            return Ok(None);
        };
        let mut problems = Vec::new();
        let Some(map) = annotations.as_mapping() else {
            problems.push(problem(
                "metadata.annotations",
                "metadata.annotations must be a map of strings to strings",
            ));
            return Err(problems);
        };
        let text = |key: &str, problems: &mut Vec<AnnotationProblem>| match map.get(key) {
            None => None,
            Some(Value::String(raw)) => Some(raw.clone()),
            Some(other) => {
                let shown = serde_yaml::to_string(other).unwrap_or_default();
                problems.push(problem(
                    &path(key),
                    format!(
                        "annotation {key} must be a string (quote it), not {}",
                        shown.trim()
                    ),
                ));
                None
            }
        };
        let expires = text(EXPIRES, &mut problems).and_then(|raw| match parse_expiry(&raw) {
            Ok(expiry) => Some(expiry),
            Err(message) => {
                problems.push(problem(&path(EXPIRES), message));
                None
            }
        });
        let mut bounded = |key: &str| {
            let raw = text(key, &mut problems)?;
            match check_text(key, &raw) {
                Ok(()) => Some(raw.into_boxed_str()),
                Err(message) => {
                    problems.push(problem(&path(key), message));
                    None
                }
            }
        };
        let owner = bounded(OWNER);
        let ticket = bounded(TICKET);
        if !problems.is_empty() {
            return Err(problems);
        }
        if expires.is_none() && owner.is_none() && ticket.is_none() {
            return Ok(None);
        }
        Ok(Some(Self {
            expires,
            owner,
            ticket,
        }))
    }

    /// `owner "X", ticket "Y"` as far as they are known, for messages; empty when neither is.
    pub fn who(&self) -> String {
        self.parts(false)
    }

    /// `expires T, owner "X", ticket "Y"` as far as they are known, for `explain`.
    pub fn describe(&self) -> String {
        self.parts(true)
    }

    fn parts(&self, with_expiry: bool) -> String {
        let expires = self
            .expires
            .as_ref()
            .filter(|_| with_expiry)
            .map(|e| format!("expires {}", e.written));
        let text = [("owner", &self.owner), ("ticket", &self.ticket)]
            .into_iter()
            .filter_map(|(label, value)| Some(format!("{label} {:?}", value.as_deref()?)));
        expires
            .into_iter()
            .chain(text)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Parses an RFC 3339 instant: a four-digit year, `T` (or `t`, or the space RFC 3339 allows)
/// between date and time, seconds, and `Z` (or `z`) or a `±HH:MM` offset of at most 23:59. A
/// leap second is accepted only where one can occur (23:59:60 UTC) and counts as the last
/// instant of that minute.
pub fn parse_expiry(raw: &str) -> Result<Expiry, String> {
    let parsed = OffsetDateTime::parse(raw, &Rfc3339).map_err(|err| {
        format!(
            "annotation {EXPIRES} {raw:?} is not an RFC 3339 time ({err}); write e.g. \
             2027-01-31T18:00:00Z or 2027-01-31T19:00:00+01:00"
        )
    })?;
    Ok(Expiry {
        at: SystemTime::from(parsed),
        unix_seconds: parsed.unix_timestamp(),
        written: raw.into(),
    })
}

/// An owner or ticket goes into log lines and a label: bounded, one line, no control characters.
fn check_text(key: &str, raw: &str) -> Result<(), String> {
    let chars = raw.chars().count();
    if raw.trim().is_empty() {
        Err(format!(
            "annotation {key} is empty; leave it out or name someone"
        ))
    } else if chars > MAX_TEXT_CHARS {
        Err(format!(
            "annotation {key} is {chars} characters long; at most {MAX_TEXT_CHARS} are kept"
        ))
    } else if let Some(bad) = raw.chars().find(|c| unprintable(*c)) {
        Err(format!(
            "annotation {key} contains the control character {:?}; use one line of printable text",
            bad
        ))
    } else {
        Ok(())
    }
}

/// Control characters, and the Unicode line separators and bidirectional controls that make a
/// log line read differently from what it holds.
/// Characters that must never reach a log line, a comment or a rendered table as they are:
/// controls, Unicode line and paragraph separators (YAML and some terminals break lines there),
/// and bidirectional controls (which make text read differently from what it is).
pub fn unprintable(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn path(key: &str) -> String {
    format!("metadata.annotations.{key}")
}

fn problem(path: &str, message: impl Into<String>) -> AnnotationProblem {
    AnnotationProblem {
        path: path.to_owned(),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(yaml: &str) -> ObjectMeta {
        serde_yaml::from_str(yaml).expect("metadata parses")
    }

    #[test]
    fn offsets_are_applied_and_lowercase_separators_accepted() {
        let utc = parse_expiry("2027-01-31T18:00:00Z").expect("UTC");
        let plus_one = parse_expiry("2027-01-31T19:00:00+01:00").expect("offset");
        let lower = parse_expiry("2027-01-31t18:00:00z").expect("lowercase, as RFC 3339 allows");
        assert_eq!(utc.unix_seconds, 1_801_418_400);
        assert_eq!(utc.at, plus_one.at);
        assert_eq!(utc.at, lower.at);
    }

    #[test]
    fn what_rfc_3339_does_not_allow_is_refused() {
        for raw in [
            "99999-01-01T00:00:00Z",
            "2027-01-31T18:00:00+25:00",
            "2027-01-31T18:00:00",
            "2027-01-31",
            "2027-02-30T00:00:00Z",
            "2027-01-31T12:59:60Z",
            "tomorrow",
        ] {
            assert!(parse_expiry(raw).is_err(), "{raw} must be refused");
        }
    }

    #[test]
    fn a_leap_second_is_the_end_of_its_minute() {
        let leap = parse_expiry("2016-12-31T23:59:60Z").expect("a real leap second");
        let next = parse_expiry("2017-01-01T00:00:00Z").expect("next day");
        assert!(leap.at < next.at);
        assert_eq!(leap.unix_seconds, next.unix_seconds - 1);
    }

    #[test]
    fn owner_and_ticket_are_bounded_single_line_text() {
        let ok =
            meta("annotations: {egress-gateway.io/owner: team-a, egress-gateway.io/ticket: CHG-1}");
        let parsed = EntryAnnotations::parse(&ok)
            .expect("valid")
            .expect("present");
        assert_eq!(parsed.who(), "owner \"team-a\", ticket \"CHG-1\"");
        assert_eq!(parsed.expires, None);

        let long = "x".repeat(MAX_TEXT_CHARS + 1);
        for bad in [
            "\"a\\nb\"",
            "\"a\\u0007\"",
            "\"a\\u202Eb\"",
            "\"  \"",
            long.as_str(),
        ] {
            let text = format!("annotations: {{egress-gateway.io/owner: {bad}}}");
            let problems = EntryAnnotations::parse(&meta(&text)).expect_err(bad);
            assert_eq!(
                problems[0].path,
                "metadata.annotations.egress-gateway.io/owner"
            );
        }
    }

    #[test]
    fn other_annotations_and_none_at_all_mean_nothing() {
        assert_eq!(EntryAnnotations::parse(&meta("name: a")), Ok(None));
        assert_eq!(
            EntryAnnotations::parse(&meta("annotations: {team: x, expires: 1}")),
            Ok(None)
        );
        let number = meta("annotations: {egress-gateway.io/expires: 1801677600}");
        assert!(EntryAnnotations::parse(&number).is_err(), "not a string");
    }
}
