//! Mapping a field path (`spec.ports[1].number`) back to a line and column in a YAML file.
//!
//! serde turns YAML into typed values and forgets positions; validation reports a path. This
//! module re-reads the file's text with a position-aware YAML parser, only when there is an error
//! to report, so the happy path pays nothing. It must not interpret the document's meaning.
//!
//! It pulls the parser's events in a loop with its own stack (the parser's recursive `load` would
//! overflow the call stack on a deeply nested document), and indexes nothing deeper than
//! [`MAX_NESTING`] levels, where keeping every node's path would cost memory quadratic in the
//! depth; a path below that depth is reported at its deepest indexed ancestor.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::Marker;

use super::shape::MAX_NESTING;

/// A 1-based line and column in a file, as editors and `FILE:LINE:COL` expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
}

impl Position {
    fn from_marker(mark: Marker) -> Self {
        Self {
            line: mark.line(),
            col: mark.col() + 1,
        }
    }
}

/// Positions of every node of every document in one file, keyed by document index and path.
///
/// Keys are 64-bit hashes of (document, path), not the paths themselves: a file of 200 000
/// entries has millions of nodes, and keeping each path as a string cost several times the file's
/// size. A collision could only misplace a reported position, never change a decision.
pub struct Locator {
    nodes: HashMap<u64, Spot>,
    documents: usize,
}

/// A position, stored compactly.
#[derive(Debug, Clone, Copy)]
struct Spot {
    line: u32,
    col: u32,
}

impl Spot {
    fn of(position: Position) -> Self {
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Self {
            line: clamp(position.line),
            col: clamp(position.col),
        }
    }

    fn position(self) -> Position {
        Position {
            line: self.line as usize,
            col: self.col as usize,
        }
    }
}

/// The index key of `path` in document `doc`.
fn node_key(doc: usize, path: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    doc.hash(&mut hasher);
    path.hash(&mut hasher);
    hasher.finish()
}

impl Locator {
    /// Indexes `text`; a file that does not even scan yields an empty index (the syntax error is
    /// reported by serde with its own position).
    pub fn new(text: &str) -> Self {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(text);
        while let Ok((event, mark)) = parser.next_token() {
            if matches!(event, Event::StreamEnd) {
                break;
            }
            builder.on_event(event, mark);
        }
        Self {
            nodes: builder.nodes,
            documents: builder.documents,
        }
    }

    /// Where `path` starts in document `doc`; falls back to the nearest enclosing node that
    /// exists (a missing field is reported at its parent), then to the document start.
    pub fn find(&self, doc: usize, path: &str) -> Option<Position> {
        if doc >= self.documents {
            return None;
        }
        let mut candidate = path;
        loop {
            if let Some(spot) = self.nodes.get(&node_key(doc, candidate)) {
                return Some(spot.position());
            }
            match candidate.rfind(['.', '[']) {
                Some(cut) => candidate = &candidate[..cut],
                None => {
                    return self
                        .nodes
                        .get(&node_key(doc, ""))
                        .map(|spot| spot.position())
                }
            }
        }
    }
}

/// One open container on the way down the tree.
enum Frame {
    /// A mapping whose next scalar is a key when `awaiting_key`.
    Map {
        path: String,
        awaiting_key: bool,
        key: String,
    },
    /// A sequence and the index its next element gets.
    Seq { path: String, next: usize },
}

#[derive(Default)]
struct Builder {
    nodes: HashMap<u64, Spot>,
    /// Documents seen so far; the current one is `documents - 1`.
    documents: usize,
    stack: Vec<Frame>,
    /// Containers open below [`MAX_NESTING`], counted but not indexed.
    unindexed: usize,
}

impl Builder {
    /// Path for the node that starts now, and records it; `None` when the event is a map key.
    fn enter_node(&mut self, mark: Marker) -> Option<String> {
        let path = match self.stack.last_mut() {
            None => String::new(),
            Some(Frame::Seq { path, next }) => {
                let child = format!("{path}[{next}]");
                *next += 1;
                child
            }
            Some(Frame::Map {
                path,
                awaiting_key,
                key,
            }) => {
                if *awaiting_key {
                    return None;
                }
                *awaiting_key = true;
                join(path, key)
            }
        };
        if let Some(doc) = self.documents.checked_sub(1) {
            self.nodes
                .entry(node_key(doc, &path))
                .or_insert(Spot::of(Position::from_marker(mark)));
        }
        Some(path)
    }

    fn on_key(&mut self, key: String, mark: Marker) {
        if let Some(Frame::Map {
            path,
            awaiting_key,
            key: slot,
        }) = self.stack.last_mut()
        {
            *awaiting_key = false;
            let child = join(path, &key);
            let at = Position::from_marker(mark);
            if let Some(doc) = self.documents.checked_sub(1) {
                // yaml-rust2 marks a block mapping's start at the `:` of its first key; a mapping
                // starts where that key does (a missing field falls back to this position).
                if let Some(start) = self.nodes.get_mut(&node_key(doc, path)) {
                    if start.line as usize == at.line && start.col as usize > at.col {
                        *start = Spot::of(at);
                    }
                }
                self.nodes.insert(node_key(doc, &child), Spot::of(at));
            }
            *slot = key;
        }
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

impl Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.unindexed > 0 {
            match ev {
                Event::MappingStart(..) | Event::SequenceStart(..) => self.unindexed += 1,
                Event::MappingEnd | Event::SequenceEnd => self.unindexed -= 1,
                _ => {}
            }
            return;
        }
        match ev {
            Event::DocumentStart => {
                self.documents += 1;
                self.stack.clear();
            }
            Event::Scalar(value, ..) if self.enter_node(mark).is_none() => self.on_key(value, mark),
            Event::Alias(_) if self.enter_node(mark).is_none() => self.on_key(String::new(), mark),
            Event::MappingStart(..) | Event::SequenceStart(..)
                if self.stack.len() >= MAX_NESTING =>
            {
                // Counted by its parent (so later siblings keep their index), children not kept.
                self.enter_node(mark);
                self.unindexed = 1;
            }
            Event::MappingStart(..) => {
                // A complex (mapping) key is not something our schemas use; it gets an empty name.
                let path = self.enter_node(mark).unwrap_or_default();
                self.stack.push(Frame::Map {
                    path,
                    awaiting_key: true,
                    key: String::new(),
                });
            }
            Event::SequenceStart(..) => {
                let path = self.enter_node(mark).unwrap_or_default();
                self.stack.push(Frame::Seq { path, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# header\nkind: ServiceEntry\nspec:\n  hosts: [\"a.example\"]\n  ports:\n  - number: 443\n    name: https\n  - {number: 99999, name: b}\n---\nkind: Other\nitems:\n  - spec:\n      hosts: []\n";

    #[test]
    fn finds_keys_and_sequence_elements() {
        let locator = Locator::new(TEXT);
        assert_eq!(locator.find(0, "kind"), Some(Position { line: 2, col: 1 }));
        assert_eq!(
            locator.find(0, "spec.ports[0].number"),
            Some(Position { line: 6, col: 5 })
        );
        assert_eq!(
            locator.find(0, "spec.ports[1].number"),
            Some(Position { line: 8, col: 6 })
        );
        assert_eq!(
            locator.find(0, "spec.hosts[0]"),
            Some(Position { line: 4, col: 11 })
        );
        assert_eq!(
            locator.find(1, "items[0].spec.hosts"),
            Some(Position { line: 13, col: 7 })
        );
    }

    #[test]
    fn missing_fields_fall_back_to_their_parent() {
        let locator = Locator::new(TEXT);
        assert_eq!(
            locator.find(0, "spec.resolution"),
            Some(Position { line: 3, col: 1 })
        );
        assert_eq!(locator.find(0, "metadata.name"), locator.find(0, ""));
        assert_eq!(locator.find(0, ""), Some(Position { line: 2, col: 1 }));
        assert_eq!(
            locator.find(1, "items[0].metadata"),
            Some(Position { line: 12, col: 5 })
        );
        assert_eq!(locator.find(7, "kind"), None);
    }

    #[test]
    fn a_document_nested_far_too_deep_is_indexed_down_to_the_limit_without_recursing() {
        let text = format!("kind: ConfigMap\n---\na:\n{}x\n", "- ".repeat(200_000));
        let locator = Locator::new(&text);
        assert_eq!(locator.find(0, "kind"), Some(Position { line: 1, col: 1 }));
        let deep = format!("a{}", "[0]".repeat(200));
        let limit = format!("a{}", "[0]".repeat(MAX_NESTING - 1));
        assert_eq!(locator.find(1, &deep), locator.find(1, &limit));
        assert!(locator.find(1, &limit).is_some());
    }
}
