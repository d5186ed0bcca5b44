//! The adversarial suite: the real gateway binary attacked as a tenant would, one module per
//! attack class. Every attack asserts the exact refusal a user sees (status code or TLS alert),
//! the deny reason in the access log, the matching counter on `/metrics`, and that open file
//! descriptors and `egress_active_connections` return to baseline (`baseline`, `attack`).
//!
//! Tenants are played from 127.0.0.2 (app1) and 127.0.0.3 (app2); every origin is a local socket
//! on 127.0.0.1. Each module shares one gateway per test function so the suite stays fast; every
//! wait is bounded.

#[path = "../common/mod.rs"]
mod common;

mod attack;
mod baseline;
mod config_side;
mod connect_target;
mod hello;
mod mtls_identity;
mod pki;
mod smuggling;
mod sni_tricks;
