//! Dual-stack scenarios: pods with IPv4 and IPv6 addresses, origins reachable over one family
//! only or both, and a name whose IPv6 address swallows SYNs. The transparent path (ip6tables
//! REDIRECT, IPv6 original destination), the explicit path over an IPv6 proxy address, tenants
//! named by IPv6 prefixes, and Happy Eyeballs (IPv6 preferred; IPv4 wins within the stagger when
//! IPv6 is silent) are each checked by what the pod saw and what the access log says.

use std::time::Duration;

use serde_json::Value;

use crate::checks::{s, Checks};
use crate::curl::{cacert, curl, Curl};
use crate::harness::Gateway;
use crate::{Pod, APP1_A, APP2_A, CONNECT_TIMEOUT};

/// The pods' IPv6 addresses (tests/e2e/cluster.sh).
const APP1_A6: &str = "2001:db8:100::17";
const APP2_A6: &str = "2001:db8:100::33";
/// The CONNECT listener on the gateway's IPv6 uplink address.
const PROXY6: &str = "http://[2001:db8:2::1]:3128";
const PROXY4: &str = "http://192.0.2.1:3128";
/// Happy Eyeballs' stagger (RFC 8305 §5): the IPv4 attempt starts this long after the IPv6 one.
const STAGGER: Duration = Duration::from_millis(250);

pub fn dual_stack(c: &mut Checks, gw: &Gateway) {
    let ca = cacert();

    // Transparent, IPv6 only: curl in the pod can only use the AAAA answer; ip6tables redirects
    // to the sni listener, which must read the IPv6 original destination's port.
    let (mark, _) = expect_ok(
        c,
        gw,
        APP1_A,
        &["--cacert", &ca, "https://v6only.example.test/"],
        "local=2001:db8:113::20:443",
    );
    check_line(
        c,
        gw,
        mark,
        "v6only.example.test",
        &[
            ("listener", s("sni")),
            ("namespace", s("app1")),
            ("identity", s(APP1_A6)),
            ("port", 443.into()),
            ("decision", s("allow")),
            ("upstream", s("[2001:db8:113::20]:443")),
        ],
    );

    // Transparent plain HTTP over IPv6 (port from the IPv6 original destination) and over IPv4.
    for (host, local, upstream, identity) in [
        (
            "v6only.example.test",
            "local=2001:db8:113::20:80",
            "[2001:db8:113::20]:80",
            APP1_A6,
        ),
        (
            "v4only.example.test",
            "local=203.0.113.20:80",
            "203.0.113.20:80",
            APP1_A.addr,
        ),
    ] {
        let (mark, _) = expect_ok(c, gw, APP1_A, &[&format!("http://{host}/")], local);
        check_line(
            c,
            gw,
            mark,
            host,
            &[
                ("listener", s("http")),
                ("namespace", s("app1")),
                ("identity", s(identity)),
                ("port", 80.into()),
                ("upstream", s(upstream)),
            ],
        );
    }

    // Explicit proxy on the IPv6 address: the tenant is named by its IPv6 prefix, and with both
    // answers the gateway prefers IPv6 (RFC 8305).
    let (mark, _) = expect_ok(
        c,
        gw,
        APP1_A,
        &[
            "-p",
            "-x",
            PROXY6,
            "--cacert",
            &ca,
            "https://dual.example.test/",
        ],
        "local=2001:db8:113::21:443",
    );
    check_line(
        c,
        gw,
        mark,
        "dual.example.test",
        &[
            ("listener", s("connect")),
            ("namespace", s("app1")),
            ("identity", s(APP1_A6)),
            ("upstream", s("[2001:db8:113::21]:443")),
        ],
    );

    // The AAAA answer leads to an address that drops SYNs: the IPv4 attempt, started one stagger
    // later, must win long before the connect timeout that a one-by-one dialler would spend.
    let (mark, r) = expect_ok(
        c,
        gw,
        APP1_A,
        &[
            "-p",
            "-x",
            PROXY4,
            "--cacert",
            &ca,
            "https://dropped6.example.test/",
        ],
        "local=203.0.113.22:443",
    );
    c.check(r.took >= STAGGER && r.took < CONNECT_TIMEOUT, || {
        format!("dropped6: IPv4 must win after the {STAGGER:?} stagger, well within the {CONNECT_TIMEOUT:?} connect timeout: {r}")
    });
    check_line(
        c,
        gw,
        mark,
        "dropped6.example.test",
        &[
            ("decision", s("allow")),
            ("upstream", s("203.0.113.22:443")),
        ],
    );

    // Another tenant over IPv6 is judged by its own allowlist: app2 has no dual-stack entry.
    let mark = gw.mark();
    let r = curl(
        APP2_A,
        &[],
        &["--cacert", &ca, "https://v6only.example.test/"],
    );
    c.check(r.alert_access_denied(), || {
        format!("transparent IPv6 app2 -> v6only must get the access_denied alert: {r}")
    });
    check_line(
        c,
        gw,
        mark,
        "v6only.example.test",
        &[
            ("namespace", s("app2")),
            ("identity", s(APP2_A6)),
            ("decision", s("deny")),
            ("reason", s("not_allowlisted")),
        ],
    );
}

/// Runs curl in `pod` and checks a 200 whose body names the origin address `local`.
/// Returns the access-log mark taken before curl ran, and curl's answer.
fn expect_ok(c: &mut Checks, gw: &Gateway, pod: Pod, args: &[&str], local: &str) -> (usize, Curl) {
    let mark = gw.mark();
    let r = curl(pod, &[], args);
    c.check(
        r.exit == 0 && r.status == 200 && r.out.contains(local),
        || {
            format!(
                "dual stack {args:?} from {}: want 200 from {local}: {r}",
                pod.ns
            )
        },
    );
    (mark, r)
}

/// Checks the access-log line for `host` written after `mark`.
fn check_line(c: &mut Checks, gw: &Gateway, mark: usize, host: &str, expect: &[(&str, Value)]) {
    let line = gw.access_after(mark, |v| v["host"] == host);
    let Some(line) = line else {
        c.check(false, || {
            format!("no access-log line for {host} (dual stack)")
        });
        return;
    };
    c.fields(&line, expect, || {
        format!("access log for {host} (dual stack)")
    });
}
