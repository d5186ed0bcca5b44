//! The adversarial suite: the real gateway binary attacked as a tenant would, one module per
//! attack class. Every attack asserts the exact refusal a user sees (status code or TLS alert),
//! the deny reason in the access log, the matching counter on `/metrics`, and that open file
//! descriptors and `egress_active_connections` return to baseline (`baseline`, `attack`).
//!
//! Tenants are played from 127.0.0.2 (app1) and 127.0.0.3 (app2); every origin is a local socket
//! on 127.0.0.1. Each module shares one gateway per test function so the suite stays fast; every
//! wait is bounded.
//!
//! | module | attacks |
//! |---|---|
//! | `connect_target` | CONNECT request-target tricks: IP literal spellings, userinfo, ports, control bytes, long names, IDN, wildcards |
//! | `smuggling` | CL+TE variants, obs-fold, bare LF, duplicate Host, Host against the absolute URI, keep-alive to a second host, oversized heads |
//! | `tunnel_tricks` | bytes pipelined behind CONNECT, host changes inside HTTP tunnels, CONNECT where it does not belong |
//! | `sni_tricks` | several names, IP literals, NUL, ECH, split and oversized records, a second hello, SNI against the CONNECT host |
//! | `mtls_identity` | several URI SANs, non-canonical SPIFFE paths, foreign trust domains, odd namespaces, log injection, bad certificates |
//! | `h2_abuse` | pseudo-header abuse, other methods, stream and tenant limits, SNI and Host rules in h2 tunnels |
//! | `h2_floods` | RST / SETTINGS / CONTINUATION / PING floods, flow-control abuse, silent clients, clients ignoring GOAWAY |
//! | `audit_escape` | audit mode used to reach loopback, metadata or private addresses, or to dodge identity and limits |
//! | `slot_leaks` | every refusal path gives the tenant slot back |
//! | `cardinality` | sprayed names never become metric labels |
//! | `defects` | issue 14 defects #10 (ECH) and #12 (bare LF then CL+TE) on their own |
//! | `config_side` | config-side attempts: deep nesting, alias bombs, symlinks out of the tree, a folder granting another namespace, `exportTo` tricks |
//! | `expiry_tricks` | `egress-gateway.io/expires` dates bending RFC 3339, duplicated keys, control characters in owner and ticket, expiry across namespaces and `exportTo`, re-enabling only by a file change |
//! | `dns_answers` | DNS answers in every forbidden class (and wrapped in NAT64, 6to4, Teredo), inside a loopback-only network namespace |
//! | `parent_tricks` | a hostile or broken TLS parent proxy: endless heads, redirects, silence, early close, `407`, bytes behind its `200`, plaintext where TLS was configured |
//! | `replay_log` | hostile logs fed to `plan --access-log`: a gzip bomb, a cut gzip file, Markdown and HTML meant for the pull-request comment |
//! | `suggest_log` | hostile access-log lines fed to `suggest`: YAML and newline injection, `*.com`, public suffixes with many children, IP literals, huge lines, invalid UTF-8, namespaces that would escape `--out` |
//! | `explain_agrees` | `explain` and `run` give the same verdict and reason for every expressible attack |

#[path = "../common/mod.rs"]
mod common;

mod attack;
mod audit_escape;
mod baseline;
mod cardinality;
mod config_side;
mod connect_target;
mod defects;
mod dns_answers;
mod expiry_tricks;
mod explain_agrees;
mod h2_abuse;
mod h2_floods;
mod h2_raw;
mod h2_world;
mod hello;
mod mtls_identity;
mod origin;
mod parent_tricks;
mod pki;
mod replay_log;
mod slot_leaks;
mod smuggling;
mod sni_tricks;
mod suggest_log;
mod tunnel_tricks;
