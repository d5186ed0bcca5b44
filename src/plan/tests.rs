//! Table tests of the planner over a small compiled config: one row per thing a tenant can ask.

use super::*;
use crate::identify::Presented;
use crate::names::Namespace;
use crate::sniff::connect_head::parse_authority;

const GATEWAY: &str = r#"
listeners:
  connect: {address: "127.0.0.1:0"}
identity:
  trust_domain: cluster.local
  sources:
    - {cidr: "127.0.0.2/32", namespace: app1}
    - {cidr: "127.0.0.4/32", namespace: watched}
enforcement:
  namespaces: {watched: audit}
"#;

const ENTRIES: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: app1}
spec:
  hosts: ["api.example.com"]
  ports: [{number: 443, name: https, protocol: TLS}, {number: 80, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: app1}
spec:
  hosts: ["db.example.com"]
  ports: [{number: 5432, name: pg, protocol: TCP}]
  resolution: DNS
"#;

fn snapshot() -> Snapshot {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("gateway.yaml"), GATEWAY).expect("gateway.yaml");
    std::fs::create_dir_all(dir.path().join("serviceentries")).expect("mkdir");
    std::fs::write(dir.path().join("serviceentries/app1.yaml"), ENTRIES).expect("entries");
    let loaded = crate::config::load(dir.path()).expect("config loads");
    crate::snapshot::compile(&loaded, 1).expect("config compiles")
}

fn source(ip: &str) -> Presented {
    Presented::SourceAddress(ip.parse().expect("ip"))
}

fn certificate(uri_sans: &[&str]) -> Presented {
    Presented::Certificate {
        uri_sans: uri_sans.iter().map(|s| (*s).to_owned()).collect(),
    }
}

fn hello(names: &[&str], ech: bool) -> HelloSummary {
    HelloSummary {
        server_name: names.first().map(|n| (*n).to_owned()),
        server_name_count: names.len(),
        ech,
        ..HelloSummary::default()
    }
}

fn outcome(plan: &Plan<'_>) -> String {
    match plan.decision.verdict {
        Verdict::Allow => "allow".to_owned(),
        Verdict::Audit(reason) => format!("audit {reason}"),
        Verdict::Deny(reason) => format!("deny {reason}"),
    }
}

#[test]
fn identity_comes_from_what_the_listener_trusts() {
    let snapshot = snapshot();
    let cases = [
        (Listener::Connect, source("127.0.0.2"), Some("app1")),
        (Listener::Connect, source("127.0.0.9"), None),
        (Listener::ConnectTls, source("127.0.0.2"), None),
        (
            Listener::ConnectTls,
            certificate(&["spiffe://cluster.local/ns/app1/sa/web"]),
            Some("app1"),
        ),
        (
            Listener::ConnectTls,
            certificate(&[
                "spiffe://cluster.local/ns/app1/sa/web",
                "spiffe://cluster.local/ns/app2/sa/web",
            ]),
            None,
        ),
        (Listener::ConnectTls, certificate(&[]), None),
        (
            Listener::ConnectTls,
            certificate(&["spiffe://other.domain/ns/app1/sa/web"]),
            None,
        ),
        (
            Listener::Connect,
            certificate(&["spiffe://cluster.local/ns/app1/sa/web"]),
            None,
        ),
    ];
    for (listener, presented, want) in cases {
        let tenant = identify(&snapshot, listener, &presented);
        assert_eq!(
            tenant.namespace().map(Namespace::as_str),
            want,
            "{listener} {presented:?}"
        );
    }
}

#[test]
fn every_ask_goes_through_one_table() {
    let snapshot = snapshot();
    let app1 = identify(&snapshot, Listener::Connect, &source("127.0.0.2"));
    let stranger = identify(&snapshot, Listener::Connect, &source("127.0.0.9"));
    let watched = identify(&snapshot, Listener::Connect, &source("127.0.0.4"));
    let connect = |tenant: &Tenant, authority: &str| {
        let target = parse_authority(authority).expect("authority");
        outcome(&plan(
            &snapshot,
            tenant,
            Listener::Connect,
            &Ask::Connect(&target),
        ))
    };
    assert_eq!(connect(&app1, "api.example.com:443"), "allow");
    assert_eq!(
        connect(&app1, "api.example.com:22"),
        "deny port_not_allowed"
    );
    assert_eq!(
        connect(&app1, "evil.example.com:443"),
        "deny not_allowlisted"
    );
    assert_eq!(
        connect(&stranger, "api.example.com:443"),
        "deny unknown_tenant"
    );
    assert_eq!(
        connect(&watched, "evil.example.com:443"),
        "audit not_allowlisted"
    );
    let port_zero = |tenant: &Tenant| {
        let target = Target {
            host: Host::parse("api.example.com").expect("host"),
            port: 0,
        };
        outcome(&plan(
            &snapshot,
            tenant,
            Listener::Connect,
            &Ask::Connect(&target),
        ))
    };
    assert_eq!(port_zero(&app1), "deny malformed_request");
    assert_eq!(port_zero(&stranger), "deny malformed_request");

    let sni = |tenant: &Tenant, names: &[&str], ech: bool| {
        let hello = hello(names, ech);
        let ask = Ask::ClientHello {
            hello: &hello,
            port: 443,
        };
        outcome(&plan(&snapshot, tenant, Listener::Sni, &ask))
    };
    assert_eq!(sni(&app1, &["api.example.com"], false), "allow");
    assert_eq!(sni(&app1, &["api.example.com."], false), "allow");
    assert_eq!(sni(&app1, &[], false), "deny missing_sni");
    assert_eq!(
        sni(&app1, &["api.example.com", "evil.example.com"], false),
        "deny malformed_request"
    );
    assert_eq!(
        sni(&app1, &["203.0.113.7"], false),
        "deny malformed_request"
    );
    assert_eq!(
        sni(&app1, &["api.example.com"], true),
        "deny encrypted_client_hello"
    );
    assert_eq!(
        sni(&stranger, &["api.example.com"], false),
        "deny unknown_tenant"
    );

    let request = |tenant: &Tenant, authority: Option<&str>, host: Option<&str>| {
        let head = RequestHead {
            scheme: authority.map(|_| "http"),
            authority,
            host,
            host_count: usize::from(host.is_some()),
            connect_method: false,
        };
        let ask = Ask::Request {
            head,
            default_port: 80,
        };
        let plan = plan(&snapshot, tenant, Listener::Http, &ask);
        (outcome(&plan), plan.host_header)
    };
    assert_eq!(
        request(&app1, Some("api.example.com"), Some("evil.example.com")),
        ("allow".to_owned(), Some("api.example.com".to_owned()))
    );
    assert_eq!(
        request(&app1, None, Some("evil.example.com")).0,
        "deny not_allowlisted"
    );
    assert_eq!(request(&app1, None, None).0, "deny malformed_request");
}

#[test]
fn tunnels_carry_their_obligations() {
    let snapshot = snapshot();
    let app1 = identify(&snapshot, Listener::Connect, &source("127.0.0.2"));
    let tls = parse_authority("api.example.com:443").expect("authority");
    let tls_plan = plan(&snapshot, &app1, Listener::Connect, &Ask::Connect(&tls));
    let expected = Hostname::parse("api.example.com").expect("name");
    assert_eq!(tls_plan.obligation, Obligation::Sni(expected));
    let after = |names: &[&str], ech: bool| tls_plan.after_hello(&hello(names, ech));
    assert_eq!(after(&["api.example.com"], false), Verdict::Allow);
    assert_eq!(
        after(&["evil.example.com"], false),
        Verdict::Deny(DenyReason::SniMismatch)
    );
    assert_eq!(after(&[], false), Verdict::Deny(DenyReason::MissingSni));
    assert_eq!(
        after(&["api.example.com", "x.example.com"], false),
        Verdict::Deny(DenyReason::MalformedRequest)
    );
    assert_eq!(
        after(&["api.example.com"], true),
        Verdict::Deny(DenyReason::EncryptedClientHello)
    );

    let http = parse_authority("api.example.com:80").expect("authority");
    let http_plan = plan(&snapshot, &app1, Listener::Connect, &Ask::Connect(&http));
    assert_eq!(http_plan.obligation, Obligation::Host(http.clone()));
    let head = |host| RequestHead {
        host: Some(host),
        host_count: 1,
        ..RequestHead::default()
    };
    assert_eq!(
        http_plan.within_tunnel(&head("api.example.com")),
        Verdict::Allow
    );
    assert_eq!(
        http_plan.within_tunnel(&head("evil.example.com")),
        Verdict::Deny(DenyReason::HostMismatch)
    );

    let tcp = parse_authority("db.example.com:5432").expect("authority");
    let tcp_plan = plan(&snapshot, &app1, Listener::Connect, &Ask::Connect(&tcp));
    assert_eq!(tcp_plan.obligation, Obligation::None);
}
