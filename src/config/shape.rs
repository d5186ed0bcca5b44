//! Refusing YAML whose shape alone would exhaust the loader, before serde or the position locator
//! build anything from it: nesting deeper than [`MAX_NESTING`] levels, and aliases that expand to
//! more nodes than the file itself holds (a "billion laughs" bomb).
//!
//! One pass over the parser's events with an explicit stack, so no input can overflow the call
//! stack here, and memory stays proportional to the text. It judges only the shape of the YAML,
//! never its meaning; every config file (gateway.yaml and each ServiceEntry file) passes here
//! first.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::Marker;

use super::locate::Position;

/// Deepest nesting of mappings and sequences accepted. A ServiceEntry inside a `kind: List` is
/// about eight levels deep; serde's own limit is 128, and deeper input is only ever an attack.
pub const MAX_NESTING: usize = 64;

/// Nodes that aliases may add to a document beyond this floor are capped at the number of nodes
/// the document writes out itself, so expanding aliases can at most double a document.
pub const ALIAS_NODES_FLOOR: u64 = 10_000;

/// What the check saw of a text that passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Shape {
    /// How many YAML documents the text holds.
    pub documents: usize,
    /// Whether any alias (`*name`) appears: then parts of the text cannot be read on their own.
    pub aliases: bool,
}

/// Why a text was refused, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeProblem {
    /// Where the offending node starts (or where the text stops being YAML).
    pub position: Position,
    /// What is wrong and what to do about it.
    pub message: String,
}

/// Checks every document of `text`; the first problem found stops the check.
pub fn check(text: &str) -> Result<Shape, ShapeProblem> {
    let mut parser = Parser::new_from_str(text);
    let mut walk = Walk::default();
    loop {
        let (event, mark) = parser.next_token().map_err(|err| ShapeProblem {
            position: at(*err.marker()),
            message: format!("invalid YAML: {}", err.info()),
        })?;
        match event {
            Event::StreamEnd => return Ok(walk.shape),
            Event::DocumentStart => walk.shape.documents += 1,
            Event::Alias(_) => walk.shape.aliases = true,
            _ => {}
        }
        walk.on_event(event, mark)?;
    }
}

fn at(mark: Marker) -> Position {
    Position {
        line: mark.line(),
        col: mark.col() + 1,
    }
}

/// One open mapping or sequence: its anchor (0 when none) and the nodes it holds so far, with
/// aliases counted as the size of what they refer to.
struct Open {
    anchor: usize,
    nodes: u64,
}

/// State of the walk through one document, and what it saw of the whole text.
#[derive(Default)]
struct Walk {
    shape: Shape,
    open: Vec<Open>,
    /// Expanded size of each completed anchored node, by the parser's anchor id.
    anchored: HashMap<usize, u64>,
    /// Nodes written out in the document.
    literal: u64,
    /// Nodes aliases add to the document.
    expanded: u64,
}

impl Walk {
    fn on_event(&mut self, event: Event, mark: Marker) -> Result<(), ShapeProblem> {
        match event {
            Event::DocumentStart => {
                *self = Self {
                    shape: self.shape,
                    ..Self::default()
                }
            }
            Event::Scalar(_, _, anchor, _) => {
                self.literal += 1;
                self.completed(anchor, 1);
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                self.literal += 1;
                if self.open.len() >= MAX_NESTING {
                    return Err(ShapeProblem {
                        position: at(mark),
                        message: format!(
                            "nesting deeper than {MAX_NESTING} levels: config files need about ten; refused so that loading cannot exhaust the stack"
                        ),
                    });
                }
                self.open.push(Open { anchor, nodes: 1 });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(done) = self.open.pop() {
                    self.completed(done.anchor, done.nodes);
                }
            }
            Event::Alias(anchor) => {
                let Some(&size) = self.anchored.get(&anchor) else {
                    return Err(ShapeProblem {
                        position: at(mark),
                        message:
                            "alias refers to a node that contains it: recursive aliases are refused"
                                .to_owned(),
                    });
                };
                self.expanded = self.expanded.saturating_add(size);
                if self.expanded > ALIAS_NODES_FLOOR.max(self.literal) {
                    return Err(ShapeProblem {
                        position: at(mark),
                        message: format!(
                            "aliases expand to more than {} nodes, more than the document itself holds ({}): refused as an alias bomb",
                            ALIAS_NODES_FLOOR.max(self.literal),
                            self.literal
                        ),
                    });
                }
                self.add_to_parent(size);
            }
            _ => {}
        }
        Ok(())
    }

    /// A node of `size` expanded nodes ended; it counts towards its parent and its anchor.
    fn completed(&mut self, anchor: usize, size: u64) {
        if anchor != 0 {
            self.anchored.insert(anchor, size);
        }
        self.add_to_parent(size);
    }

    fn add_to_parent(&mut self, size: u64) {
        if let Some(parent) = self.open.last_mut() {
            parent.nodes = parent.nodes.saturating_add(size);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_documents_pass() {
        let text = "kind: ServiceEntry\nspec:\n  hosts: [a.example]\n  ports:\n  - &p {number: 443, name: https}\n---\nkind: List\nitems:\n- spec: {ports: [&q {number: 1}]}\n- spec: {ports: [*q]}\n";
        assert_eq!(
            check(text),
            Ok(Shape {
                documents: 2,
                aliases: true
            })
        );
    }

    #[test]
    fn nesting_one_level_too_deep_is_refused_where_it_starts() {
        let ok = format!("{}x\n", "- ".repeat(MAX_NESTING));
        assert!(check(&ok).is_ok());
        let deep = format!("kind: a\n---\n{}x\n", "- ".repeat(MAX_NESTING + 1));
        let problem = check(&deep).expect_err("too deep");
        assert_eq!(
            problem.position,
            Position {
                line: 3,
                col: 2 * MAX_NESTING + 1
            }
        );
        assert!(problem.message.starts_with("nesting deeper than 64 levels"));
    }

    #[test]
    fn very_deep_block_and_flow_nesting_is_refused_without_recursion() {
        let block = "- ".repeat(200_000);
        assert!(check(&block).is_err());
        let flow = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(check(&flow).is_err());
    }

    #[test]
    fn a_billion_laughs_is_refused_at_the_alias_that_crosses_the_budget() {
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        let mut previous = 'a';
        for name in 'b'..='i' {
            let refs = vec![format!("*{previous}"); 10].join(", ");
            text.push_str(&format!("{name}: &{name} [{refs}]\n"));
            previous = name;
        }
        let problem = check(&text).expect_err("bomb");
        assert!(problem.message.contains("alias bomb"), "{problem:?}");
        assert_eq!(
            problem.position.line, 4,
            "10 + 110 + 1110 + ... crosses 10 000 on line 4"
        );
    }

    #[test]
    fn a_recursive_alias_is_refused() {
        let problem = check("a: &a [1, *a]\n").expect_err("recursive");
        assert!(problem.message.contains("recursive"), "{problem:?}");
    }

    #[test]
    fn syntax_errors_carry_their_position() {
        let problem = check("a: [1, 2\n").expect_err("unclosed");
        assert!(problem.message.starts_with("invalid YAML"), "{problem:?}");
    }
}
