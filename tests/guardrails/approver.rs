//! cert-manager approver-policy's rule for tenant client certificates, evaluated as
//! approver-policy does (`self` = one requested URI, `cr` = the request's namespace and name):
//! a namespace obtains its own SPIFFE ID and no other tenant's.

use std::collections::HashMap;
use std::sync::Arc;

use cel_interpreter::objects::{Key, Map};
use cel_interpreter::{Context, Program, Value};

use super::vap;

const POLICIES: &str = "deploy/identity/certificaterequestpolicies.yaml";

struct UriRule {
    program: Program,
    message: String,
}

fn tenant_uri_rules() -> Vec<UriRule> {
    let policy = vap::find_object(POLICIES, "CertificateRequestPolicy", "egress-tenant-spiffe");
    let uris = &policy["spec"]["allowed"]["uris"];
    assert_eq!(
        uris["required"], true,
        "a tenant certificate must carry a SPIFFE ID"
    );
    assert!(
        uris.get("values").is_none(),
        "a wildcard `values` would not tie the ID to the namespace"
    );
    uris["validations"]
        .as_sequence()
        .expect("uris.validations")
        .iter()
        .map(|v| {
            let rule = v["rule"].as_str().expect("rule");
            UriRule {
                program: Program::compile(rule)
                    .unwrap_or_else(|e| panic!("{POLICIES}: {e}\n{rule}")),
                message: v["message"].as_str().expect("message").to_owned(),
            }
        })
        .collect()
}

/// The first rule `uri` breaks when requested from `namespace`, if any.
fn refusal(rules: &[UriRule], namespace: &str, uri: &str) -> Option<String> {
    let mut context = Context::default();
    context.add_variable_from_value("self", Value::String(Arc::new(uri.to_owned())));
    let cr: HashMap<Key, Value> = [("namespace", namespace), ("name", "egress-client-1")]
        .into_iter()
        .map(|(k, v)| {
            (
                Key::String(Arc::new(k.into())),
                Value::String(Arc::new(v.into())),
            )
        })
        .collect();
    context.add_variable_from_value("cr", Value::Map(Map { map: Arc::new(cr) }));
    rules
        .iter()
        .find_map(|rule| match rule.program.execute(&context) {
            Ok(Value::Bool(true)) => None,
            Ok(Value::Bool(false)) => Some(rule.message.clone()),
            other => panic!("rule on {uri:?} gave {other:?}"),
        })
}

#[test]
fn a_namespace_obtains_its_own_spiffe_id_only() {
    let rules = tenant_uri_rules();
    assert!(!rules.is_empty());
    for uri in [
        "spiffe://cluster.local/ns/app1/sa/default",
        "spiffe://cluster.local/ns/app1/sa/billing-worker.v2",
    ] {
        assert_eq!(refusal(&rules, "app1", uri), None, "{uri}");
    }
    for uri in [
        "spiffe://cluster.local/ns/app2/sa/default",
        "spiffe://cluster.local/ns/app1-evil/sa/default",
        "spiffe://cluster.local/ns/app1/sa/default/../../ns/app2/sa/default",
        "spiffe://cluster.local/ns/app1/sa/",
        "spiffe://other.domain/ns/app1/sa/default",
        "spiffe://cluster.local/ns/app1/sa/Default",
        "https://cluster.local/ns/app1/sa/default",
        "spiffe://cluster.localXns/app1/sa/default",
    ] {
        let message =
            refusal(&rules, "app1", uri).unwrap_or_else(|| panic!("{uri} was approved for app1"));
        assert!(
            message.contains("only request its own SPIFFE ID"),
            "{message}"
        );
    }
    // The same ID requested from its own namespace is fine: the rule depends on the request.
    assert_eq!(
        refusal(&rules, "app2", "spiffe://cluster.local/ns/app2/sa/default"),
        None
    );
}

/// The policy's trust domain is the one the gateway trusts, and the example certificate passes.
#[test]
fn the_policy_matches_the_gateway_and_the_example_certificate() {
    let gateway = vap::documents("deploy/base/config/gateway.yaml").remove(0);
    let domain = gateway["identity"]["trust_domain"]
        .as_str()
        .expect("trust_domain");
    let rules = tenant_uri_rules();
    let own = format!("spiffe://{domain}/ns/app1/sa/default");
    assert_eq!(
        refusal(&rules, "app1", &own),
        None,
        "trust domain {domain} differs from the policy's"
    );

    let example = vap::find_object(
        "deploy/examples/cert-manager/tenant-certificate.yaml",
        "Certificate",
        "egress-client",
    );
    let namespace = example["metadata"]["namespace"].as_str().unwrap();
    for uri in example["spec"]["uris"].as_sequence().unwrap() {
        assert_eq!(refusal(&rules, namespace, uri.as_str().unwrap()), None);
    }
    let policy = vap::find_object(POLICIES, "CertificateRequestPolicy", "egress-tenant-spiffe");
    assert_eq!(
        policy["spec"]["selector"]["issuerRef"]["name"],
        example["spec"]["issuerRef"]["name"]
    );
}
