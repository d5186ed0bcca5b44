//! Transparent scenarios: plain curls in the pods, redirected by iptables to the `sni` and
//! `http` listeners; allowed and denied per tenant and per original destination port, and no way
//! around the gateway.

use serde_json::Value;

use crate::checks::{s, Checks};
use crate::curl::curl;
use crate::harness::Gateway;
use crate::{API, APP1_A, APP1_B, APP2_A, WEB};

/// Plain curls in the pods, redirected to the `sni`/`http` listeners; the port comes from
/// SO_ORIGINAL_DST; names are resolved by the box DNS (in the pod and in the gateway).
pub fn transparent(c: &mut Checks, gw: &Gateway, ca: &str) {
    // app1 may reach api.example.test:443 (TLS passthrough; the pod verifies the origin's cert).
    let mark = gw.mark();
    let r = curl(APP1_A, &[], &["--cacert", ca, "https://api.example.test/"]);
    c.check(
        r.exit == 0
            && r.status == 200
            && r.out
                .contains("host=api.example.test local=203.0.113.10:443"),
        || format!("transparent https app1 -> api: {r}"),
    );
    c.access(
        gw,
        mark,
        APP1_A,
        "api.example.test",
        &[
            ("listener", s("sni")),
            ("namespace", s("app1")),
            ("identity", s(APP1_A.addr)),
            ("port", 443.into()),
            ("sni", s("api.example.test")),
            ("decision", s("allow")),
            ("service_entry", s("app1/api")),
            ("upstream", s(&format!("{API}:443"))),
        ],
    );

    // A second pod of the same tenant, plain HTTP on port 80 and on 8080 (SO_ORIGINAL_DST).
    for (pod, url, port) in [
        (APP1_B, "http://web.example.test/", 80),
        (APP1_A, "http://web.example.test:8080/", 8080),
    ] {
        let mark = gw.mark();
        let r = curl(pod, &[], &[url]);
        c.check(
            r.exit == 0 && r.status == 200 && r.out.contains(&format!("local={WEB}:{port}")),
            || format!("transparent {url} from {}: {r}", pod.ns),
        );
        c.access(
            gw,
            mark,
            pod,
            "web.example.test",
            &[
                ("listener", s("http")),
                ("namespace", s("app1")),
                ("port", port.into()),
                ("decision", s("allow")),
                ("service_entry", s("app1/web")),
                ("upstream", s(&format!("{WEB}:{port}"))),
            ],
        );
    }

    // The original destination port is what is decided on: 8443 is not allowlisted.
    let mark = gw.mark();
    let r = curl(
        APP1_A,
        &[],
        &["--cacert", ca, "https://api.example.test:8443/"],
    );
    c.check(r.alert_access_denied(), || {
        format!("transparent https api:8443 must get the access_denied alert: {r}")
    });
    c.access(
        gw,
        mark,
        APP1_A,
        "api.example.test",
        &[
            ("listener", s("sni")),
            ("port", 8443.into()),
            ("decision", s("deny")),
            ("reason", s("port_not_allowed")),
            ("upstream", Value::Null),
        ],
    );

    // The other tenant: TLS alert access_denied, and 403 on plain HTTP.
    let mark = gw.mark();
    let r = curl(APP2_A, &[], &["--cacert", ca, "https://api.example.test/"]);
    c.check(r.alert_access_denied(), || {
        format!("transparent https app2 -> api must get the access_denied alert: {r}")
    });
    c.access(
        gw,
        mark,
        APP2_A,
        "api.example.test",
        &[
            ("listener", s("sni")),
            ("namespace", s("app2")),
            ("decision", s("deny")),
            ("reason", s("not_allowlisted")),
            ("upstream", Value::Null),
        ],
    );
    let mark = gw.mark();
    let r = curl(APP2_A, &[], &["http://web.example.test/"]);
    c.check(
        r.status == 403 && r.deny_reason() == Some("not_allowlisted"),
        || format!("transparent http app2 -> web must be 403 not_allowlisted: {r}"),
    );
    c.access(
        gw,
        mark,
        APP2_A,
        "web.example.test",
        &[
            ("listener", s("http")),
            ("namespace", s("app2")),
            ("decision", s("deny")),
            ("reason", s("not_allowlisted")),
        ],
    );
    // ...while app2's own entry works for it.
    let r = curl(
        APP2_A,
        &[],
        &["--cacert", ca, "https://other.example.test/"],
    );
    c.check(r.exit == 0 && r.status == 200, || {
        format!("transparent https app2 -> other: {r}")
    });

    // No way around the gateway: a port that is not redirected goes nowhere.
    let r = curl(
        APP2_A,
        &[],
        &["--connect-timeout", "1", "http://203.0.113.10:9000/"],
    );
    c.check(r.exit != 0 && r.status == 0, || {
        format!("a pod reached the internet around the gateway: {r}")
    });
}
