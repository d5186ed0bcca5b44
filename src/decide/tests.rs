//! Table tests for `Policy::decide`.

use super::*;
use crate::names::Hostname;

fn ns(s: &str) -> Namespace {
    Namespace::parse(s).unwrap()
}

fn rule(owner: &str, name: &str, ports: &[(u16, Inspection)]) -> Rule {
    Rule {
        annotations: None,
        namespace: ns(owner),
        name: name.into(),
        label: format!("{owner}/{name}").into(),
        file: "test.yaml".into(),
        ports: ports
            .iter()
            .map(|(number, inspection)| RulePort {
                number: *number,
                name: None,
                inspection: *inspection,
                target_port: None,
            })
            .collect(),
        upstream: Upstream::AsRequested,
    }
}

fn target(host: &str, port: u16) -> Target {
    Target {
        host: Host::parse(host).unwrap(),
        port,
    }
}

fn patterns(hosts: &[&str]) -> Vec<HostPattern> {
    hosts
        .iter()
        .map(|h| HostPattern::parse(h).unwrap())
        .collect()
}

fn policy() -> Policy {
    let mut policy = Policy::new(Mode::Enforce, [("app3".to_owned(), Mode::Audit)]);
    let own = |n: &str| Visibility::Namespaces(vec![ns(n)]);
    policy.add(
        rule("app1", "github", &[(443, Inspection::Sni)]),
        &own("app1"),
        &patterns(&["api.github.com"]),
        &[],
    );
    policy.add(
        rule(
            "app1",
            "google",
            &[(443, Inspection::Sni), (80, Inspection::HostHeader)],
        ),
        &own("app1"),
        &patterns(&["*.googleapis.com"]),
        &[],
    );
    policy.add(
        rule("app1", "db", &[(5432, Inspection::Opaque)]),
        &own("app1"),
        &patterns(&["db.example.net"]),
        &["192.0.2.0/24".parse().unwrap()],
    );
    policy.add(
        rule("shared", "pypi", &[(443, Inspection::Sni)]),
        &Visibility::Everyone,
        &patterns(&["pypi.org"]),
        &[],
    );
    policy.add(
        rule("app3", "only-80", &[(80, Inspection::HostHeader)]),
        &own("app3"),
        &patterns(&["example.org"]),
        &[],
    );
    policy
}

#[test]
fn decisions_follow_the_allowlist() {
    let policy = policy();
    let cases: &[(&str, &str, u16, Verdict, Option<&str>)] = &[
        (
            "app1",
            "api.github.com",
            443,
            Verdict::Allow,
            Some("app1/github"),
        ),
        (
            "app1",
            "API.GitHub.com.",
            443,
            Verdict::Allow,
            Some("app1/github"),
        ),
        (
            "app1",
            "api.github.com",
            80,
            Verdict::Deny(DenyReason::PortNotAllowed),
            None,
        ),
        (
            "app1",
            "github.com",
            443,
            Verdict::Deny(DenyReason::NotAllowlisted),
            None,
        ),
        (
            "app1",
            "storage.googleapis.com",
            443,
            Verdict::Allow,
            Some("app1/google"),
        ),
        (
            "app1",
            "a.b.googleapis.com",
            80,
            Verdict::Allow,
            Some("app1/google"),
        ),
        (
            "app1",
            "googleapis.com",
            443,
            Verdict::Deny(DenyReason::NotAllowlisted),
            None,
        ),
        (
            "app1",
            "evilgoogleapis.com",
            443,
            Verdict::Deny(DenyReason::NotAllowlisted),
            None,
        ),
        ("app1", "192.0.2.10", 5432, Verdict::Allow, Some("app1/db")),
        (
            "app1",
            "192.0.2.10",
            443,
            Verdict::Deny(DenyReason::PortNotAllowed),
            None,
        ),
        (
            "app1",
            "198.51.100.1",
            5432,
            Verdict::Deny(DenyReason::NotAllowlisted),
            None,
        ),
        ("app1", "pypi.org", 443, Verdict::Allow, Some("shared/pypi")),
        ("app2", "pypi.org", 443, Verdict::Allow, Some("shared/pypi")),
        (
            "app2",
            "api.github.com",
            443,
            Verdict::Deny(DenyReason::NotAllowlisted),
            None,
        ),
        (
            "nobody",
            "pypi.org",
            443,
            Verdict::Allow,
            Some("shared/pypi"),
        ),
        (
            "app3",
            "example.org",
            80,
            Verdict::Allow,
            Some("app3/only-80"),
        ),
        (
            "app3",
            "example.org",
            443,
            Verdict::Audit(DenyReason::PortNotAllowed),
            None,
        ),
        (
            "app3",
            "evil.test",
            443,
            Verdict::Audit(DenyReason::NotAllowlisted),
            None,
        ),
    ];
    for (tenant, host, port, verdict, entry) in cases {
        let t = target(host, *port);
        let decision = policy.decide(tenant, &t);
        assert_eq!(decision.verdict, *verdict, "{tenant} → {host}:{port}");
        assert_eq!(
            decision.rule.map(|r| r.label.as_ref()),
            *entry,
            "{tenant} → {host}:{port}"
        );
    }
}

#[test]
fn dial_targets_follow_resolution() {
    let mut static_rule = rule("app1", "static", &[(443, Inspection::Sni)]);
    static_rule.ports[0].name = Some("https".into());
    static_rule.upstream = Upstream::Endpoints(vec![
        Endpoint {
            address: EndpointAddress::Ip("127.0.0.1".parse().unwrap()),
            ports: vec![("https".into(), 8443)],
        },
        Endpoint {
            address: EndpointAddress::Name(Hostname::parse("backup.example").unwrap()),
            ports: vec![],
        },
    ]);
    let mut policy = Policy::new(Mode::Enforce, []);
    policy.add(
        static_rule,
        &Visibility::Namespaces(vec![ns("app1")]),
        &patterns(&["static.example"]),
        &[],
    );
    let t = target("static.example", 443);
    let decision = policy.decide("app1", &t);
    let targets: Vec<_> = decision.dial_targets(&t).collect();
    assert_eq!(
        targets,
        vec![
            DialTarget::Trusted("127.0.0.1:8443".parse().unwrap()),
            DialTarget::Resolve(Hostname::parse("backup.example").unwrap(), 443),
        ]
    );

    let audit = Policy::new(Mode::Audit, []);
    let t = target("10.0.0.1", 22);
    let decision = audit.decide("app9", &t);
    assert_eq!(decision.verdict, Verdict::Audit(DenyReason::NotAllowlisted));
    let targets: Vec<_> = decision.dial_targets(&t).collect();
    assert_eq!(
        targets,
        vec![DialTarget::Checked("10.0.0.1:22".parse().unwrap())]
    );
}

#[test]
fn nested_address_prefixes_try_every_covering_prefix() {
    let own = |n: &str| Visibility::Namespaces(vec![ns(n)]);
    let mut policy = Policy::new(Mode::Enforce, []);
    policy.add(
        rule("app1", "wide-443", &[(443, Inspection::Opaque)]),
        &own("app1"),
        &[],
        &["8.8.0.0/16".parse().unwrap()],
    );
    policy.add(
        rule("app1", "narrow-22", &[(22, Inspection::Opaque)]),
        &own("app1"),
        &[],
        &["8.8.8.0/24".parse().unwrap()],
    );
    policy.add(
        rule("shared", "host-8080", &[(8080, Inspection::Opaque)]),
        &Visibility::Everyone,
        &[],
        &["8.8.8.8/32".parse().unwrap()],
    );
    policy.add(
        rule("shared", "wide-22", &[(22, Inspection::Opaque)]),
        &Visibility::Everyone,
        &[],
        &["8.0.0.0/8".parse().unwrap()],
    );
    let deny = |reason| Verdict::Deny(reason);
    let cases: &[(&str, u16, Verdict, Option<&str>)] = &[
        ("8.8.8.8", 443, Verdict::Allow, Some("app1/wide-443")),
        ("8.8.8.8", 22, Verdict::Allow, Some("app1/narrow-22")),
        ("8.8.8.8", 8080, Verdict::Allow, Some("shared/host-8080")),
        ("8.8.9.9", 443, Verdict::Allow, Some("app1/wide-443")),
        ("8.8.9.9", 22, Verdict::Allow, Some("shared/wide-22")),
        ("8.9.9.9", 22, Verdict::Allow, Some("shared/wide-22")),
        ("8.8.8.8", 25, deny(DenyReason::PortNotAllowed), None),
        ("8.9.9.9", 443, deny(DenyReason::PortNotAllowed), None),
        ("9.9.9.9", 443, deny(DenyReason::NotAllowlisted), None),
    ];
    for (ip, port, verdict, entry) in cases {
        let t = target(ip, *port);
        let decision = policy.decide("app1", &t);
        assert_eq!(decision.verdict, *verdict, "{ip}:{port}");
        assert_eq!(
            decision.rule.map(|r| r.label.as_ref()),
            *entry,
            "{ip}:{port}"
        );
    }
}

/// `rule` expiring at `at`.
fn expiring(owner: &str, name: &str, at: std::time::SystemTime) -> Rule {
    let expires = crate::config::serviceentry::Expiry {
        at,
        unix_seconds: 0,
        written: "".into(),
    };
    Rule {
        annotations: Some(Arc::new(crate::config::serviceentry::EntryAnnotations {
            expires: Some(expires),
            owner: None,
            ticket: None,
        })),
        ..rule(owner, name, &[(443, Inspection::Sni)])
    }
}

#[test]
fn a_rule_past_its_expiry_is_skipped_as_if_absent() {
    use std::time::{Duration, SystemTime};
    let own = Visibility::Namespaces(vec![ns("app1")]);
    let past = SystemTime::now() - Duration::from_secs(1);
    let future = SystemTime::now() + Duration::from_secs(3600);
    let mut policy = Policy::new(Mode::Enforce, []);
    policy.add(
        expiring("app1", "gone", past),
        &own,
        &patterns(&["gone.example"]),
        &[],
    );
    policy.add(
        expiring("app1", "old", past),
        &own,
        &patterns(&["both.example"]),
        &[],
    );
    policy.add(
        expiring("app1", "new", future),
        &own,
        &patterns(&["both.example"]),
        &[],
    );
    let decide = |host: &str| {
        let decision = policy.decide("app1", &target(host, 443));
        (decision.verdict, decision.rule.map(|r| r.name.to_string()))
    };
    assert_eq!(
        decide("gone.example"),
        (Verdict::Deny(DenyReason::NotAllowlisted), None),
        "an expired rule does not even count as a host match"
    );
    assert_eq!(
        decide("both.example"),
        (Verdict::Allow, Some("new".to_owned())),
        "a live rule behind an expired one still allows"
    );
}
