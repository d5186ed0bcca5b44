//! egress-gateway: the single way out of a multi-tenant cluster.
//!
//! A connection flows one way through the modules: `accept` → `identify` → `sniff` → `decide` →
//! `dial` → `splice` → `account`, sequenced by `pipeline`. Beside it runs the side input
//! `config` → `snapshot` (compile), swapped atomically on reload.

pub mod accept;
pub mod account;
pub mod admin;
pub mod app;
pub mod busy_poll;
pub mod cli;
pub mod config;
pub mod decide;
pub mod dial;
pub mod identify;
pub mod limit;
pub mod names;
pub mod observed;
pub mod pace;
pub mod pipeline;
pub mod plan;
pub mod policy_diff;
pub mod prefix_map;
pub mod reload;
pub mod snapshot;
pub mod sniff;
pub mod splice;
pub mod suggest;
pub mod tls;
