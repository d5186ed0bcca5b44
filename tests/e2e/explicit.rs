//! Explicit-proxy scenarios: HTTPS_PROXY through the plaintext CONNECT listener, and the mTLS
//! listener with each tenant's workload certificate.

use crate::checks::{s, Checks};
use crate::curl::{cacert, curl, via_mtls};
use crate::harness::Gateway;
use crate::{API, APP1_A, APP2_A, PROXY};

/// HTTPS_PROXY (plaintext CONNECT listener) and the mTLS listener with workload certificates.
pub fn explicit(c: &mut Checks, gw: &Gateway) {
    let ca = cacert();
    for (pod, ns, allowed) in [(APP1_A, "app1", true), (APP2_A, "app2", false)] {
        let mark = gw.mark();
        let r = curl(
            pod,
            &[("HTTPS_PROXY", PROXY)],
            &["--cacert", &ca, "https://api.example.test/"],
        );
        let ok = if allowed {
            r.exit == 0 && r.status == 200 && r.out.contains("host=api.example.test")
        } else {
            r.exit == 56 && r.out.contains(" 403 ") && r.deny_reason() == Some("not_allowlisted")
        };
        c.check(ok, || {
            format!("HTTPS_PROXY {ns} -> api (allowed: {allowed}): {r}")
        });
        let mut expect = vec![
            ("listener", s("connect")),
            ("namespace", s(ns)),
            ("identity", s(pod.addr)),
            ("port", 443.into()),
        ];
        if allowed {
            expect.extend([
                ("decision", s("allow")),
                ("sni", s("api.example.test")),
                ("upstream", s(&format!("{API}:443"))),
            ]);
        } else {
            expect.extend([("decision", s("deny")), ("reason", s("not_allowlisted"))]);
        }
        c.access(gw, mark, pod, "api.example.test", &expect);

        let mark = gw.mark();
        let r = via_mtls(pod, ns, "https://api.example.test/");
        let ok = if allowed {
            r.exit == 0 && r.status == 200 && r.out.contains("host=api.example.test")
        } else {
            r.exit == 56 && r.out.contains(" 403 ") && r.deny_reason() == Some("not_allowlisted")
        };
        c.check(ok, || {
            format!("mTLS proxy {ns} -> api (allowed: {allowed}): {r}")
        });
        let mut expect = vec![
            ("listener", s("connect_tls")),
            ("namespace", s(ns)),
            (
                "identity",
                s(&format!("spiffe://cluster.local/ns/{ns}/sa/default")),
            ),
        ];
        if allowed {
            expect.extend([
                ("decision", s("allow")),
                ("upstream", s(&format!("{API}:443"))),
            ]);
        } else {
            expect.extend([("decision", s("deny")), ("reason", s("not_allowlisted"))]);
        }
        c.access(gw, mark, pod, "api.example.test", &expect);
    }
}
