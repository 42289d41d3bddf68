//! The YAML file as a loose node tree in which every node and key carries its
//! line and column.
//!
//! # Why a tree, and how it is built
//!
//! A typed `serde` deserialization stops at the first error, and it types a
//! scalar (`007` → 7, `yes` → true, `${N}` → string) before we get a chance
//! to substitute `${VAR}` in it. So the loader works in two passes:
//!
//! 1. `serde-saphyr` reads the text into `serde::de::IgnoredAny`, with a
//!    [`serde_saphyr::Budget`] (depth, node count, alias expansion, scalar
//!    bytes, documents). That rejects hostile YAML (alias bombs, deep
//!    nesting) and reports a syntax error as one error with its position.
//! 2. The same text is read event by event with `granit-parser` (the parser
//!    under serde-saphyr, re-exported by it) into [`Node`]s that keep each
//!    scalar's exact text, whether it was quoted, and its position. Aliases
//!    are expanded (bounded by [`MAX_NODES`]), `<<` merge keys are applied
//!    (explicit keys win), and **every** duplicate key is reported with the
//!    line of its first definition.
//!
//! The validator (`validate.rs`) then walks the tree key by key, substitutes
//! and types each scalar by the key it belongs to, and collects every error.

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle};

use crate::substitute::Protected;

/// Upper bound on nodes in the tree, counting alias expansions.
pub(crate) const MAX_NODES: usize = 200_000;
/// Deepest nesting accepted (the config itself needs 5 levels).
pub(crate) const MAX_DEPTH: usize = 64;

/// 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pos {
    pub line: usize,
    pub col: usize,
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    File(Pos),
    /// An override: the environment variable's name.
    Env(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// Unquoted: subject to null detection (`~`, `null`, empty).
    Plain,
    /// Quoted or block scalar: always a string.
    Quoted,
    /// From an environment override: taken literally, never substituted.
    Env,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Scalar { text: String, style: Style },
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub value: Value,
    pub origin: Origin,
    /// For a scalar written on one line whose source maps one character
    /// to one column (plain, or quoted without escapes): the 1-based column
    /// of its first character, so an error can point inside the value.
    pub text_col: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub key: String,
    pub key_origin: Origin,
    pub value: Node,
}

impl Node {
    /// A node without a column inside its text.
    pub(crate) fn new(value: Value, origin: Origin) -> Node {
        Node {
            value,
            origin,
            text_col: None,
        }
    }

    pub(crate) fn env_scalar(text: &str, var: &str) -> Node {
        Node::new(
            Value::Scalar {
                text: text.to_string(),
                style: Style::Env,
            },
            Origin::Env(var.to_string()),
        )
    }

    pub(crate) fn kind_name(&self) -> &'static str {
        match &self.value {
            Value::Scalar { .. } => "a single value",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    fn size(&self) -> usize {
        match &self.value {
            Value::Scalar { .. } => 1,
            Value::Seq(items) => 1 + items.iter().map(Node::size).sum::<usize>(),
            Value::Map(entries) => 1 + entries.iter().map(|e| 1 + e.value.size()).sum::<usize>(),
        }
    }
}

/// An error found while reading the YAML (position, message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TreeError {
    pub pos: Option<Pos>,
    pub message: String,
}

fn budget_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: MAX_DEPTH,
            max_nodes: MAX_NODES,
            max_documents: 2,
            max_aliases: 10_000,
            max_anchors: 10_000,
            max_total_scalar_bytes: 16 * 1024 * 1024,
        },
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::LastWins,
        with_snippet: false,
    }
}

/// Turns a serde-saphyr error into one line without its location prefix.
fn saphyr_error(err: &serde_saphyr::Error) -> TreeError {
    let pos = err.location().and_then(|l| {
        let (line, col) = (l.line(), l.column());
        (line > 0).then_some(Pos {
            line: line as usize,
            col: col.max(1) as usize,
        })
    });
    let text = err.to_string();
    let first = text.lines().next().unwrap_or("").trim();
    let message = strip_location_prefix(first.strip_prefix("error: ").unwrap_or(first));
    TreeError {
        pos,
        message: format!("invalid YAML: {}", plain_words(&message)),
    }
}

/// Says the parser's internal limits and API names in an operator's words.
fn plain_words(message: &str) -> String {
    if message.contains("budget breached") {
        if message.contains("Depth") {
            return format!("nesting deeper than {MAX_DEPTH} levels");
        }
        if message.contains("Nodes") {
            return "too many YAML nodes (the file is far larger than any config needs)".into();
        }
        if message.contains("Alias") || message.contains("Anchor") {
            return "too many anchors or aliases (possible alias bomb)".into();
        }
        return "the file exceeds the parser's safety limits".into();
    }
    if message.contains("from_str_multiple") {
        return "more than one YAML document (`---`) in the file; put everything in one".into();
    }
    message.to_string()
}

/// `line 4 column 5: msg` → `msg`; `msg at line 4 column 5` → `msg`.
fn strip_location_prefix(s: &str) -> String {
    let mut s = s.trim();
    if let Some(rest) = s.strip_prefix("line ") {
        if let Some(idx) = rest.find(": ") {
            let head = &rest[..idx];
            if head
                .split_whitespace()
                .all(|w| w == "column" || w.chars().all(|c| c.is_ascii_digit()))
            {
                s = &rest[idx + 2..];
            }
        }
    }
    if let Some(idx) = s.rfind(" at line ") {
        s = &s[..idx];
    } else if let Some(idx) = s.rfind(" at char ") {
        s = &s[..idx];
    }
    s.trim().to_string()
}

enum Frame {
    Seq {
        items: Vec<Node>,
        origin: Origin,
        anchor: usize,
    },
    Map {
        entries: Vec<Entry>,
        /// Merge sources (`<<`), in order.
        merges: Vec<Node>,
        /// Key waiting for its value; `None` inside means "skip the value".
        pending: Option<Option<(String, Origin, bool)>>,
        origin: Origin,
        anchor: usize,
    },
}

struct Builder<'p> {
    protected: &'p Protected,
    stack: Vec<Frame>,
    root: Option<Node>,
    anchors: std::collections::HashMap<usize, (Node, usize)>,
    nodes: usize,
    errors: Vec<TreeError>,
}

impl Builder<'_> {
    fn count(&mut self, n: usize) -> Result<(), TreeError> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > MAX_NODES {
            Err(TreeError {
                pos: None,
                message: format!(
                    "the document is too large (more than {MAX_NODES} nodes after expanding aliases)"
                ),
            })
        } else {
            Ok(())
        }
    }

    fn finish_node(&mut self, node: Node, anchor: usize) {
        if anchor != 0 {
            let size = node.size();
            self.anchors.insert(anchor, (node.clone(), size));
        }
        self.push_node(node);
    }

    fn push_node(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                merges,
                pending,
                ..
            }) => match pending.take() {
                None => {
                    // This node is a key.
                    match node.value {
                        Value::Scalar { text, style } => {
                            let is_merge = text == "<<" && style == Style::Plain;
                            *pending = Some(Some((text, node.origin, is_merge)));
                        }
                        _ => {
                            let pos = match &node.origin {
                                Origin::File(p) => Some(*p),
                                Origin::Env(_) => None,
                            };
                            self.errors.push(TreeError {
                                pos,
                                message:
                                    "a mapping key must be a plain string, not a list or mapping"
                                        .to_string(),
                            });
                            *pending = Some(None);
                        }
                    }
                }
                Some(None) => {}
                Some(Some((key, key_origin, is_merge))) => {
                    if is_merge {
                        merges.push(node);
                    } else {
                        entries.push(Entry {
                            key,
                            key_origin,
                            value: node,
                        });
                    }
                }
            },
        }
    }

    fn close_map(
        &mut self,
        mut entries: Vec<Entry>,
        merges: Vec<Node>,
        origin: Origin,
    ) -> Result<Node, TreeError> {
        // Duplicates among explicit keys: report every repeat.
        let mut seen: std::collections::HashMap<&str, &Origin> = std::collections::HashMap::new();
        for e in &entries {
            if let Some(first) = seen.get(e.key.as_str()) {
                let first = match first {
                    Origin::File(p) => format!(" (first defined at line {})", p.line),
                    Origin::Env(_) => String::new(),
                };
                self.errors.push(TreeError {
                    pos: pos_of(&e.key_origin),
                    message: format!("duplicate key `{}`{first}", e.key),
                });
            } else {
                seen.insert(e.key.as_str(), &e.key_origin);
            }
        }
        // Merge keys: entries of merged mappings that are not set explicitly.
        let mut extra = Vec::new();
        for m in merges {
            let sources = match m.value {
                Value::Map(es) => vec![es],
                Value::Seq(items) => {
                    let mut v = Vec::new();
                    for it in items {
                        match it.value {
                            Value::Map(es) => v.push(es),
                            _ => self.errors.push(TreeError {
                                pos: pos_of(&it.origin),
                                message: "`<<` (merge) takes a mapping or a list of mappings"
                                    .to_string(),
                            }),
                        }
                    }
                    v
                }
                Value::Scalar { .. } => {
                    self.errors.push(TreeError {
                        pos: pos_of(&m.origin),
                        message: "`<<` (merge) takes a mapping or a list of mappings".to_string(),
                    });
                    Vec::new()
                }
            };
            for es in sources {
                for e in es {
                    let exists = entries.iter().chain(extra.iter()).any(|x| x.key == e.key);
                    if !exists {
                        extra.push(e);
                    }
                }
            }
        }
        self.count(extra.len())?;
        entries.extend(extra);
        Ok(Node::new(Value::Map(entries), origin))
    }
}

/// The 1-based column of a scalar's first character when its source is
/// one line that maps one character to one column: plain, or single- or
/// double-quoted with no escape (the source is then the text plus the two
/// quotes). `value` is the parsed text (placeholders have the width of the
/// `${…}` tokens they stand for).
fn text_column(
    span: &serde_saphyr::granit_parser::Span,
    style: ScalarStyle,
    value: &str,
) -> Option<usize> {
    if span.start.line() != span.end.line() {
        return None;
    }
    let width = span.end.col().checked_sub(span.start.col())?;
    let chars = value.chars().count();
    match style {
        ScalarStyle::Plain if width == chars => Some(span.start.col() + 1),
        ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted if width == chars + 2 => {
            Some(span.start.col() + 2)
        }
        _ => None,
    }
}

pub(crate) fn pos_of(origin: &Origin) -> Option<Pos> {
    match origin {
        Origin::File(p) => Some(*p),
        Origin::Env(_) => None,
    }
}

/// Parses `raw` (the file text) into a tree. `protected` is `raw` with its
/// `${...}` tokens replaced by placeholders. `Ok(None)`: an empty document.
pub(crate) fn parse(protected: &Protected) -> Result<Option<Node>, Vec<TreeError>> {
    let text = protected.text.as_str();
    // Pass 1: budget and syntax, by serde-saphyr.
    if let Err(e) =
        serde_saphyr::from_str_with_options::<serde::de::IgnoredAny>(text, budget_options())
    {
        return Err(vec![saphyr_error(&e)]);
    }
    // Pass 2: the tree.
    let options = serde_saphyr::granit_parser::options! {
        flow_nesting_limit: MAX_DEPTH,
        block_nesting_limit: MAX_DEPTH,
        emit_comments: false,
    };
    let mut parser = Parser::new_from_str_with_options(text, options);
    let mut b = Builder {
        protected,
        stack: Vec::new(),
        root: None,
        anchors: std::collections::HashMap::new(),
        nodes: 0,
        errors: Vec::new(),
    };
    let mut documents = 0usize;
    while let Some(next) = parser.next_event() {
        let (event, span) = match next {
            Ok(v) => v,
            Err(e) => {
                let m = e.marker();
                return Err(vec![TreeError {
                    pos: Some(Pos {
                        line: m.line().max(1),
                        col: m.col() + 1,
                    }),
                    message: format!("invalid YAML: {}", e.info()),
                }]);
            }
        };
        let origin = Origin::File(Pos {
            line: span.start.line().max(1),
            col: span.start.col() + 1,
        });
        let step = match event {
            Event::DocumentStart(..) => {
                documents += 1;
                if documents > 1 {
                    b.errors.push(TreeError {
                        pos: pos_of(&origin),
                        message: "more than one YAML document (`---`): the config is one document"
                            .to_string(),
                    });
                    break;
                }
                Ok(())
            }
            Event::Scalar(value, style, anchor, _tag) => {
                let text_col = text_column(&span, style, &value);
                let style = match style {
                    ScalarStyle::Plain => Style::Plain,
                    _ => Style::Quoted,
                };
                let text = b.protected.restore(&value);
                b.count(1).map(|()| {
                    b.finish_node(
                        Node {
                            value: Value::Scalar { text, style },
                            origin,
                            text_col,
                        },
                        anchor,
                    )
                })
            }
            Event::Alias(id) => match b.anchors.get(&id) {
                Some((node, size)) => {
                    let (node, size) = (node.clone(), *size);
                    b.count(size).map(|()| b.push_node(node))
                }
                None => Err(TreeError {
                    pos: pos_of(&origin),
                    message: "alias to an unknown anchor".to_string(),
                }),
            },
            Event::SequenceStart(_, anchor, _) => b.count(1).and_then(|()| {
                if b.stack.len() >= MAX_DEPTH {
                    return Err(TreeError {
                        pos: pos_of(&origin),
                        message: format!("nesting deeper than {MAX_DEPTH} levels"),
                    });
                }
                b.stack.push(Frame::Seq {
                    items: Vec::new(),
                    origin,
                    anchor,
                });
                Ok(())
            }),
            Event::MappingStart(_, anchor, _) => b.count(1).and_then(|()| {
                if b.stack.len() >= MAX_DEPTH {
                    return Err(TreeError {
                        pos: pos_of(&origin),
                        message: format!("nesting deeper than {MAX_DEPTH} levels"),
                    });
                }
                b.stack.push(Frame::Map {
                    entries: Vec::new(),
                    merges: Vec::new(),
                    pending: None,
                    origin,
                    anchor,
                });
                Ok(())
            }),
            Event::SequenceEnd => match b.stack.pop() {
                Some(Frame::Seq {
                    items,
                    origin,
                    anchor,
                }) => {
                    b.finish_node(Node::new(Value::Seq(items), origin), anchor);
                    Ok(())
                }
                _ => Err(TreeError {
                    pos: pos_of(&origin),
                    message: "invalid YAML: unbalanced sequence".to_string(),
                }),
            },
            Event::MappingEnd => match b.stack.pop() {
                Some(Frame::Map {
                    entries,
                    merges,
                    origin,
                    anchor,
                    ..
                }) => b
                    .close_map(entries, merges, origin)
                    .map(|node| b.finish_node(node, anchor)),
                _ => Err(TreeError {
                    pos: pos_of(&origin),
                    message: "invalid YAML: unbalanced mapping".to_string(),
                }),
            },
            _ => Ok(()),
        };
        if let Err(e) = step {
            b.errors.push(e);
            return Err(b.errors);
        }
    }
    if b.errors.is_empty() {
        Ok(b.root)
    } else {
        Err(b.errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::substitute::protect;

    fn tree(text: &str) -> Result<Option<Node>, Vec<TreeError>> {
        parse(&protect(text))
    }

    fn scalar(text: &str, style: Style, line: usize, col: usize) -> Node {
        let quote = usize::from(style == Style::Quoted);
        Node {
            value: Value::Scalar {
                text: text.to_string(),
                style,
            },
            origin: Origin::File(Pos { line, col }),
            text_col: Some(col + quote),
        }
    }

    #[test]
    fn positions_and_styles() {
        let root = tree("a: 007\nb:\n  - 'x'\n  - ${Y:-a: b}\n").ok().flatten();
        let Some(Node {
            value: Value::Map(entries),
            ..
        }) = root
        else {
            panic!("not a map")
        };
        assert_eq!(entries[0].key, "a");
        assert_eq!(entries[0].key_origin, Origin::File(Pos { line: 1, col: 1 }));
        assert_eq!(entries[0].value, scalar("007", Style::Plain, 1, 4));
        let Value::Seq(items) = &entries[1].value.value else {
            panic!("not a seq")
        };
        assert_eq!(items[0], scalar("x", Style::Quoted, 3, 5));
        assert_eq!(items[1], scalar("${Y:-a: b}", Style::Plain, 4, 5));
    }

    #[test]
    fn text_columns_only_where_the_source_maps_one_to_one() {
        let root = tree("a: \"x\\ty\"\nb: 'it''s'\nc: |\n  z\nd: \"p q\"\ne: p q\n")
            .ok()
            .flatten();
        let Some(Node {
            value: Value::Map(entries),
            ..
        }) = root
        else {
            panic!("not a map")
        };
        let cols: Vec<Option<usize>> = entries.iter().map(|e| e.value.text_col).collect();
        assert_eq!(cols, [None, None, None, Some(5), Some(4)]);
    }

    #[test]
    fn every_duplicate_is_reported() {
        let errs = tree("a: 1\nb: 2\na: 3\nb: 4\n").err().unwrap_or_default();
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[0].pos, Some(Pos { line: 3, col: 1 }));
        assert!(errs[0].message.contains("first defined at line 1"));
    }

    #[test]
    fn merge_keys_and_aliases() {
        let root = tree("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  y: 3\n")
            .ok()
            .flatten();
        let Some(Node {
            value: Value::Map(entries),
            ..
        }) = root
        else {
            panic!("not a map")
        };
        let Value::Map(c) = &entries[1].value.value else {
            panic!("not a map")
        };
        let keys: Vec<_> = c.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["y", "x"]);
    }

    #[test]
    fn hostile_documents_are_rejected() {
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 0..12 {
            let prev = if i == 0 {
                "a".to_string()
            } else {
                format!("l{}", i - 1)
            };
            bomb.push_str(&format!(
                "l{i}: &l{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
        }
        assert!(tree(&bomb).is_err());
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(tree(&deep).is_err());
        let deep_block: String = (0..200).map(|i| format!("{}k:\n", " ".repeat(i))).collect();
        assert!(tree(&deep_block).is_err());
    }

    #[test]
    fn syntax_error_has_position() {
        let errs = tree("a: [1, 2\nb: 3\n").err().unwrap_or_default();
        assert_eq!(errs.len(), 1);
        assert!(errs[0].pos.is_some());
        assert!(errs[0].message.starts_with("invalid YAML"), "{:?}", errs[0]);
    }

    #[test]
    fn empty_and_multi_document() {
        assert_eq!(tree("").ok(), Some(None));
        assert_eq!(tree("# only a comment\n").ok(), Some(None));
        assert!(tree("a: 1\n---\nb: 2\n").is_err());
    }
}
