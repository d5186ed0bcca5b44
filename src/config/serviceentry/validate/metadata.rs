//! The object header: `apiVersion`, `kind`, `metadata.name`, `metadata.namespace` and the
//! gateway's `egress-gateway.io/*` annotations.
//!
//! Owns the accepted API versions and the Kubernetes object-name rule. Must not look into `spec`.

use crate::config::serviceentry::annotations::EntryAnnotations;
use crate::config::serviceentry::wire::ServiceEntry;
use crate::names::Namespace;

use super::{is_dns1123_label, Findings, MAX_OBJECT_NAME_LEN};

/// The API versions that share the ServiceEntry schema.
const API_VERSIONS: [&str; 3] = [
    "networking.istio.io/v1",
    "networking.istio.io/v1beta1",
    "networking.istio.io/v1alpha3",
];

/// `apiVersion`, `kind` and `metadata`.
pub(super) fn check_header(se: &ServiceEntry, out: &mut Findings) {
    if !API_VERSIONS.contains(&se.api_version.as_str()) {
        out.error(
            "apiVersion",
            format!(
                "apiVersion {:?} is not a ServiceEntry API version; use one of {}",
                se.api_version,
                API_VERSIONS.join(", ")
            ),
        );
    }
    if se.kind != "ServiceEntry" {
        out.error("kind", format!("kind {:?} is not ServiceEntry", se.kind));
    }
    match se.metadata.name.as_deref() {
        None | Some("") => out.error(
            "metadata.name",
            "metadata.name is required: every ServiceEntry needs a name, unique in its namespace",
        ),
        Some(name) => check_object_name(name, out),
    }
    if let Some(ns) = se.metadata.namespace.as_deref() {
        if let Err(message) = Namespace::parse(ns) {
            out.error(
                "metadata.namespace",
                format!("metadata.namespace {message}"),
            );
        }
    }
    if let Err(problems) = EntryAnnotations::parse(&se.metadata) {
        for problem in problems {
            out.error(problem.path, problem.message);
        }
    }
}

/// A Kubernetes object name is a DNS-1123 subdomain. Upper case is only warned about: Istio's own
/// test data uses it and istiod does not check names (the API server would refuse them).
fn check_object_name(name: &str, out: &mut Findings) {
    let lower = name.to_ascii_lowercase();
    let valid = lower.len() <= MAX_OBJECT_NAME_LEN
        && lower
            .split('.')
            .all(|label| is_dns1123_label(label) && !label.bytes().any(|b| b.is_ascii_uppercase()));
    if !valid {
        out.error(
            "metadata.name",
            format!(
                "metadata.name {name:?} is not a valid name: use lowercase letters, digits, '-' and \
                 '.', starting and ending with a letter or digit, at most {MAX_OBJECT_NAME_LEN}"
            ),
        );
    } else if lower != name {
        out.warn(
            "metadata.name",
            format!(
                "metadata.name {name:?} has upper-case letters, which Kubernetes refuses; \
                 did you mean {lower:?}?"
            ),
        );
    }
}
