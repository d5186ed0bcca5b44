//! Expiry tricks: what an author of allowlist files tries with `egress-gateway.io/expires`,
//! `owner` and `ticket`. Dates that overflow or bend RFC 3339 (year 99999, leap seconds where
//! none can be, `+25:00`, no offset) and a duplicated annotation key are errors at their
//! `FILE:LINE:COL`; control characters in owner or ticket never reach the access log; an expired
//! entry in one namespace leaves another namespace's identical host allowed, comes back only
//! with a file change that extends it, and stops matching in every namespace it is exported to.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use crate::attack::{Outcome, Probe};
use crate::common::*;
use crate::config_side::check;

/// An entry `name` for `HOST:8000` dialling `upstream`, with `annotations` as YAML lines (each
/// `key: value`, the value written as given) and `extra` appended under `spec`.
fn entry(
    name: &str,
    host: &str,
    upstream: SocketAddr,
    annotations: &[&str],
    extra: &str,
) -> String {
    let pairs: Vec<(&str, &str)> = annotations
        .iter()
        .filter_map(|line| line.split_once(": "))
        .collect();
    let entry = format!("{}{extra}", static_entry(name, host, 8000, "TCP", upstream));
    annotated(&entry, name, &pairs)
}

/// `egress-gateway.io/expires: "<at>"`.
fn expires(at: &str) -> String {
    format!("egress-gateway.io/expires: \"{at}\"")
}

/// A config whose only entry, app1's `NAME` for `NAME.test:8000`, expired long ago.
fn expired_config(name: &str, upstream: SocketAddr) -> ConfigDir {
    let config = ConfigDir::new(&gateway_yaml(""));
    let past = expires("2001-09-09T01:46:40Z");
    let host = format!("{name}.test");
    config.entry(
        &format!("app1/{name}.yaml"),
        &entry(name, &host, upstream, &[&past], ""),
    );
    config
}

/// `check` on a config holding only app1's entry `x` annotated with `annotations`.
fn check_annotated(annotations: &[&str]) -> (Option<i32>, String) {
    let upstream: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    let config = ConfigDir::new(&gateway_yaml(""));
    config.entry(
        "app1/x.yaml",
        &entry("x", "x.test", upstream, annotations, ""),
    );
    check(config.path())
}

#[test]
fn dates_that_overflow_or_bend_rfc_3339_are_errors_at_their_column() {
    for raw in [
        "99999-01-01T00:00:00Z",
        "+002027-01-01T00:00:00Z",
        "2027-01-01T00:00:00+25:00",
        "2027-01-01T00:00:00+24:00",
        "2027-01-01T00:00:00+01",
        "2027-01-01T00:00:00",
        "2027-01-01T00:00Z",
        "2027-01-01T24:00:00Z",
        "2027-02-29T00:00:00Z",
        "2016-12-31T12:59:60Z",
        "20270101T000000Z",
        "2027-01-01",
        "next friday",
    ] {
        let (code, stderr) = check_annotated(&[&expires(raw)]);
        assert_eq!(code, Some(1), "{raw}: {stderr}");
        let error = format!(
            "x.yaml:6:5: ServiceEntry x: metadata.annotations.egress-gateway.io/expires: annotation egress-gateway.io/expires {raw:?} is not an RFC 3339 time"
        );
        assert!(
            stderr.contains(&error),
            "{raw}: expected {error:?} in:\n{stderr}"
        );
    }
    let (code, stderr) = check_annotated(&["egress-gateway.io/expires: 1801418400"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("x.yaml:6:5: ServiceEntry x: metadata.annotations.egress-gateway.io/expires: annotation egress-gateway.io/expires must be a string (quote it), not 1801418400"), "{stderr}");

    for raw in [
        "2099-01-01t00:00:00z",
        "2099-01-01T00:00:00-00:00",
        "2099-01-01 00:00:00Z",
        "2099-01-01T00:00:00.000000000000000001Z",
        "2016-12-31T23:59:60Z",
    ] {
        let (code, stderr) = check_annotated(&[&expires(raw)]);
        assert_eq!(code, Some(0), "{raw} is RFC 3339: {stderr}");
    }
}

#[test]
fn a_duplicated_annotation_key_is_refused_whichever_date_comes_last() {
    let (code, stderr) = check_annotated(&[
        &expires("2099-01-01T00:00:00Z"),
        &expires("2000-01-01T00:00:00Z"),
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("x.yaml:6:5: invalid YAML: metadata.annotations: duplicate entry with key \"egress-gateway.io/expires\""),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_in_owner_or_ticket_never_reach_the_access_log() {
    for (key, value) in [
        ("owner", "\"team\\na\""),
        ("owner", "\"team\\ra\""),
        ("owner", "\"team\\e[31ma\""),
        ("ticket", "\"CHG\\u2028-1\""),
        ("ticket", "\"CHG\\u202E1-\""),
        ("ticket", "\"CHG\\t1\""),
    ] {
        let (code, stderr) = check_annotated(&[&format!("egress-gateway.io/{key}: {value}")]);
        assert_eq!(code, Some(1), "{value}: {stderr}");
        let error = format!("x.yaml:6:5: ServiceEntry x: metadata.annotations.egress-gateway.io/{key}: annotation egress-gateway.io/{key} contains the control character");
        assert!(
            stderr.contains(&error),
            "{value}: expected {error:?} in:\n{stderr}"
        );
    }

    let echo = echo_server().await;
    let config = ConfigDir::new(&gateway_yaml(""));
    let owned = |owner: &str| {
        let owner = format!("egress-gateway.io/owner: {owner}");
        entry("web", "web.test", echo, &[&owner], "")
    };
    config.entry("app1/web.yaml", &owned("team-a"));
    let gateway = Gateway::start(&config);
    gateway.wait_watching();
    let failures = gateway.reloads("failure");
    config.replace_entry(
        "app1/web.yaml",
        &owned("\"team-a\\n{\\\"decision\\\":\\\"allow\\\"}\""),
    );
    gateway.wait_metric(
        "egress_config_reloads_total",
        &[("result", "failure")],
        |v| v > failures,
    );

    let probe = Probe::before(&gateway, Outcome::allow("connect", "app1"));
    let mut tunnel = open_tunnel(APP1, gateway.addr("connect"), "web.test:8000").await;
    echo_roundtrip(&mut tunnel, b"x").await.expect("echo");
    drop(tunnel);
    let line = probe.confirm(&gateway, "owner from the last good snapshot");
    assert_eq!(line["owner"], "team-a", "{line}");
    assert_eq!(gateway.access_log().len(), 1, "one line, none injected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_entry_in_one_namespace_leaves_another_namespaces_identical_host_allowed() {
    let echo = echo_server().await;
    let config = expired_config("api", echo);
    config.entry("app2/api.yaml", &entry("api", "api.test", echo, &[], ""));
    let gateway = Gateway::start(&config);
    let proxy = gateway.addr("connect");

    let probe = Probe::before(
        &gateway,
        Outcome::deny("connect", "app1", "not_allowlisted"),
    );
    let answer = connect_request(APP1, proxy, "api.test:8000").await;
    assert_eq!(answer.status, 403, "{}", answer.head);
    assert_eq!(answer.deny_reason().as_deref(), Some("not_allowlisted"));
    drop(answer);
    probe.confirm(&gateway, "app1's expired entry");

    let probe = Probe::before(&gateway, Outcome::allow("connect", "app2"));
    let mut tunnel = open_tunnel(APP2, proxy, "api.test:8000").await;
    echo_roundtrip(&mut tunnel, b"x").await.expect("echo");
    drop(tunnel);
    let line = probe.confirm(&gateway, "app2's own entry");
    assert_eq!(line["service_entry"], "app2/api");
    let (_, metrics) = gateway.admin_get("/metrics");
    assert!(
        !metrics.contains("egress_serviceentry_expiry_timestamp_seconds{"),
        "an expired entry exports no expiry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_entry_comes_back_only_with_a_file_change_that_extends_it() {
    let echo = echo_server().await;
    let config = expired_config("web", echo);
    let gateway = Gateway::start(&config);
    gateway.wait_watching();
    let proxy = gateway.addr("connect");
    let generation = gateway.generation();

    // The reload thread looks at the clock every second: across two of its wakes, nothing
    // brings the entry back.
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_millis(2_100) {
        let answer = connect_request(APP1, proxy, "web.test:8000").await;
        assert_eq!(answer.status, 403, "{}", answer.head);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(gateway.generation(), generation, "nothing was recompiled");
    assert_eq!(
        gateway.metric("egress_config_expiry_recompiles_total", &[]),
        Some(0.0)
    );

    let extended = SystemTime::now() + Duration::from_secs(86_400);
    let future = expires(&rfc3339(whole_second_after(Duration::from_secs(86_400))));
    config.replace_entry(
        "app1/web.yaml",
        &entry("web", "web.test", echo, &[&future], ""),
    );
    gateway.wait_metric("egress_config_generation", &[], |g| g > generation);
    let mut tunnel = open_tunnel(APP1, proxy, "web.test:8000").await;
    echo_roundtrip(&mut tunnel, b"back").await.expect("echo");
    let labels = [("service_entry", "app1/web")];
    let at = gateway.wait_metric(
        "egress_serviceentry_expiry_timestamp_seconds",
        &labels,
        |_| true,
    );
    assert!(
        at >= unix_seconds(extended),
        "the extended expiry is exported"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiry_holds_in_every_namespace_the_entry_is_exported_to() {
    let echo = echo_server().await;
    let config = ConfigDir::new(&gateway_yaml(""));
    let at = whole_second_after(Duration::from_secs(2));
    let soon = expires(&rfc3339(at));
    let exported = "  exportTo: [\".\", app2]\n";
    config.entry(
        "app1/shared.yaml",
        &entry("shared", "shared.test", echo, &[&soon], exported),
    );
    config.entry("app2/own.yaml", &entry("own", "own.test", echo, &[], ""));
    let gateway = Gateway::start(&config);
    let proxy = gateway.addr("connect");
    for tenant in [APP1, APP2] {
        let answer = connect_request(tenant, proxy, "shared.test:8000").await;
        assert_eq!(
            answer.status, 200,
            "{tenant} before the expiry: {}",
            answer.head
        );
    }
    assert!(SystemTime::now() < at, "too slow to look before the expiry");

    let started = Instant::now();
    let mut made = 2;
    loop {
        let answer = connect_request(APP2, proxy, "shared.test:8000").await;
        made += 1;
        if answer.status == 403 {
            assert!(SystemTime::now() >= at, "denied before the expiry");
            break;
        }
        assert!(started.elapsed() < WAIT, "app2 was never denied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gateway.wait_access_logs(made, |_| true);
    let probe = Probe::before(
        &gateway,
        Outcome::deny("connect", "app1", "not_allowlisted"),
    );
    let answer = connect_request(APP1, proxy, "shared.test:8000").await;
    assert_eq!(answer.deny_reason().as_deref(), Some("not_allowlisted"));
    drop(answer);
    probe.confirm(&gateway, "the owner's own use after the expiry");
    let answer = connect_request(APP2, proxy, "own.test:8000").await;
    assert_eq!(
        answer.status, 200,
        "app2's own entry is untouched: {}",
        answer.head
    );
}
