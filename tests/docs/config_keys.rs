//! `docs/configuration.md` against the `gateway.yaml` serde types, and `docs/serviceentries.md`
//! against the ServiceEntry serde types.

use std::collections::BTreeSet;

use egress_gateway::config::gateway::GatewayFile;
use egress_gateway::config::serviceentry::{validate, ServiceEntry};

use super::markdown::{self, fenced_blocks};
use super::{assert_same, doc, repo, serde_probe};

/// Rows of `name`'s tables that describe a key: the first cell is a code span shaped like a key
/// path (`limits.namespaces`, `spec.ports[].number`, `upstream.namespaces.*.direct`), not a
/// value such as `NONE` or `10s`.
fn keyed_rows(name: &str) -> Vec<(String, Vec<String>)> {
    markdown::keyed_rows(&doc(name))
        .into_iter()
        .filter(|(key, _)| {
            key.starts_with(|c: char| c.is_ascii_lowercase())
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.[]*".contains(c))
        })
        .collect()
}

/// Column of the configuration tables that says when a change takes effect.
const APPLIES: usize = 3;

#[test]
fn every_gateway_yaml_key_is_documented_and_every_documented_key_exists() {
    let rows = keyed_rows("configuration.md");
    let documented: BTreeSet<String> = rows.iter().map(|(key, _)| key.clone()).collect();
    let code = serde_probe::keys::<GatewayFile>();
    assert_same(
        "gateway.yaml keys",
        &repo().join("docs/configuration.md"),
        &code,
        &documented,
    );
    for (key, row) in &rows {
        let applies = row.get(APPLIES).map(String::as_str).unwrap_or("");
        assert!(
            applies.starts_with("reload") || applies.starts_with("restart"),
            "docs/configuration.md: `{key}` must say in column {} whether a change applies on \
             `reload` or needs a `restart`, found {applies:?}",
            APPLIES + 1
        );
    }
}

#[test]
fn the_example_config_only_uses_documented_keys() {
    let documented: BTreeSet<String> = keyed_rows("configuration.md")
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    let text = std::fs::read_to_string(repo().join("config/gateway.yaml")).expect("read");
    let example: serde_yaml::Value = serde_yaml::from_str(&text).expect("parse");
    let mut used = BTreeSet::new();
    collect_keys(&example, "", &mut used);
    let missing: Vec<_> = used.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "config/gateway.yaml uses keys docs/configuration.md does not describe: {missing:?}"
    );
}

/// Key paths of a YAML value, descending into maps whose keys are config keys (not namespaces).
fn collect_keys(value: &serde_yaml::Value, prefix: &str, out: &mut BTreeSet<String>) {
    match value {
        serde_yaml::Value::Mapping(map) if !prefix.ends_with("namespaces") => {
            for (key, child) in map {
                let key = key.as_str().expect("string key");
                let path = if prefix.is_empty() {
                    key.to_owned()
                } else {
                    format!("{prefix}.{key}")
                };
                out.insert(path.clone());
                collect_keys(child, &path, out);
            }
        }
        serde_yaml::Value::Sequence(items) => {
            for item in items {
                collect_keys(item, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

/// Kubernetes `metadata` accepts any key (it is not policy); the keys the gateway reads are
/// documented below it.
const OPEN_MAPS: [&str; 1] = ["metadata"];

#[test]
fn every_serviceentry_field_is_documented_and_every_documented_field_exists() {
    let documented: BTreeSet<String> = keyed_rows("serviceentries.md")
        .into_iter()
        .map(|(key, _)| key)
        .filter(|key| {
            !OPEN_MAPS
                .iter()
                .any(|open| key.starts_with(&format!("{open}.")))
        })
        .collect();
    let code = serde_probe::keys::<ServiceEntry>();
    assert_same(
        "ServiceEntry fields",
        &repo().join("docs/serviceentries.md"),
        &code,
        &documented,
    );
}

#[test]
fn the_yaml_examples_in_the_docs_parse_and_validate() {
    for (info, body) in fenced_blocks(&doc("configuration.md")) {
        if info == "yaml" {
            if let Err(err) = serde_yaml::from_str::<GatewayFile>(&body) {
                panic!("docs/configuration.md: an example does not parse: {err}\n{body}");
            }
        }
    }
    let mut entries = 0;
    for (info, body) in fenced_blocks(&doc("serviceentries.md")) {
        if info != "yaml" {
            continue;
        }
        let entry: ServiceEntry = serde_yaml::from_str(&body).unwrap_or_else(|err| {
            panic!("docs/serviceentries.md: an example does not parse: {err}\n{body}")
        });
        let errors: Vec<_> = validate(&entry)
            .into_iter()
            .filter(|finding| finding.is_error())
            .collect();
        assert!(
            errors.is_empty(),
            "docs/serviceentries.md: an example is rejected: {errors:?}\n{body}"
        );
        entries += 1;
    }
    assert!(entries > 0, "docs/serviceentries.md has no yaml examples");
}
