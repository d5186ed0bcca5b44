//! Derives the set of keys a serde type accepts from serde itself: a YAML document with one
//! unknown key at some path makes a `deny_unknown_fields` struct list every field it expects
//! (`unknown field `x`, expected one of `a`, `b``), so walking those answers key by key maps the
//! whole tree, through lists (`[]`) and maps of structs (`*` for the key). A field added to any
//! such struct shows up here with no change to this file.

use std::collections::BTreeSet;

use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};

/// The key no real struct has.
const PROBE: &str = "zz_probe_key";
/// A map key standing for any name (a namespace, say) in maps whose values are structs.
const ANY_KEY: &str = "zz_any_name";
/// How a nested level is entered besides as a struct: a list element, or a map value.
const CONTAINERS: [&str; 2] = ["[]", "*"];
/// Deeper than any config nesting; keeps the walk bounded.
const MAX_DEPTH: usize = 8;

/// Every key path `T` accepts, dotted, with `[]` for list elements and `*` for the keys of a map
/// of structs: `identity.sources[].cidr`, `upstream.namespaces.*.direct`.
pub fn keys<T: DeserializeOwned>() -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    walk::<T>(&mut Vec::new(), &mut found);
    found
}

fn walk<T: DeserializeOwned>(path: &mut Vec<String>, found: &mut BTreeSet<String>) {
    if path.len() > MAX_DEPTH {
        return;
    }
    if let Some(fields) = fields_at::<T>(path) {
        for field in fields {
            path.push(field);
            found.insert(dotted(path));
            walk::<T>(path, found);
            path.pop();
        }
        return;
    }
    for container in CONTAINERS {
        path.push(container.to_owned());
        let inside = fields_at::<T>(path).is_some();
        if inside {
            walk::<T>(path, found);
        }
        path.pop();
        if inside {
            return;
        }
    }
}

/// The fields of the struct at `path`, if a struct that denies unknown keys sits there.
fn fields_at<T: DeserializeOwned>(path: &[String]) -> Option<Vec<String>> {
    let mut value = Value::Mapping(Mapping::from_iter([(Value::from(PROBE), Value::from(0))]));
    for segment in path.iter().rev() {
        let key = match segment.as_str() {
            "[]" => {
                value = Value::Sequence(vec![value]);
                continue;
            }
            "*" => ANY_KEY,
            name => name,
        };
        value = Value::Mapping(Mapping::from_iter([(Value::from(key), value)]));
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
        "upstream.namespaces.*.direct",
    ] {
        assert!(keys.contains(key), "{key} missing from {keys:?}");
    }
    assert!(!keys.iter().any(|k| k.contains(PROBE)), "{keys:?}");
}
