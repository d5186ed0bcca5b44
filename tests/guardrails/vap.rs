//! A small ValidatingAdmissionPolicy evaluator over `cel-interpreter`: it reads a policy from
//! the YAML the cluster gets (never a copy of its expressions), binds the variables the API
//! server binds (`object`, `oldObject`, `request`, `params`, `variables`) and applies
//! matchConditions, variables and validations in the API server's order, so a test can say
//! "this request is refused with that message".

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cel_interpreter::extractors::This;
use cel_interpreter::objects::{Key, Map};
use cel_interpreter::{Context, Program, Value};
use serde::Deserialize;

/// The repository root, where `deploy/` lives.
pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Every YAML document of a file, parsed.
pub fn documents(relative: &str) -> Vec<serde_yaml::Value> {
    let path = repo_path(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| {
            serde_yaml::Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .filter(|doc| !doc.is_null())
        .collect()
}

/// The one document of `kind` named `name` in a file.
pub fn find_object(relative: &str, kind: &str, name: &str) -> serde_yaml::Value {
    documents(relative)
        .into_iter()
        .find(|doc| doc["kind"] == kind && doc["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{relative}: no {kind} {name}"))
}

/// A YAML value as CEL sees the same JSON object: integers as `int`, maps with string keys.
pub fn to_cel(value: &serde_yaml::Value) -> Value {
    match value {
        serde_yaml::Value::Null => Value::Null,
        serde_yaml::Value::Bool(b) => Value::Bool(*b),
        serde_yaml::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().expect("a YAML number is an i64 or an f64")),
        },
        serde_yaml::Value::String(s) => Value::String(Arc::new(s.clone())),
        serde_yaml::Value::Sequence(items) => {
            Value::List(Arc::new(items.iter().map(to_cel).collect()))
        }
        serde_yaml::Value::Mapping(map) => {
            let entries: HashMap<Key, Value> = map
                .iter()
                .map(|(k, v)| {
                    let key = k.as_str().expect("object keys are strings");
                    (Key::String(Arc::new(key.to_owned())), to_cel(v))
                })
                .collect();
            Value::Map(Map {
                map: Arc::new(entries),
            })
        }
        serde_yaml::Value::Tagged(tagged) => to_cel(&tagged.value),
    }
}

/// Parses YAML written inline in a test.
pub fn yaml(text: &str) -> serde_yaml::Value {
    serde_yaml::from_str(text).unwrap_or_else(|e| panic!("sample does not parse: {e}\n{text}"))
}

/// An admission request as the API server describes it to CEL.
#[derive(Clone)]
pub struct Request {
    /// CREATE, UPDATE or DELETE.
    pub operation: &'static str,
    /// The object's name.
    pub name: String,
    /// The object's namespace ("" for cluster-scoped objects).
    pub namespace: String,
    /// The requesting user.
    pub username: String,
    /// The requesting user's groups.
    pub groups: Vec<String>,
    /// The object after the change (absent on DELETE).
    pub object: Option<serde_yaml::Value>,
    /// The object before the change (absent on CREATE).
    pub old_object: Option<serde_yaml::Value>,
}

impl Request {
    /// A tenant's user (in group `system:authenticated` only) asking for `operation`.
    pub fn by_tenant(
        operation: &'static str,
        namespace: &str,
        object: Option<&str>,
        old: Option<&str>,
    ) -> Self {
        let object = object.map(yaml);
        let old_object = old.map(yaml);
        let name = object
            .as_ref()
            .or(old_object.as_ref())
            .and_then(|o| o["metadata"]["name"].as_str())
            .unwrap_or_default()
            .to_owned();
        Request {
            operation,
            name,
            namespace: namespace.to_owned(),
            username: format!("system:serviceaccount:{namespace}:deployer"),
            groups: vec![
                "system:serviceaccounts".into(),
                "system:authenticated".into(),
            ],
            object,
            old_object,
        }
    }

    /// The same request made by a member of the given group.
    pub fn in_group(mut self, group: &str) -> Self {
        self.username = "platform-engineer".into();
        self.groups.push(group.to_owned());
        self
    }

    fn to_cel(&self) -> Value {
        yaml_map(&[
            ("operation", Value::String(Arc::new(self.operation.into()))),
            ("name", Value::String(Arc::new(self.name.clone()))),
            ("namespace", Value::String(Arc::new(self.namespace.clone()))),
            (
                "userInfo",
                yaml_map(&[
                    ("username", Value::String(Arc::new(self.username.clone()))),
                    (
                        "groups",
                        Value::List(Arc::new(
                            self.groups
                                .iter()
                                .map(|g| Value::String(Arc::new(g.clone())))
                                .collect(),
                        )),
                    ),
                ]),
            ),
        ])
    }
}

fn yaml_map(entries: &[(&str, Value)]) -> Value {
    let map: HashMap<Key, Value> = entries
        .iter()
        .map(|(k, v)| (Key::String(Arc::new((*k).to_owned())), v.clone()))
        .collect();
    Value::Map(Map { map: Arc::new(map) })
}

/// What the API server answers.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// A matchCondition is false: the policy does not apply.
    NotMatched,
    /// Every validation holds.
    Allowed,
    /// The first failing validation's message.
    Refused(String),
}

struct Named {
    name: String,
    source: String,
    program: Program,
}

/// One ValidatingAdmissionPolicy, compiled.
pub struct Policy {
    label: String,
    operations: Vec<String>,
    match_conditions: Vec<Named>,
    variables: Vec<Named>,
    validations: Vec<Named>,
}

/// A CEL context with what the Kubernetes CEL environment has and `cel-interpreter` lacks:
/// `dyn()`, the type checker's escape hatch, which at run time returns its argument.
pub fn kubernetes_context() -> Context<'static> {
    let mut context = Context::default();
    context.add_function(
        "dyn",
        |This(value): This<Value>| -> cel_interpreter::ResolveResult { Ok(value) },
    );
    context
}

fn compile(label: &str, field: &str, source: &str) -> Program {
    Program::compile(source)
        .unwrap_or_else(|e| panic!("{label} {field}: CEL does not compile: {e}\n{source}"))
}

impl Policy {
    /// Reads the ValidatingAdmissionPolicy `name` from `relative` (a path below the repository).
    pub fn load(relative: &str, name: &str) -> Self {
        let doc = find_object(relative, "ValidatingAdmissionPolicy", name);
        let label = format!("{relative} {name}");
        let spec = &doc["spec"];
        let list = |field: &str, expr_key: &str, name_key: &str| -> Vec<Named> {
            spec[field]
                .as_sequence()
                .map(|items| {
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| {
                            let source = item[expr_key]
                                .as_str()
                                .unwrap_or_else(|| panic!("{label} {field}[{i}] has no {expr_key}"))
                                .to_owned();
                            let name = item[name_key]
                                .as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| format!("{i}"));
                            Named {
                                program: compile(&label, field, &source),
                                name,
                                source,
                            }
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let operations = spec["matchConstraints"]["resourceRules"]
            .as_sequence()
            .into_iter()
            .flatten()
            .flat_map(|rule| {
                rule["operations"]
                    .as_sequence()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|op| op.as_str().map(str::to_owned))
            .collect();
        Policy {
            match_conditions: list("matchConditions", "expression", "name"),
            variables: list("variables", "expression", "name"),
            validations: list("validations", "expression", "message"),
            operations,
            label,
        }
    }

    /// How many validations the policy has, so a test can prove it exercised each one.
    pub fn validation_messages(&self) -> Vec<String> {
        self.validations.iter().map(|v| v.name.clone()).collect()
    }

    /// Evaluates the policy on `request` as the API server would.
    pub fn admit(&self, request: &Request) -> Verdict {
        assert!(
            self.operations
                .iter()
                .any(|op| op == request.operation || op == "*"),
            "{}: does not intercept {}",
            self.label,
            request.operation
        );
        let mut context = kubernetes_context();
        let object = request.object.as_ref().map(to_cel).unwrap_or(Value::Null);
        let old_object = request
            .old_object
            .as_ref()
            .map(to_cel)
            .unwrap_or(Value::Null);
        context.add_variable_from_value("object", object);
        context.add_variable_from_value("oldObject", old_object);
        context.add_variable_from_value("request", request.to_cel());
        context.add_variable_from_value("params", Value::Null);
        for condition in &self.match_conditions {
            if !self.truth(&context, condition, "matchCondition") {
                return Verdict::NotMatched;
            }
        }
        let mut variables: Vec<(&str, Value)> = Vec::new();
        for variable in &self.variables {
            context.add_variable_from_value("variables", yaml_map(&variables));
            let value = variable.program.execute(&context).unwrap_or_else(|e| {
                panic!(
                    "{}: variable {} fails: {e}\n{}",
                    self.label, variable.name, variable.source
                )
            });
            variables.push((variable.name.as_str(), value));
        }
        context.add_variable_from_value("variables", yaml_map(&variables));
        for validation in &self.validations {
            if !self.truth(&context, validation, "validation") {
                return Verdict::Refused(validation.name.clone());
            }
        }
        Verdict::Allowed
    }

    fn truth(&self, context: &Context, named: &Named, what: &str) -> bool {
        match named.program.execute(context) {
            Ok(Value::Bool(b)) => b,
            Ok(other) => panic!(
                "{}: {what} {:?} is not a bool: {other:?}",
                self.label, named.source
            ),
            Err(e) => panic!("{}: {what} fails: {e}\n{}", self.label, named.source),
        }
    }
}
