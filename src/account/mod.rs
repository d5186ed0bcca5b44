//! Accounting: the metrics catalog, the access log, and the per-connection record that emits both
//! exactly once.

pub mod access_log;
pub mod metrics;
pub mod record;

pub use record::ConnectionRecord;
