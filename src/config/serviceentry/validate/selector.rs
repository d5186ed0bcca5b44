//! `spec.workloadSelector` and the Kubernetes label rules it shares with endpoint labels.
//!
//! Owns the selector rules (exclusive with endpoints, no wildcards, ignored by the gateway) and
//! label key/value syntax. Must not check anything else about endpoints.

use crate::config::serviceentry::wire::{Resolution, ServiceEntrySpec, WorkloadSelector};

use super::{is_dns1123_label, key_path, Findings, MAX_LABEL_LEN, MAX_OBJECT_NAME_LEN};

/// `spec.workloadSelector`: exclusive with endpoints, valid non-wildcard labels; ignored here.
pub(super) fn check_selector(
    spec: &ServiceEntrySpec,
    selector: &WorkloadSelector,
    resolution: Resolution,
    out: &mut Findings,
) {
    let path = "spec.workloadSelector";
    if !spec.endpoints.is_empty() {
        out.error(
            path,
            "only one of workloadSelector or endpoints can be set: they are mutually exclusive ways \
             to name the backends; keep endpoints (the gateway ignores workloadSelector)",
        );
    }
    let labels_path = format!("{path}.labels");
    match &selector.labels {
        Some(labels) if !labels.is_empty() => {
            for (key, value) in labels {
                let key_at = key_path(&labels_path, key);
                if key.is_empty() {
                    out.error(
                        &key_at,
                        format!("empty key is not supported in selector (value {value:?})"),
                    );
                } else if key.contains('*') || value.contains('*') {
                    out.error(
                        &key_at,
                        format!(
                            "wildcard is not supported in selector: {key}={value}; selectors match \
                             exact label values"
                        ),
                    );
                }
            }
            let valid: std::collections::BTreeMap<String, String> = labels
                .iter()
                .filter(|(k, v)| !k.is_empty() && !k.contains('*') && !v.contains('*'))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            check_labels(&labels_path, &valid, "selector label", out);
        }
        _ => out.warn(
            path,
            "workloadSelector has no labels: Istio would apply the entry to every workload in the \
             namespace",
        ),
    }
    if matches!(
        resolution,
        Resolution::None | Resolution::Dns | Resolution::DnsRoundRobin
    ) {
        out.warn(
            path,
            format!("workloadSelector should not be set when resolution is {resolution}"),
        );
    }
    out.warn(
        path,
        "workloadSelector is ignored by the egress gateway: it selects in-mesh workloads, which \
         the gateway never dials",
    );
}

/// Kubernetes label rules (Istio's `labels.Instance.Validate`).
pub(super) fn check_labels(
    path: &str,
    labels: &std::collections::BTreeMap<String, String>,
    what: &str,
    out: &mut Findings,
) {
    for (key, value) in labels {
        let at = key_path(path, key);
        if let Err(message) = check_label_key(key) {
            out.error(&at, format!("{what} key {key:?} is invalid: {message}"));
        }
        if !(value.is_empty() || is_qualified_name(value)) {
            out.error(
                at,
                format!(
                    "{what} value {value:?} (key {key:?}) is invalid: use letters, digits, '-', \
                     '_' and '.', at most {MAX_LABEL_LEN}, starting and ending with a letter or \
                     digit"
                ),
            );
        }
    }
}

fn check_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if prefix.len() > MAX_OBJECT_NAME_LEN || !prefix.split('.').all(is_dns1123_label) {
            return Err(format!(
                "prefix {prefix:?} must be a DNS name, as in `example.com/key`"
            ));
        }
    }
    if !is_qualified_name(name) {
        return Err(format!(
            "name {name:?} must use letters, digits, '-', '_' and '.', at most {MAX_LABEL_LEN}, \
             starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// Kubernetes qualified name (label-key name part, label value): alphanumeric at both ends,
/// `-`, `_` and `.` inside, at most 63.
fn is_qualified_name(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_LABEL_LEN
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}
