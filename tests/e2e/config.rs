//! Config: the box gateway's `gateway.yaml` and the tenants' ServiceEntry files. Listeners bind
//! `[::]` (dual stack: IPv4 clients arrive as mapped addresses), and `identity.sources` names each
//! tenant by an IPv4 and an IPv6 prefix.

use crate::harness::state;
use crate::CONNECT_TIMEOUT;

pub fn gateway_yaml() -> String {
    format!(
        r#"listeners:
  connect: {{address: "[::]:3128"}}
  connect_tls: {{address: "[::]:3129"}}
  sni: {{address: "[::]:15443", port: 443}}
  http: {{address: "[::]:15080", port: 80}}
admin: {{address: "127.0.0.1:9901"}}
tls: {{cert: {gw}, key: {gw_key}, client_ca: {ca}}}
identity:
  trust_domain: cluster.local
  sources:
    - {{cidr: "198.51.100.16/28", namespace: app1}}
    - {{cidr: "198.51.100.32/28", namespace: app2}}
    - {{cidr: "2001:db8:100::10/124", namespace: app1}}
    - {{cidr: "2001:db8:100::30/124", namespace: app2}}
dns:
  servers: ["203.0.113.53:53"]
# The box's "internet" lives in documentation ranges, which the built-in deny list refuses in
# DNS answers like any other not-globally-reachable range: a hole for it, as a lab must punch.
upstream:
  allow_cidrs: ["203.0.113.0/24", "2001:db8:113::/64"]
timeouts: {{connect: {connect}s}}
"#,
        gw = state("gateway.pem"),
        gw_key = state("gateway-key.pem"),
        ca = state("ca.pem"),
        connect = CONNECT_TIMEOUT.as_secs(),
    )
}

fn entry(name: &str, hosts: &[&str], ports: &[(u16, &str)]) -> String {
    let hosts: Vec<String> = hosts.iter().map(|h| format!("\"{h}\"")).collect();
    let ports: Vec<String> = ports
        .iter()
        .map(|(n, p)| {
            format!(
                "{{number: {n}, name: {}-{n}, protocol: {p}}}",
                p.to_lowercase()
            )
        })
        .collect();
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}}}\nspec:\n  hosts: [{}]\n  ports: [{}]\n  resolution: DNS\n",
        hosts.join(", "),
        ports.join(", ")
    )
}

pub fn app1_entries() -> String {
    [
        entry("api", &["api.example.test"], &[(443, "HTTPS")]),
        entry(
            "web",
            &["web.example.test"],
            &[(80, "HTTP"), (8080, "HTTP")],
        ),
        // The dual-stack origins (tests/e2e/dual_stack.rs).
        entry(
            "dual-stack",
            &[
                "v4only.example.test",
                "v6only.example.test",
                "dual.example.test",
                "dropped6.example.test",
            ],
            &[(443, "HTTPS"), (80, "HTTP")],
        ),
        // Allowlisted on purpose: their DNS answers are what the gateway must refuse.
        entry(
            "attacks",
            &[
                "private.example.test",
                "metadata.example.test",
                "loopback.example.test",
                "mapped.example.test",
                "rebind.example.test",
            ],
            &[(443, "HTTPS"), (80, "HTTP")],
        ),
    ]
    .join("---\n")
}

pub fn app2_entries(with_api: bool) -> String {
    let mut docs = vec![entry(
        "other",
        &["other.example.test"],
        &[(443, "HTTPS"), (80, "HTTP")],
    )];
    if with_api {
        docs.push(entry("api", &["api.example.test"], &[(443, "HTTPS")]));
    }
    docs.join("---\n")
}
