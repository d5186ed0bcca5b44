//! Expiry at compile time: which entries a compile leaves out because their
//! `egress-gateway.io/expires` has passed, when the next one expires, and the warnings that name
//! the expired ones for `check` and the log.

use std::sync::Arc;
use std::time::SystemTime;

use crate::config::load::EntryPositions;
use crate::config::serviceentry::annotations::EXPIRES;
use crate::config::{Diagnostic, SourcedEntry};

use super::Snapshot;

/// The entries a compile left out because they expired, and the next instant one will.
#[derive(Default)]
pub(super) struct Expiries {
    pub(super) expired: Vec<Arc<SourcedEntry>>,
    pub(super) next: Option<SystemTime>,
}

impl Expiries {
    /// Whether `sourced` has expired at `now` (and is kept aside); otherwise notes its expiry.
    pub(super) fn expired(&mut self, sourced: &Arc<SourcedEntry>, now: SystemTime) -> bool {
        let Some(at) = sourced
            .annotations
            .as_ref()
            .and_then(|a| a.expires.as_ref())
            .map(|e| e.at)
        else {
            return false;
        };
        if at <= now {
            self.expired.push(sourced.clone());
            return true;
        }
        self.next = Some(self.next.map_or(at, |next| next.min(at)));
        false
    }
}

/// A warning for each entry `snapshot` left out because it had expired, at its `expires`
/// annotation, naming owner and ticket: the entry is dead weight until someone removes or extends
/// it.
pub fn expired_warnings(snapshot: &Snapshot) -> Vec<Diagnostic> {
    let mut positions = EntryPositions::default();
    snapshot
        .expired
        .iter()
        .map(|entry| {
            let annotations = entry.annotations.as_deref();
            let written = annotations
                .and_then(|a| a.expires.as_ref())
                .map_or("", |e| &e.written);
            let who = annotations.map(|a| a.who()).unwrap_or_default();
            let who = if who.is_empty() {
                String::new()
            } else {
                format!(" ({who})")
            };
            Diagnostic::warning(
                &entry.file,
                positions.of_field(entry, &format!("metadata.annotations.{EXPIRES}")),
                format!(
                    "ServiceEntry {}/{}{who} expired at {written}: it allows nothing; remove it, or extend {EXPIRES} to allow it again",
                    entry.namespace, entry.name
                ),
            )
        })
        .collect()
}
