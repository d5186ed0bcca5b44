//! Reading the config directory as written: `gateway.yaml` and the ServiceEntry allowlists.
//!
//! Nothing here is used on the connection path; `snapshot::compile` turns a [`LoadedConfig`] into
//! the lookup-optimised policy.

pub mod diagnostic;
pub mod gateway;
pub mod last_good;
pub mod load;
pub mod locate;
pub mod serviceentry;
pub mod shape;

pub use diagnostic::{Diagnostic, Severity};
pub use load::{load, LoadedConfig, SourcedEntry};
