//! Resolution scenarios: names whose DNS answers are forbidden addresses (private, metadata,
//! loopback, IPv4-mapped loopback), DNS rebinding, and a DNS server that never answers.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use crate::checks::{read_jsonl, s, Checks};
use crate::config::app1_entries;
use crate::curl::{cacert, curl, via_connect};
use crate::harness::{state, Gateway};
use crate::{API, APP1_A, CONNECT_TIMEOUT, DEAD_DNS_PROXY, PROXY, REBIND_PUBLIC, WEB};

/// Names that resolve to private, metadata, loopback and IPv4-mapped loopback addresses, and a
/// name whose answer flips between a public and a forbidden address (TTL 0) on every lookup.
pub fn resolution_attacks(c: &mut Checks, gw: &Gateway, ca: &str) {
    for name in ["private", "metadata", "loopback", "mapped"] {
        let host = format!("{name}.example.test");
        let mark = gw.mark();
        let r = via_connect(APP1_A, &format!("https://{host}/"));
        c.check(
            r.exit == 56 && r.out.contains(" 403 ") && r.deny_reason() == Some("forbidden_address"),
            || format!("CONNECT {host}: want 403 forbidden_address: {r}"),
        );
        c.access(
            gw,
            mark,
            APP1_A,
            &host,
            &[
                ("listener", s("connect")),
                ("decision", s("deny")),
                ("reason", s("forbidden_address")),
                ("upstream", Value::Null),
            ],
        );
    }
    // Absolute-form HTTP through the proxy, and the transparent listeners (the pod's own lookup
    // pinned to a box address with --resolve, as if its DNS had said something harmless).
    let mark = gw.mark();
    let r = curl(APP1_A, &[], &["-x", PROXY, "http://loopback.example.test/"]);
    c.check(
        r.status == 403 && r.deny_reason() == Some("forbidden_address"),
        || format!("absolute-form http://loopback.example.test/: want 403: {r}"),
    );
    c.access(
        gw,
        mark,
        APP1_A,
        "loopback.example.test",
        &[("reason", s("forbidden_address"))],
    );
    for name in ["metadata", "private"] {
        let host = format!("{name}.example.test");
        let mark = gw.mark();
        let pin = format!("{host}:443:{API}");
        let r = curl(
            APP1_A,
            &[],
            &[
                "--cacert",
                ca,
                "--resolve",
                &pin,
                &format!("https://{host}/"),
            ],
        );
        c.check(r.alert_access_denied(), || {
            format!("transparent https {host}: want the access_denied alert: {r}")
        });
        c.access(
            gw,
            mark,
            APP1_A,
            &host,
            &[
                ("listener", s("sni")),
                ("decision", s("deny")),
                ("reason", s("forbidden_address")),
                ("upstream", Value::Null),
            ],
        );
        let mark = gw.mark();
        let pin = format!("{host}:80:{WEB}");
        let r = curl(
            APP1_A,
            &[],
            &["--resolve", &pin, &format!("http://{host}/")],
        );
        c.check(
            r.status == 403 && r.deny_reason() == Some("forbidden_address"),
            || format!("transparent http {host}: want 403 forbidden_address: {r}"),
        );
        c.access(
            gw,
            mark,
            APP1_A,
            &host,
            &[("listener", s("http")), ("reason", s("forbidden_address"))],
        );
    }

    // DNS rebinding: each lookup of rebind.example.test alternates 203.0.113.13 and a forbidden
    // address. Whatever the order, an allowed connection went to 203.0.113.13, a denied one
    // dialled nothing.
    let origin_before = read_jsonl(&state("logs/origin.jsonl")).len();
    let mark = gw.mark();
    let pin = format!("rebind.example.test:443:{API}");
    let mut outcomes = Vec::new();
    for round in 0..4 {
        outcomes.push((
            "connect",
            curl(
                APP1_A,
                &[],
                &["-p", "-x", PROXY, "http://rebind.example.test/"],
            ),
        ));
        outcomes.push((
            "absolute",
            curl(APP1_A, &[], &["-x", PROXY, "http://rebind.example.test/"]),
        ));
        if round < 2 {
            outcomes.push((
                "sni",
                curl(
                    APP1_A,
                    &[],
                    &[
                        "--cacert",
                        ca,
                        "--resolve",
                        &pin,
                        "https://rebind.example.test/",
                    ],
                ),
            ));
        }
    }
    for (how, r) in &outcomes {
        let allowed = r.exit == 0 && r.status == 200;
        let refused = r.deny_reason() == Some("forbidden_address") || r.alert_access_denied();
        c.check(allowed != refused, || {
            format!("rebind via {how}: neither a clean allow nor forbidden_address: {r}")
        });
        if allowed {
            c.check(r.out.contains(&format!("local={REBIND_PUBLIC}:")), || {
                format!("rebind via {how} was answered by the wrong origin: {r}")
            });
        }
    }
    // Let the last lines land, then look at every rebind line.
    let _ = gw.access_after(mark, |_| false);
    let lines: Vec<Value> = gw.access_log()[mark..]
        .iter()
        .filter(|v| v["host"] == "rebind.example.test")
        .cloned()
        .collect();
    c.check(lines.len() == outcomes.len(), || {
        format!(
            "rebind: {} requests but {} access-log lines",
            outcomes.len(),
            lines.len()
        )
    });
    let mut seen = BTreeSet::new();
    for line in &lines {
        let upstream = line["upstream"].as_str().unwrap_or("");
        if line["decision"] == "allow" {
            seen.insert("allow");
            c.check(upstream.starts_with(&format!("{REBIND_PUBLIC}:")), || {
                format!("rebind: allowed connection dialled {upstream}: {line}")
            });
        } else {
            seen.insert("deny");
            c.check(
                line["reason"] == "forbidden_address" && line["upstream"].is_null(),
                || format!("rebind: a deny must be forbidden_address with no upstream: {line}"),
            );
        }
    }
    c.check(seen.len() == 2, || {
        format!("rebind: the answers did not alternate as planned (saw only {seen:?})")
    });
    let answers: BTreeSet<String> = read_jsonl(&state("logs/rebind.jsonl"))
        .iter()
        .filter_map(|v| v["answer"].as_str().map(str::to_owned))
        .collect();
    c.check(
        answers.contains("127.0.0.1") && answers.contains("169.254.169.254"),
        || format!("rebind: the responder never served its forbidden answers: {answers:?}"),
    );
    // From the origin side: every rebind request arrived at the public address.
    let origin = read_jsonl(&state("logs/origin.jsonl"));
    let rebind_hits: Vec<&Value> = origin[origin_before.min(origin.len())..]
        .iter()
        .filter(|v| v["host"] == "rebind.example.test")
        .collect();
    c.check(
        rebind_hits.len() == lines.iter().filter(|l| l["decision"] == "allow").count(),
        || {
            format!(
                "rebind: origin saw {} requests: {rebind_hits:?}",
                rebind_hits.len()
            )
        },
    );
    for hit in rebind_hits {
        c.check(
            hit["local"]
                .as_str()
                .is_some_and(|l| l.starts_with(&format!("{REBIND_PUBLIC}:"))),
            || format!("rebind: origin request on an unexpected address: {hit}"),
        );
    }
}

/// A gateway whose DNS server never answers: `dns_failure` (502) within `timeouts.connect`.
pub fn no_dns_answer(c: &mut Checks) {
    let yaml = format!(
        "listeners:\n  connect: {{address: \"192.0.2.1:3138\"}}\nidentity:\n  sources:\n    - {{cidr: \"198.51.100.16/28\", namespace: app1}}\ndns:\n  servers: [\"203.0.113.55:53\"]\ntimeouts: {{connect: {}s}}\n",
        CONNECT_TIMEOUT.as_secs()
    );
    let gw = Gateway::start("silent-dns", &yaml, &[("app1/egress.yaml", app1_entries())]);
    let mark = gw.mark();
    let ca = cacert();
    let r = curl(
        APP1_A,
        &[],
        &[
            "-p",
            "-x",
            DEAD_DNS_PROXY,
            "--cacert",
            &ca,
            "https://api.example.test/",
        ],
    );
    c.check(
        r.out.contains(" 502 ") && r.deny_reason() == Some("dns_failure"),
        || format!("silent DNS: want 502 dns_failure: {r}"),
    );
    c.check(r.took <= CONNECT_TIMEOUT + Duration::from_secs(1), || {
        format!(
            "silent DNS: answered after {:?}, timeouts.connect is {CONNECT_TIMEOUT:?}",
            r.took
        )
    });
    c.access(
        &gw,
        mark,
        APP1_A,
        "api.example.test",
        &[
            ("listener", s("connect")),
            ("decision", s("deny")),
            ("reason", s("dns_failure")),
            ("upstream", Value::Null),
        ],
    );
}
