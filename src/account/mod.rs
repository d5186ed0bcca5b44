//! Accounting: the metrics catalog, the access log, and the per-connection record that emits both
//! exactly once.

pub mod access_log;
pub mod metrics;
pub mod record;

pub use record::ConnectionRecord;

/// Accounting shared by every connection: metric handles per tenant and the access-log writer.
pub struct Accounting {
    /// Per-tenant metric handles.
    pub metrics: metrics::MetricsCache,
    /// The access-log writer.
    pub log: access_log::AccessLog,
}

impl Accounting {
    /// Accounting that writes the access log to stdout, buffering at most `buffer_lines` lines.
    pub fn stdout(buffer_lines: std::num::NonZeroUsize) -> Self {
        Self {
            metrics: metrics::MetricsCache::default(),
            log: access_log::AccessLog::stdout(buffer_lines),
        }
    }
}
