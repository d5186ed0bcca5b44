//! Derives the set of keys a serde type accepts from serde itself: a YAML document with one
//! unknown key at some path makes a `deny_unknown_fields` struct list every field it expects
//! (`unknown field `x`, expected one of `a`, `b``), so walking those answers key by key maps the
//! whole tree. A field added to any such struct shows up here with no change to this file.

use std::collections::BTreeSet;

use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};

/// The key no real struct has.
const PROBE: &str = "zz_probe_key";
/// Deeper than any config nesting; keeps the walk bounded.
const MAX_DEPTH: usize = 8;

/// Every key path `T` accepts, dotted, with `[]` for list elements: `identity.sources[].cidr`.
pub fn keys<T: DeserializeOwned>() -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    walk::<T>(&mut Vec::new(), &mut found);
    found
}

fn walk<T: DeserializeOwned>(path: &mut Vec<String>, found: &mut BTreeSet<String>) {
    if path.len() > MAX_DEPTH {
        return;
    }
    let as_list = fields_at::<T>(path).is_none();
    if as_list {
        path.push("[]".to_owned());
    }
    if let Some(fields) = fields_at::<T>(path) {
        for field in fields {
            path.push(field);
            found.insert(dotted(path));
            walk::<T>(path, found);
            path.pop();
        }
    }
    if as_list {
        path.pop();
    }
}

/// The fields of the struct at `path`, if a struct that denies unknown keys sits there.
fn fields_at<T: DeserializeOwned>(path: &[String]) -> Option<Vec<String>> {
    let mut value = Value::Mapping(Mapping::from_iter([(Value::from(PROBE), Value::from(0))]));
    for segment in path.iter().rev() {
        value = if segment == "[]" {
            Value::Sequence(vec![value])
        } else {
            Value::Mapping(Mapping::from_iter([(Value::from(segment.as_str()), value)]))
        };
    }
    let yaml = serde_yaml::to_string(&value).expect("render probe");
    let message = serde_yaml::from_str::<T>(&yaml).err()?.to_string();
    let expected = message
        .split(&format!("unknown field `{PROBE}`, "))
        .nth(1)?;
    let expected = expected.split(" at line ").next().unwrap_or(expected);
    Some(
        expected
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect(),
    )
}

fn dotted(path: &[String]) -> String {
    let mut out = String::new();
    for segment in path {
        if segment != "[]" && !out.is_empty() {
            out.push('.');
        }
        out.push_str(segment);
    }
    out
}

#[test]
fn the_probe_sees_nested_structs_and_lists() {
    let keys = keys::<egress_gateway::config::gateway::GatewayFile>();
    for key in [
        "listeners.sni.port",
        "identity.sources[].cidr",
        "timeouts.drain",
    ] {
        assert!(keys.contains(key), "{key} missing from {keys:?}");
    }
    assert!(!keys.iter().any(|k| k.contains(PROBE)), "{keys:?}");
}
