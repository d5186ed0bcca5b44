//! The guardrails' CEL, evaluated by a real CEL interpreter against the objects a tenant would
//! send: each allowed change passes, each forbidden one is refused with its own message. The
//! expressions are read from deploy/ (the files the cluster gets), never copied here.

mod approver;
mod vap;

use vap::{Policy, Request, Verdict};

const NETWORKPOLICIES: &str = "deploy/guardrails/networkpolicy-admission.yaml";
const PODS: &str = "deploy/guardrails/pod-admission.yaml";
const NAMESPACES: &str = "deploy/guardrails/namespace-admission.yaml";
const LOCKDOWN: &str = "deploy/components/tenant-lockdown/networkpolicy.yaml";

fn refused_with(verdict: Verdict, needle: &str) {
    match verdict {
        Verdict::Refused(message) => assert!(
            message.contains(needle),
            "refused, but with {message:?}, not {needle:?}"
        ),
        other => panic!("expected a refusal mentioning {needle:?}, got {other:?}"),
    }
}

/// The lock-down policy exactly as the tenant-lockdown component ships it.
fn lockdown_text() -> String {
    let doc = vap::find_object(LOCKDOWN, "NetworkPolicy", "egress-lockdown");
    serde_yaml::to_string(&doc).expect("serialises")
}

const SAME_NAMESPACE_DB: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-to-db, namespace: app1}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Egress, Ingress]
  ingress: [{from: [{namespaceSelector: {}}]}]
  egress:
    - to: [{podSelector: {matchLabels: {app: db}}}]
      ports: [{protocol: TCP, port: 5432}]
"#;

fn networkpolicy(egress: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: wider, namespace: app1}}\n\
         spec:\n  podSelector: {{}}\n  policyTypes: [Egress]\n  egress:\n{egress}"
    )
}

#[test]
fn tenants_may_write_narrow_networkpolicies_and_the_lockdown_itself() {
    let policy = Policy::load(NETWORKPOLICIES, "egress-tenant-networkpolicies");
    let create = Request::by_tenant("CREATE", "app1", Some(SAME_NAMESPACE_DB), None);
    assert_eq!(policy.admit(&create), Verdict::Allowed);
    let lockdown = lockdown_text();
    let own = Request::by_tenant("CREATE", "app1", Some(&lockdown), None);
    assert_eq!(
        policy.admit(&own),
        Verdict::Allowed,
        "the component's own policy passes its guardrail"
    );
    let reapply = Request::by_tenant("UPDATE", "app1", Some(&lockdown), Some(&lockdown));
    assert_eq!(
        policy.admit(&reapply),
        Verdict::Allowed,
        "re-applying it unchanged"
    );
    let delete_other = Request::by_tenant("DELETE", "app1", None, Some(SAME_NAMESPACE_DB));
    assert_eq!(policy.admit(&delete_other), Verdict::Allowed);
}

#[test]
fn tenants_cannot_delete_or_change_the_lockdown() {
    let policy = Policy::load(NETWORKPOLICIES, "egress-tenant-networkpolicies");
    let lockdown = lockdown_text();
    let delete = Request::by_tenant("DELETE", "app1", None, Some(&lockdown));
    refused_with(
        policy.admit(&delete),
        "only the platform team may delete it",
    );

    let widened = lockdown.replace("port: 3128", "port: 22");
    assert_ne!(widened, lockdown);
    let change = Request::by_tenant("UPDATE", "app1", Some(&widened), Some(&lockdown));
    refused_with(
        policy.admit(&change),
        "only the platform team may change it",
    );

    // The platform team and the namespace controller are not subject to the policy.
    assert_eq!(
        policy.admit(&change.clone().in_group("egress-platform-admins")),
        Verdict::NotMatched
    );
    let mut cleanup = delete.clone();
    cleanup.username = "system:serviceaccount:kube-system:namespace-controller".into();
    assert_eq!(policy.admit(&cleanup), Verdict::NotMatched);
}

#[test]
fn tenants_cannot_add_networkpolicies_that_widen_egress() {
    let policy = Policy::load(NETWORKPOLICIES, "egress-tenant-networkpolicies");
    let cases = [
        ("  - {}\n", "without `to` allows every destination"),
        ("  - to: []\n    ports: [{protocol: TCP, port: 443}]\n", "without `to` allows every destination"),
        ("  - to: [{ipBlock: {cidr: 0.0.0.0/0}}]\n", "ipBlock egress peers"),
        ("  - to: [{ipBlock: {cidr: 10.96.0.1/32}}]\n    ports: [{port: 443}]\n", "ipBlock egress peers"),
        ("  - to: [{namespaceSelector: {}}]\n", "limited to DNS (53)"),
        ("  - to: [{namespaceSelector: {}}]\n    ports: [{protocol: TCP, port: 443}]\n", "limited to DNS (53)"),
        (
            "  - to: [{namespaceSelector: {}}]\n    ports: [{protocol: TCP, port: 53, endPort: 65535}]\n",
            "limited to DNS (53)",
        ),
        ("  - to: [{namespaceSelector: {}}]\n    ports: [{protocol: TCP, port: https}]\n", "limited to DNS (53)"),
    ];
    for (egress, message) in cases {
        let object = networkpolicy(egress);
        let create = Request::by_tenant("CREATE", "app1", Some(&object), None);
        refused_with(policy.admit(&create), message);
        let update = Request::by_tenant("UPDATE", "app1", Some(&object), Some(SAME_NAMESPACE_DB));
        refused_with(policy.admit(&update), message);
    }
    let dns_elsewhere = networkpolicy(
        "  - to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}}]\n    \
         ports: [{protocol: UDP, port: 53}, {protocol: TCP, port: 53}]\n",
    );
    let create = Request::by_tenant("CREATE", "app1", Some(&dns_elsewhere), None);
    assert_eq!(policy.admit(&create), Verdict::Allowed);
}

const PLAIN_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: app1}
spec:
  initContainers:
    - name: migrate
      image: registry.example.com/app1/migrate:1
  containers:
    - name: web
      image: registry.example.com/app1/web:1
      ports: [{containerPort: 8080, protocol: TCP}]
      securityContext:
        allowPrivilegeEscalation: false
        privileged: false
        capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}
"#;

#[test]
fn tenants_may_run_ordinary_pods() {
    let policy = Policy::load(PODS, "egress-tenant-pods");
    let create = Request::by_tenant("CREATE", "app1", Some(PLAIN_POD), None);
    assert_eq!(policy.admit(&create), Verdict::Allowed);
    let no_security_context = PLAIN_POD.replace("      securityContext:", "      x-removed:");
    let minimal = vap::yaml(&no_security_context);
    let mut minimal = minimal;
    minimal["spec"]["containers"][0]
        .as_mapping_mut()
        .unwrap()
        .remove("x-removed");
    let text = serde_yaml::to_string(&minimal).unwrap();
    assert_eq!(
        policy.admit(&Request::by_tenant("CREATE", "app1", Some(&text), None)),
        Verdict::Allowed
    );
}

#[test]
fn tenants_cannot_run_pods_that_bypass_the_lockdown() {
    let policy = Policy::load(PODS, "egress-tenant-pods");
    let cases = [
        (PLAIN_POD.replace("spec:\n", "spec:\n  hostNetwork: true\n"), "hostNetwork"),
        (PLAIN_POD.replace("containerPort: 8080,", "containerPort: 8080, hostPort: 8080,"), "hostPort"),
        (PLAIN_POD.replace("add: [NET_BIND_SERVICE]", "add: [NET_ADMIN]"), "NET_ADMIN and NET_RAW"),
        (PLAIN_POD.replace("add: [NET_BIND_SERVICE]", "add: [NET_BIND_SERVICE, NET_RAW]"), "NET_ADMIN and NET_RAW"),
        (PLAIN_POD.replace("privileged: false", "privileged: true"), "privileged containers"),
        (
            PLAIN_POD.replace(
                "      image: registry.example.com/app1/migrate:1\n",
                "      image: registry.example.com/app1/migrate:1\n      securityContext: {capabilities: {add: [NET_ADMIN]}}\n",
            ),
            "NET_ADMIN and NET_RAW",
        ),
        (
            format!(
                "{PLAIN_POD}  ephemeralContainers:\n    - name: debug\n      image: busybox\n      \
                 securityContext: {{capabilities: {{add: [NET_RAW]}}}}\n"
            ),
            "NET_ADMIN and NET_RAW",
        ),
    ];
    for (pod, message) in &cases {
        assert_ne!(
            pod, PLAIN_POD,
            "the sample must change the pod for {message}"
        );
        let create = Request::by_tenant("CREATE", "app1", Some(pod), None);
        refused_with(policy.admit(&create), message);
    }
    // Every validation of the policy is exercised above.
    for message in policy.validation_messages() {
        assert!(
            cases
                .iter()
                .any(|(pod, needle)| message.contains(needle) && !pod.is_empty()),
            "no case refused with {message:?}"
        );
    }
}

const TENANT_NAMESPACE: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: app1
  labels: {egress.example.io/tenant: "true", kubernetes.io/metadata.name: app1}
"#;

#[test]
fn a_tenant_namespace_keeps_its_label() {
    let policy = Policy::load(NAMESPACES, "egress-tenant-namespace-label");
    let relabelled = TENANT_NAMESPACE.replace(
        "egress.example.io/tenant: \"true\", ",
        "team: web, egress.example.io/tenant: \"true\", ",
    );
    let keep = Request::by_tenant("UPDATE", "", Some(&relabelled), Some(TENANT_NAMESPACE));
    assert_eq!(policy.admit(&keep), Verdict::Allowed);
    for dropped in [
        TENANT_NAMESPACE.replace("egress.example.io/tenant: \"true\", ", ""),
        TENANT_NAMESPACE.replace("\"true\"", "\"false\""),
    ] {
        let drop = Request::by_tenant("UPDATE", "", Some(&dropped), Some(TENANT_NAMESPACE));
        refused_with(policy.admit(&drop), "only the platform team may remove it");
        assert_eq!(
            policy.admit(&drop.in_group("system:masters")),
            Verdict::NotMatched
        );
    }
    let other = TENANT_NAMESPACE.replace("egress.example.io/tenant: \"true\", ", "");
    let unrelated = Request::by_tenant("UPDATE", "", Some(&other), Some(&other));
    assert_eq!(policy.admit(&unrelated), Verdict::Allowed);
}

/// The AdminNetworkPolicy locks down exactly the namespaces the bindings guard, and allows no
/// more than the tenant-lockdown component.
#[test]
fn the_admin_network_policy_backs_the_lockdown_in_every_tenant_namespace() {
    let anp = vap::find_object(
        "deploy/guardrails/adminnetworkpolicy.yaml",
        "AdminNetworkPolicy",
        "egress-tenant-lockdown",
    );
    assert_eq!(
        anp["spec"]["subject"]["namespaces"]["matchLabels"]["egress.example.io/tenant"],
        "true"
    );
    for doc in vap::documents(NETWORKPOLICIES)
        .iter()
        .chain(vap::documents(PODS).iter())
    {
        if doc["kind"] == "ValidatingAdmissionPolicyBinding" {
            assert_eq!(
                doc["spec"]["matchResources"]["namespaceSelector"]["matchLabels"]
                    ["egress.example.io/tenant"],
                "true"
            );
        }
    }
    let rules = anp["spec"]["egress"].as_sequence().expect("egress rules");
    let last = rules.last().expect("a final rule");
    assert_eq!(last["action"], "Deny");
    let allowed_ports: Vec<i64> = rules
        .iter()
        .filter(|r| r["action"] == "Allow")
        .flat_map(|r| r["ports"].as_sequence().cloned().unwrap_or_default())
        .map(|p| p["portNumber"]["port"].as_i64().expect("numbered ports"))
        .collect();
    let lockdown = vap::find_object(LOCKDOWN, "NetworkPolicy", "egress-lockdown");
    let mut lockdown_ports: Vec<i64> = lockdown["spec"]["egress"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|r| r["ports"].as_sequence().cloned().unwrap_or_default())
        .map(|p| p["port"].as_i64().unwrap())
        .collect();
    let mut anp_ports = allowed_ports;
    anp_ports.sort();
    lockdown_ports.sort();
    assert_eq!(
        anp_ports, lockdown_ports,
        "the ANP and the component allow the same ports"
    );
}
