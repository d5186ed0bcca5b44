//! CONNECT request-target tricks on the plaintext `connect` listener: IP literal spellings that
//! resolvers read as loopback, userinfo, odd ports, control bytes, over-long names, raw UTF-8,
//! wildcards and suffix games. Each case is one attack: its exact answer (status and
//! `X-Egress-Deny-Reason`), its access-log line and counter, and no leak.

use tokio::io::AsyncWriteExt;

use crate::attack::{deny_header, raw_exchange, status_of, Outcome, Probe};
use crate::common::{connect_from, entry_yaml, read_head, static_entry, ConfigDir, Gateway, APP1};

/// One attack: the bytes sent and the exact outcome.
struct Case {
    name: &'static str,
    request: String,
    status: u16,
    reason: &'static str,
}

fn connect(authority: &str) -> String {
    format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n")
}

fn case(name: &'static str, authority: &str, status: u16, reason: &'static str) -> Case {
    Case {
        name,
        request: connect(authority),
        status,
        reason,
    }
}

fn raw(name: &'static str, request: &str, status: u16, reason: &'static str) -> Case {
    Case {
        name,
        request: request.to_owned(),
        status,
        reason,
    }
}

/// app1 may reach `allowed.test:443`, `*.wild.test:443` and the literal `192.0.2.10:9443`
/// (all dialled to a local echo server).
pub async fn target_gateway() -> (Gateway, ConfigDir) {
    let echo = crate::common::echo_server().await;
    let config = ConfigDir::new(&crate::common::gateway_yaml(""));
    config.entry(
        "app1/allowed.yaml",
        &static_entry("allowed", "allowed.test", 443, "TCP", echo),
    );
    config.entry(
        "app1/wild.yaml",
        &entry_yaml(
            "wild",
            &format!(
                "  hosts: [\"*.wild.test\"]\n  ports: [{{number: 443, name: tcp, protocol: TCP, targetPort: {}}}]\n  resolution: STATIC\n  endpoints: [{{address: \"{}\"}}]\n",
                echo.port(),
                echo.ip()
            ),
        ),
    );
    config.entry(
        "app1/literal.yaml",
        &entry_yaml(
            "literal",
            &format!(
                "  hosts: [\"literal.internal\"]\n  addresses: [\"192.0.2.10/32\"]\n  ports: [{{number: 9443, name: tcp, protocol: TCP, targetPort: {}}}]\n  resolution: STATIC\n  endpoints: [{{address: \"{}\"}}]\n",
                echo.port(),
                echo.ip()
            ),
        ),
    );
    (Gateway::start(&config), config)
}

async fn run(gw: &Gateway, cases: Vec<Case>) {
    for case in cases {
        let outcome = if case.status == 200 {
            Outcome::allow("connect", "app1")
        } else {
            Outcome::deny("connect", "app1", case.reason)
        };
        let probe = Probe::before(gw, outcome);
        let answer = if case.status == 200 {
            let mut stream = connect_from(APP1, gw.addr("connect")).await;
            stream
                .write_all(case.request.as_bytes())
                .await
                .expect("write");
            read_head(&mut stream).await.into_bytes()
        } else {
            raw_exchange(APP1, gw.addr("connect"), case.request.as_bytes()).await
        };
        let text = String::from_utf8_lossy(&answer);
        assert_eq!(status_of(&answer), case.status, "{}: {text}", case.name);
        if case.status != 200 {
            assert_eq!(
                deny_header(&answer).as_deref(),
                Some(case.reason),
                "{}: {text}",
                case.name
            );
        }
        probe.confirm(gw, case.name);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ip_literal_spellings_are_refused_or_judged_as_literals() {
    let (gw, _config) = target_gateway().await;
    run(
        &gw,
        vec![
            case(
                "decimal integer 2130706433",
                "2130706433:443",
                400,
                "malformed_request",
            ),
            case(
                "octal 0177.0.0.1",
                "0177.0.0.1:443",
                400,
                "malformed_request",
            ),
            case("hex 0x7f.1", "0x7f.1:443", 400, "malformed_request"),
            case(
                "hex integer 0x7f000001",
                "0x7f000001:443",
                400,
                "malformed_request",
            ),
            case("short form 127.1", "127.1:443", 400, "malformed_request"),
            case(
                "dotted quad loopback",
                "127.0.0.1:443",
                403,
                "not_allowlisted",
            ),
            case(
                "bracketed IPv6 loopback",
                "[::1]:443",
                403,
                "not_allowlisted",
            ),
            case("unbracketed IPv6 ::1", "::1:443", 400, "malformed_request"),
            case(
                "unbracketed IPv6 2001:db8::1",
                "2001:db8::1:443",
                400,
                "malformed_request",
            ),
            case(
                "IPv6 zone id %25eth0",
                "[fe80::1%25eth0]:443",
                400,
                "malformed_request",
            ),
            case(
                "raw IPv6 zone id %eth0",
                "[fe80::1%eth0]:443",
                400,
                "malformed_request",
            ),
            case(
                "IPv4-mapped IPv6 loopback",
                "[::ffff:127.0.0.1]:443",
                403,
                "not_allowlisted",
            ),
            case(
                "IPv4-mapped spelling of an allowed literal",
                "[::ffff:192.0.2.10]:9443",
                403,
                "not_allowlisted",
            ),
            case(
                "an IPv4 literal in brackets",
                "[192.0.2.10]:9443",
                400,
                "malformed_request",
            ),
            case(
                "a host name in brackets",
                "[allowed.test]:443",
                400,
                "malformed_request",
            ),
            case("the allowed literal itself", "192.0.2.10:9443", 200, "none"),
            case(
                "the allowed literal on another port",
                "192.0.2.10:443",
                403,
                "port_not_allowed",
            ),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ports_and_userinfo_tricks_get_exact_refusals() {
    let (gw, _config) = target_gateway().await;
    run(
        &gw,
        vec![
            case(
                "userinfo user@host",
                "user@allowed.test:443",
                400,
                "malformed_request",
            ),
            case(
                "userinfo with password",
                "user:pw@allowed.test:443",
                400,
                "malformed_request",
            ),
            case("port 0", "allowed.test:0", 400, "malformed_request"),
            case("port 65536", "allowed.test:65536", 400, "malformed_request"),
            case("port +443", "allowed.test:+443", 400, "malformed_request"),
            case("port -443", "allowed.test:-443", 400, "malformed_request"),
            case("port 0x1bb", "allowed.test:0x1bb", 400, "malformed_request"),
            case("no port", "allowed.test", 400, "malformed_request"),
            case("empty port", "allowed.test:", 400, "malformed_request"),
            case(
                "two ports",
                "allowed.test:443:443",
                400,
                "malformed_request",
            ),
            case(
                "percent-encoded space after the port",
                "allowed.test:443%20",
                400,
                "malformed_request",
            ),
            raw(
                "port followed by two spaces",
                "CONNECT allowed.test:443  HTTP/1.1\r\n\r\n",
                400,
                "malformed_request",
            ),
            raw(
                "a space inside the target",
                "CONNECT allowed.test:443 x HTTP/1.1\r\n\r\n",
                400,
                "malformed_request",
            ),
            case(
                "a path after the port",
                "allowed.test:443/admin",
                400,
                "malformed_request",
            ),
            case(
                "absolute URI as CONNECT target",
                "http://allowed.test:443",
                400,
                "malformed_request",
            ),
            case(
                "leading zeros 0443 mean 443",
                "allowed.test:0443",
                200,
                "none",
            ),
            case(
                "too many leading zeros",
                "allowed.test:000443",
                400,
                "malformed_request",
            ),
            case(
                "allowed host, other port",
                "allowed.test:444",
                403,
                "port_not_allowed",
            ),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn control_bytes_long_names_idn_and_wildcards_are_refused() {
    let (gw, _config) = target_gateway().await;
    let long_name = format!("{}.test:443", vec!["a".repeat(60); 5].join("."));
    let long_label = format!("{}.test:443", "a".repeat(64));
    run(
        &gw,
        vec![
            raw(
                "CR inside the host",
                "CONNECT allowed.test\r.evil.test:443 HTTP/1.1\r\n\r\n",
                400,
                "malformed_request",
            ),
            raw(
                "LF inside the host",
                "CONNECT allowed.test\n.evil:443 HTTP/1.1\r\n\r\n",
                400,
                "malformed_request",
            ),
            raw(
                "NUL inside the host",
                "CONNECT allowed.test\0.evil.test:443 HTTP/1.1\r\n\r\n",
                400,
                "malformed_request",
            ),
            raw(
                "tab inside the host",
                "CONNECT allowed.test\t.evil.test:443 HTTP/1.1\r\n\r\n",
                400,
                "malformed_request",
            ),
            case("name longer than 253", &long_name, 400, "malformed_request"),
            case(
                "label longer than 63",
                &long_label,
                400,
                "malformed_request",
            ),
            raw(
                "raw UTF-8 name",
                "CONNECT b\u{fc}cher.test:443 HTTP/1.1\r\n\r\n",
                400,
                "malformed_request",
            ),
            raw(
                "fullwidth dot homoglyph",
                "CONNECT allowed\u{ff0e}test:443 HTTP/1.1\r\n\r\n",
                400,
                "malformed_request",
            ),
            case(
                "percent-encoded dot",
                "allowed%2etest:443",
                400,
                "malformed_request",
            ),
            case(
                "punycode name",
                "xn--bcher-kva.test:443",
                403,
                "not_allowlisted",
            ),
            case(
                "trailing dot is the same host",
                "allowed.test.:443",
                200,
                "none",
            ),
            case(
                "two trailing dots",
                "allowed.test..:443",
                400,
                "malformed_request",
            ),
            case("leading dot", ".allowed.test:443", 400, "malformed_request"),
            case(
                "uppercase is the same host",
                "ALLOWED.TEST:443",
                200,
                "none",
            ),
            case("a bare * target", "*:443", 400, "malformed_request"),
            case(
                "a *.wildcard target",
                "*.wild.test:443",
                400,
                "malformed_request",
            ),
            case(
                "the wildcard's own suffix",
                "wild.test:443",
                403,
                "not_allowlisted",
            ),
            case(
                "a name under the wildcard",
                "a.b.wild.test:443",
                200,
                "none",
            ),
            case(
                "suffix without a dot",
                "evilwild.test:443",
                403,
                "not_allowlisted",
            ),
            case(
                "the allowed name as a prefix",
                "allowed.test.evil.test:443",
                403,
                "not_allowlisted",
            ),
            case(
                "underscore label",
                "_allowed.test:443",
                400,
                "malformed_request",
            ),
            case(
                "hyphen at a label edge",
                "-allowed.test:443",
                400,
                "malformed_request",
            ),
        ],
    )
    .await;
}
