//! The typed-reader layer: one node of the tree in, one typed value out.
//!
//! Invariants:
//! * A reader returns [`Got::Val`] with a checked value, [`Got::Null`] when
//!   the key is absent or null (the caller keeps its default), or
//!   [`Got::Bad`]; `Bad` is returned only after at least one error was
//!   pushed to [`Ctx::errors`], so callers never report it again.
//! * Every scalar is substituted (`${VAR}`) before it is typed, except
//!   values set by environment overrides, which are taken literally.
//! * Readers never panic, whatever the input.

use std::time::Duration;

use crate::duration::{parse_duration, parse_size};
use crate::substitute::substitute;
use crate::suggest;
use crate::text::is_null_literal;
use crate::tree::{Entry, Node, Origin, Style, Value};
use crate::{ConfigError, Env};

/// The result of reading one value.
pub(super) enum Got<T> {
    /// Absent or null: keep the default.
    Null,
    Val(T),
    /// An error was recorded.
    Bad,
}

impl<T> Got<T> {
    pub(super) fn val(self) -> Option<T> {
        match self {
            Got::Val(v) => Some(v),
            _ => None,
        }
    }
}

pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

pub(crate) struct Ctx<'e> {
    env: &'e Env,
    pub errors: Vec<ConfigError>,
}

impl<'e> Ctx<'e> {
    pub(crate) fn new(env: &'e Env) -> Self {
        Ctx {
            env,
            errors: Vec::new(),
        }
    }

    /// A variable of the loader's environment (`TZ` for the schedule zone).
    pub(super) fn env_var(&self, name: &str) -> Option<&str> {
        self.env.vars.get(name).map(String::as_str)
    }

    pub(crate) fn err(&mut self, origin: &Origin, key: &str, message: impl Into<String>) {
        let message = message.into();
        let (line, column, message) = match origin {
            Origin::File(p) => (Some(p.line), Some(p.col), message),
            Origin::Env(var) if var.is_empty() => (None, None, message),
            Origin::Env(var) => (
                None,
                None,
                format!("{message} (set by environment variable {var})"),
            ),
        };
        self.errors.push(ConfigError {
            line,
            column,
            key: (!key.is_empty()).then(|| key.to_string()),
            message,
        });
    }

    pub(super) fn unknown_key(&mut self, e: &Entry, parent: &str, known: &[&str], extra: &str) {
        let path = join(parent, &e.key);
        let hint = suggest::hint(&e.key, known);
        let message = if hint.is_empty() && !extra.is_empty() {
            format!("unknown key{extra}")
        } else {
            format!("unknown key{hint}")
        };
        self.err(&e.key_origin, &path, message);
    }

    /// A scalar as text, substituted; `what` describes the expected value.
    pub(super) fn text(&mut self, node: &Node, path: &str, what: &str) -> Got<String> {
        match &node.value {
            Value::Scalar { text, style } => {
                if *style == Style::Env {
                    return Got::Val(text.clone());
                }
                match substitute(text, self.env) {
                    Ok(s) if *style == Style::Plain && is_null_literal(&s) => Got::Null,
                    Ok(s) => Got::Val(s),
                    Err(errs) => {
                        for e in errs {
                            self.err(&node.origin, path, e.message());
                        }
                        Got::Bad
                    }
                }
            }
            _ => {
                self.err(
                    &node.origin,
                    path,
                    format!("expected {what}, found {}", node.kind_name()),
                );
                Got::Bad
            }
        }
    }

    /// A string; empty means "not set" when `empty_is_unset`.
    pub(super) fn string(&mut self, node: &Node, path: &str) -> Got<String> {
        self.text(node, path, "a string")
    }

    pub(super) fn opt_string(&mut self, node: &Node, path: &str) -> Got<Option<String>> {
        match self.string(node, path) {
            Got::Val(s) if s.is_empty() => Got::Val(None),
            Got::Val(s) => {
                if s.contains('\0') {
                    self.err(&node.origin, path, "contains a NUL character");
                    Got::Bad
                } else {
                    Got::Val(Some(s))
                }
            }
            Got::Null => Got::Val(None),
            Got::Bad => Got::Bad,
        }
    }

    pub(super) fn bool(&mut self, node: &Node, path: &str) -> Got<bool> {
        match self.text(node, path, "true or false") {
            Got::Val(s) => match parse_bool(&s) {
                Some(b) => Got::Val(b),
                None => {
                    self.err(
                        &node.origin,
                        path,
                        format!("expected true or false, got `{}`", shorten(&s)),
                    );
                    Got::Bad
                }
            },
            Got::Null => Got::Null,
            Got::Bad => Got::Bad,
        }
    }

    /// A whole number in `0..=max`.
    pub(super) fn uint(&mut self, node: &Node, path: &str, max: u64) -> Got<u64> {
        self.parsed(node, path, "a whole number", |s| parse_uint(s, max))
    }

    pub(super) fn u32(&mut self, node: &Node, path: &str, max: u64) -> Got<u32> {
        match self.uint(node, path, max.min(u64::from(u32::MAX))) {
            Got::Val(v) => u32::try_from(v).map(Got::Val).unwrap_or(Got::Bad),
            Got::Null => Got::Null,
            Got::Bad => Got::Bad,
        }
    }

    pub(super) fn u16(&mut self, node: &Node, path: &str) -> Got<u16> {
        match self.uint(node, path, u64::from(u16::MAX)) {
            Got::Val(v) => u16::try_from(v).map(Got::Val).unwrap_or(Got::Bad),
            Got::Null => Got::Null,
            Got::Bad => Got::Bad,
        }
    }

    /// A finite number, integer or decimal (`100`, `0.5`, `1e3`); no
    /// `inf` or `nan`.
    pub(super) fn number(&mut self, node: &Node, path: &str) -> Got<f64> {
        self.parsed(node, path, "a number", parse_number)
    }

    /// A scalar read as text, then parsed by `parse` (whose error is a
    /// sentence fragment for the user).
    pub(super) fn parsed<T>(
        &mut self,
        node: &Node,
        path: &str,
        what: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Got<T> {
        match self.text(node, path, what) {
            Got::Val(s) => match parse(&s) {
                Ok(v) => Got::Val(v),
                Err(m) => {
                    self.err(&node.origin, path, m);
                    Got::Bad
                }
            },
            Got::Null => Got::Null,
            Got::Bad => Got::Bad,
        }
    }

    pub(super) fn size(&mut self, node: &Node, path: &str) -> Got<u64> {
        self.parsed(node, path, "a size", parse_size)
    }

    pub(super) fn duration(&mut self, node: &Node, path: &str) -> Got<Duration> {
        self.parsed(node, path, "a duration", parse_duration)
    }

    pub(super) fn choice<T: Copy>(
        &mut self,
        node: &Node,
        path: &str,
        options: &[(&str, T)],
    ) -> Got<T> {
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        let listing = names.join(", ");
        match self.text(node, path, &format!("one of {listing}")) {
            Got::Val(s) => {
                let norm = s.trim().to_ascii_lowercase();
                match options.iter().find(|(n, _)| *n == norm) {
                    Some((_, v)) => Got::Val(*v),
                    None => {
                        let hint = suggest::hint(&norm, &names);
                        self.err(
                            &node.origin,
                            path,
                            format!(
                                "unknown value `{}`: expected one of {listing}{hint}",
                                shorten(&s)
                            ),
                        );
                        Got::Bad
                    }
                }
            }
            Got::Null => Got::Null,
            Got::Bad => Got::Bad,
        }
    }

    /// A list of strings (`[a, b]`); each item must be a non-null scalar.
    pub(super) fn string_list(
        &mut self,
        node: &Node,
        path: &str,
        example: &str,
    ) -> Got<Vec<String>> {
        match &node.value {
            Value::Seq(items) => {
                let mut out = Vec::with_capacity(items.len());
                let mut bad = false;
                for (i, item) in items.iter().enumerate() {
                    let p = format!("{path}[{i}]");
                    match self.text(item, &p, "a string") {
                        Got::Val(s) => {
                            if s.contains('\0') {
                                self.err(&item.origin, &p, "contains a NUL character");
                                bad = true;
                            }
                            out.push(s);
                        }
                        Got::Null => {
                            self.err(&item.origin, &p, "empty list entry (quote it: \"\")");
                            bad = true;
                        }
                        Got::Bad => bad = true,
                    }
                }
                if bad {
                    Got::Bad
                } else {
                    Got::Val(out)
                }
            }
            Value::Scalar { .. } => match self.text(node, path, "a list") {
                Got::Null => Got::Null,
                Got::Bad => Got::Bad,
                Got::Val(_) => {
                    self.err(
                        &node.origin,
                        path,
                        format!("expected a list of strings, e.g. {example}"),
                    );
                    Got::Bad
                }
            },
            Value::Map(_) => {
                self.err(
                    &node.origin,
                    path,
                    format!("expected a list of strings, e.g. {example}, found a mapping"),
                );
                Got::Bad
            }
        }
    }

    /// The entries of a mapping; a null value is an empty mapping.
    pub(super) fn map<'n>(&mut self, node: &'n Node, path: &str) -> Option<&'n [Entry]> {
        match &node.value {
            Value::Map(entries) => Some(entries),
            Value::Scalar {
                text,
                style: Style::Plain,
            } if is_null_literal(text) => Some(&[]),
            _ => {
                let what = if path.is_empty() {
                    "the file"
                } else {
                    "this key"
                };
                self.err(
                    &node.origin,
                    path,
                    format!(
                        "{what} must be a mapping (`key: value` lines), found {}",
                        node.kind_name()
                    ),
                );
                None
            }
        }
    }
}

/// The position `offset` characters into a scalar's text, when the text is
/// the one written in the file (not substituted) and the source maps one
/// character to one column; else the position of the value.
pub(super) fn origin_within(node: &Node, value: &str, offset: usize) -> Origin {
    match (&node.origin, node.text_col, &node.value) {
        (Origin::File(p), Some(col), Value::Scalar { text, .. }) if text == value => {
            Origin::File(crate::tree::Pos {
                line: p.line,
                col: col.saturating_add(offset),
            })
        }
        _ => node.origin.clone(),
    }
}

pub(super) fn set<T>(slot: &mut T, got: Got<T>) {
    if let Got::Val(v) = got {
        *slot = v;
    }
}

pub(super) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// A value quoted in an error message: at most 40 characters.
pub(super) fn shorten(s: &str) -> String {
    crate::text::shorten(s, 40)
}

pub(super) fn parse_uint(s: &str, max: u64) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.strip_prefix('+').unwrap_or(t);
    if let Some(neg) = t.strip_prefix('-') {
        if !neg.is_empty() && neg.chars().all(|c| c.is_ascii_digit()) {
            return Err(format!("`{t}` is negative: expected 0 or more"));
        }
    }
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("expected a whole number, got `{}`", shorten(t)));
    }
    match digits.parse::<u64>() {
        Ok(v) if v <= max => Ok(v),
        _ => Err(format!("`{}` is too large (at most {max})", shorten(t))),
    }
}

fn parse_number(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let numeric = t.chars().any(|c| c.is_ascii_digit())
        && t.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'));
    match t.parse::<f64>() {
        Ok(v) if numeric && v.is_finite() => Ok(v),
        _ => Err(format!("expected a number, got `{}`", shorten(t))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uints() {
        assert_eq!(parse_uint("5", 10), Ok(5));
        assert_eq!(parse_uint(" 007 ", 10), Ok(7));
        assert_eq!(parse_uint("+3", 10), Ok(3));
        assert!(parse_uint("-3", 10).unwrap_err().contains("negative"));
        assert!(parse_uint("11", 10).unwrap_err().contains("too large"));
        assert!(parse_uint("99999999999999999999999", 10)
            .unwrap_err()
            .contains("too large"));
        assert!(parse_uint("abc", 10).unwrap_err().contains("whole number"));
        assert!(parse_uint("1.5", 10).is_err());
        assert!(parse_uint("", 10).is_err());
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number("100"), Ok(100.0));
        assert_eq!(parse_number(" 0.5 "), Ok(0.5));
        assert_eq!(parse_number("-2"), Ok(-2.0));
        assert_eq!(parse_number("1e3"), Ok(1000.0));
        for bad in ["", "inf", "NaN", "1e999", "0x10", "1,5", "e", ".", "ten"] {
            assert!(parse_number(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bools() {
        for t in ["true", "TRUE", "yes", "on", "1"] {
            assert_eq!(parse_bool(t), Some(true));
        }
        for f in ["false", "No", "off", "0"] {
            assert_eq!(parse_bool(f), Some(false));
        }
        assert_eq!(parse_bool("maybe"), None);
        assert_eq!(parse_bool("2"), None);
    }
}
