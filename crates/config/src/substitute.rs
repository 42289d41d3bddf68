//! `${VAR}` / `${VAR:-default}` / `$$` substitution, and per-instance expansion.
//!
//! # Where substitution happens (and why it cannot break the YAML)
//!
//! Substitution is done on **scalar values after YAML parsing**, never by
//! pasting text into the raw file: the loader parses the file into a node
//! tree (see `tree.rs`), and each scalar that a key consumes is substituted
//! right before it is typed (`scale: ${CPU_COUNT}` → `"4"` → `4`). A value
//! such as `a: b # c` coming from the environment therefore stays one string;
//! it can never add keys, comments or lines, and line/column numbers of
//! everything else stay exact.
//!
//! One problem remains: a plain (unquoted) `${X}` inside a *flow* collection
//! (`env: { A: ${X} }`, `command: [run, ${X}]`) is not valid YAML, because `{`
//! and `}` are flow indicators there; nor is `${X:-a: b}` in a block value.
//! Before parsing, every well-formed `${...}` token in the raw text is
//! therefore swapped for a *placeholder* of exactly the same length in
//! characters, made of Unicode private-use characters (which YAML accepts in
//! plain scalars anywhere). Columns stay exact. After parsing, placeholders
//! found in scalars are turned back into the original token text, and then
//! substitution runs on the scalar value. If the file itself already
//! contains private-use characters (U+E000..U+F8FF), placeholders are not
//! used and such flow-context tokens must be quoted.
//!
//! # Rules
//!
//! * `${NAME}`: the value of `NAME`; an error if `NAME` is unset.
//! * `${NAME:-default}`: the value of `NAME`, or `default` when `NAME` is
//!   unset **or empty** (shell semantics). The default is literal text up to
//!   the first `}` on the same line (no nesting, no escapes inside).
//! * `$$`: one literal `$`. A `$` followed by anything else is kept as is
//!   (`$HOME` is **not** substituted; only the braced form is).
//! * `NAME` is `[A-Za-z_][A-Za-z0-9_]*`; anything else after `${` is an error.
//! * The per-instance names [`INSTANCE_VARS`] are never substituted at load
//!   time, even when the manager's own environment has them (phpeek-pm may
//!   run under another phpeek-pm): the token (with its default, if any) is
//!   kept verbatim and expanded per instance by [`expand_instance_vars`].
//!   Consequence: `$${PHPEEK_PM_INSTANCE_ID}` loads as
//!   `${PHPEEK_PM_INSTANCE_ID}` and is then expanded at spawn like the
//!   unescaped form.
//! * Values from the environment are inserted as they are: their own `$`
//!   characters are not substituted again.

use crate::{Env, InstanceVars};

/// Variables expanded per instance at spawn time, kept verbatim at load.
pub const INSTANCE_VARS: [&str; 4] = [
    "PHPEEK_PM_INSTANCE_ID",
    "PHPEEK_PM_INSTANCE_NUMBER",
    "PHPEEK_PM_INSTANCE_PORT",
    "PHPEEK_PM_PROCESS_NAME",
];

/// A `${...}` token found at the start of `s` (which begins with `${`).
struct Token<'a> {
    /// Byte length of the whole token including `${` and `}`.
    len: usize,
    name: &'a str,
    default: Option<&'a str>,
}

enum Scan<'a> {
    Token(Token<'a>),
    /// `${` without a closing `}` on the same line.
    Unterminated,
    /// `${...}` whose content is not `NAME` or `NAME:-default`; holds the text.
    Malformed(&'a str),
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// `s` starts with `${`.
fn scan_token(s: &str) -> Scan<'_> {
    let body_start = 2;
    let rest = s.get(body_start..).unwrap_or("");
    let close = rest.find(['}', '\n', '\r']);
    let Some(close) = close.filter(|&i| rest[i..].starts_with('}')) else {
        return Scan::Unterminated;
    };
    let body = &rest[..close];
    let len = body_start + close + 1;
    let (name, default) = match body.find(":-") {
        Some(i) => (&body[..i], Some(&body[i + 2..])),
        None => (body, None),
    };
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(is_name_start) && chars.all(is_name_char);
    if valid {
        Scan::Token(Token { len, name, default })
    } else {
        Scan::Malformed(&s[..len])
    }
}

/// One problem found while substituting a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SubstError {
    Unset(String),
    Unterminated,
    Malformed(String),
}

impl SubstError {
    pub(crate) fn message(&self) -> String {
        match self {
            SubstError::Unset(name) => format!(
                "environment variable `{name}` is not set (set it, or give a default: `${{{name}:-value}}`)"
            ),
            SubstError::Unterminated => {
                "`${` without a closing `}` on the same line (write `$$` for a literal `$`)"
                    .to_string()
            }
            SubstError::Malformed(text) => format!(
                "invalid variable reference `{text}`: expected `${{NAME}}` or `${{NAME:-default}}` (write `$$` for a literal `$`)"
            ),
        }
    }
}

/// Substitutes one scalar value. Returns every problem found.
pub(crate) fn substitute(input: &str, env: &Env) -> Result<String, Vec<SubstError>> {
    if !input.contains('$') {
        return Ok(input.to_string());
    }
    let mut out = String::with_capacity(input.len());
    let mut errors = Vec::new();
    let mut i = 0;
    while let Some(off) = input[i..].find('$') {
        let at = i + off;
        out.push_str(&input[i..at]);
        let rest = &input[at..];
        if rest.starts_with("$$") {
            out.push('$');
            i = at + 2;
        } else if rest.starts_with("${") {
            match scan_token(rest) {
                Scan::Token(t) => {
                    if INSTANCE_VARS.contains(&t.name) {
                        out.push_str(&rest[..t.len]);
                    } else {
                        match env.vars.get(t.name) {
                            Some(v) if !(v.is_empty() && t.default.is_some()) => out.push_str(v),
                            _ => match t.default {
                                Some(d) => out.push_str(d),
                                None => errors.push(SubstError::Unset(t.name.to_string())),
                            },
                        }
                    }
                    i = at + t.len;
                }
                Scan::Unterminated => {
                    errors.push(SubstError::Unterminated);
                    out.push_str(rest);
                    i = input.len();
                }
                Scan::Malformed(text) => {
                    errors.push(SubstError::Malformed(text.to_string()));
                    i = at + text.len();
                }
            }
        } else {
            out.push('$');
            i = at + 1;
        }
    }
    out.push_str(&input[i..]);
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Expands exactly `${PHPEEK_PM_INSTANCE_ID}`, `${PHPEEK_PM_INSTANCE_NUMBER}`,
/// `${PHPEEK_PM_INSTANCE_PORT}` and `${PHPEEK_PM_PROCESS_NAME}` (also in the
/// `${NAME:-default}` form); everything else, `$$` included, is left alone
/// (`$$` was already resolved at load time). Without a port,
/// `${PHPEEK_PM_INSTANCE_PORT}` becomes the empty string, or its default.
pub(crate) fn expand_instance_vars(s: &str, vars: &InstanceVars<'_>) -> String {
    if !s.contains("${") {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 16);
    let mut i = 0;
    while let Some(off) = s[i..].find("${") {
        let at = i + off;
        out.push_str(&s[i..at]);
        let rest = &s[at..];
        let expanded = match scan_token(rest) {
            Scan::Token(t) => {
                let value = match t.name {
                    "PHPEEK_PM_INSTANCE_ID" => Some(vars.instance.to_string()),
                    "PHPEEK_PM_INSTANCE_NUMBER" => Some(vars.number.to_string()),
                    "PHPEEK_PM_INSTANCE_PORT" => {
                        Some(vars.port.map(|p| p.to_string()).unwrap_or_default())
                    }
                    "PHPEEK_PM_PROCESS_NAME" => Some(vars.process.to_string()),
                    _ => None,
                };
                value.map(|v| {
                    let v = match (v.is_empty(), t.default) {
                        (true, Some(d)) => d.to_string(),
                        _ => v,
                    };
                    (v, t.len)
                })
            }
            _ => None,
        };
        match expanded {
            Some((v, len)) => {
                out.push_str(&v);
                i = at + len;
            }
            None => {
                out.push_str("${");
                i = at + 2;
            }
        }
    }
    out.push_str(&s[i..]);
    out
}

/// Does `s` use `${PHPEEK_PM_INSTANCE_PORT}` without a default?
pub(crate) fn uses_port_without_default(s: &str) -> bool {
    let mut i = 0;
    while let Some(off) = s[i..].find("${") {
        let at = i + off;
        if let Scan::Token(t) = scan_token(&s[at..]) {
            if t.name == "PHPEEK_PM_INSTANCE_PORT" && t.default.is_none() {
                return true;
            }
        }
        i = at + 2;
    }
    false
}

/// The first per-instance variable `s` refers to (with or without a
/// default), if any.
pub(crate) fn instance_var_used(s: &str) -> Option<&'static str> {
    let mut i = 0;
    while let Some(off) = s.get(i..).and_then(|rest| rest.find("${")) {
        let at = i + off;
        if let Scan::Token(t) = scan_token(s.get(at..).unwrap_or("")) {
            if let Some(name) = INSTANCE_VARS.iter().find(|v| **v == t.name) {
                return Some(name);
            }
        }
        i = at + 2;
    }
    None
}

/// Escapes a loaded value so that substituting it again yields the same
/// value: `$` → `$$`, except in the per-instance tokens (which load verbatim).
pub(crate) fn escape_for_file(s: &str) -> String {
    if !s.contains('$') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 4);
    let mut i = 0;
    while let Some(off) = s[i..].find('$') {
        let at = i + off;
        out.push_str(&s[i..at]);
        let rest = &s[at..];
        if rest.starts_with("${") {
            if let Scan::Token(t) = scan_token(rest) {
                if INSTANCE_VARS.contains(&t.name) {
                    out.push_str(&rest[..t.len]);
                    i = at + t.len;
                    continue;
                }
            }
        }
        out.push_str("$$");
        i = at + 1;
    }
    out.push_str(&s[i..]);
    out
}

// ---------------------------------------------------------------------------
// Placeholders (see the module documentation).

const MARK: char = '\u{E000}';
const PAD: char = '\u{E001}';
const DIGIT0: u32 = 0xE800;
const BASE: usize = 2048;
const DIGITS: usize = 3;

fn in_private_use(c: char) -> bool {
    ('\u{E000}'..='\u{F8FF}').contains(&c)
}

/// The raw file text with `${...}` tokens replaced by same-width placeholders.
pub(crate) struct Protected {
    pub text: String,
    tokens: Vec<String>,
}

/// Replaces each well-formed `${...}` token (outside `$$` pairs) by a
/// placeholder of the same length in characters.
pub(crate) fn protect(raw: &str) -> Protected {
    let unchanged = || Protected {
        text: raw.to_string(),
        tokens: Vec::new(),
    };
    if !raw.contains("${") || raw.chars().any(in_private_use) {
        return unchanged();
    }
    let mut out = String::with_capacity(raw.len() * 2);
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(off) = raw[i..].find('$') {
        let at = i + off;
        out.push_str(&raw[i..at]);
        let rest = &raw[at..];
        if rest.starts_with("$$") {
            out.push_str("$$");
            i = at + 2;
            continue;
        }
        if rest.starts_with("${") {
            if let Scan::Token(t) = scan_token(rest) {
                let text = &rest[..t.len];
                let width = text.chars().count();
                let index = tokens.len();
                if width > DIGITS && index < BASE.pow(DIGITS as u32) {
                    out.push(MARK);
                    let mut digits = [DIGIT0; DIGITS];
                    let mut n = index;
                    for d in digits.iter_mut().rev() {
                        *d = DIGIT0 + (n % BASE) as u32;
                        n /= BASE;
                    }
                    for d in digits {
                        out.push(char::from_u32(d).unwrap_or(PAD));
                    }
                    for _ in 0..width - 1 - DIGITS {
                        out.push(PAD);
                    }
                    tokens.push(text.to_string());
                    i = at + t.len;
                    continue;
                }
            }
        }
        out.push('$');
        i = at + 1;
    }
    out.push_str(&raw[i..]);
    Protected { text: out, tokens }
}

impl Protected {
    /// Puts the original token text back into a parsed scalar.
    pub(crate) fn restore(&self, s: &str) -> String {
        if self.tokens.is_empty() || !s.contains(MARK) {
            return s.to_string();
        }
        let chars: Vec<char> = s.chars().collect();
        let mut out = String::with_capacity(s.len());
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == MARK {
                if let Some((token, used)) = self.decode(&chars[i + 1..]) {
                    out.push_str(token);
                    i += 1 + used;
                    continue;
                }
            }
            out.push(c);
            i += 1;
        }
        out
    }

    fn decode(&self, after_mark: &[char]) -> Option<(&str, usize)> {
        let digits = after_mark.get(..DIGITS)?;
        let mut index = 0usize;
        for &d in digits {
            let v = (d as u32).checked_sub(DIGIT0)? as usize;
            if v >= BASE {
                return None;
            }
            index = index * BASE + v;
        }
        let token = self.tokens.get(index)?;
        let pads = token.chars().count().checked_sub(1 + DIGITS)?;
        let pad_chars = after_mark.get(DIGITS..DIGITS + pads)?;
        if pad_chars.iter().all(|&c| c == PAD) {
            Some((token.as_str(), DIGITS + pads))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env {
            vars: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn plain_and_default() {
        let e = env(&[("A", "1"), ("EMPTY", "")]);
        assert_eq!(substitute("x${A}y", &e), Ok("x1y".to_string()));
        assert_eq!(substitute("${B:-two}", &e), Ok("two".to_string()));
        assert_eq!(substitute("${A:-two}", &e), Ok("1".to_string()));
        assert_eq!(substitute("${EMPTY:-d}", &e), Ok("d".to_string()));
        assert_eq!(substitute("${EMPTY}", &e), Ok(String::new()));
        assert_eq!(substitute("${B:-}", &e), Ok(String::new()));
        assert_eq!(substitute("${B:-a: b # c}", &e), Ok("a: b # c".to_string()));
    }

    #[test]
    fn dollar_escapes() {
        let e = env(&[("A", "1")]);
        assert_eq!(substitute("$$", &e), Ok("$".to_string()));
        assert_eq!(substitute("$${A}", &e), Ok("${A}".to_string()));
        assert_eq!(substitute("$$$${A}", &e), Ok("$${A}".to_string()));
        assert_eq!(substitute("$HOME $ 5$", &e), Ok("$HOME $ 5$".to_string()));
        assert_eq!(substitute("$$${A}", &e), Ok("$1".to_string()));
    }

    #[test]
    fn values_are_not_resubstituted() {
        let e = env(&[("A", "${B}$$")]);
        assert_eq!(substitute("${A}", &e), Ok("${B}$$".to_string()));
    }

    #[test]
    fn errors() {
        let e = env(&[]);
        assert_eq!(
            substitute("${NOPE} ${ALSO}", &e),
            Err(vec![
                SubstError::Unset("NOPE".into()),
                SubstError::Unset("ALSO".into())
            ])
        );
        assert_eq!(
            substitute("${1A}", &e),
            Err(vec![SubstError::Malformed("${1A}".into())])
        );
        assert_eq!(
            substitute("${}", &e),
            Err(vec![SubstError::Malformed("${}".into())])
        );
        assert_eq!(
            substitute("${A-b}", &e),
            Err(vec![SubstError::Malformed("${A-b}".into())])
        );
        assert_eq!(substitute("${A", &e), Err(vec![SubstError::Unterminated]));
        assert!(SubstError::Unset("X".into()).message().contains("`X`"));
    }

    #[test]
    fn instance_vars_are_kept_even_if_set() {
        let e = env(&[("PHPEEK_PM_INSTANCE_ID", "outer-1")]);
        assert_eq!(
            substitute("--id=${PHPEEK_PM_INSTANCE_ID}", &e),
            Ok("--id=${PHPEEK_PM_INSTANCE_ID}".to_string())
        );
        assert_eq!(
            substitute("${PHPEEK_PM_INSTANCE_PORT:-80}", &e),
            Ok("${PHPEEK_PM_INSTANCE_PORT:-80}".to_string())
        );
    }

    #[test]
    fn expands_instance_vars() {
        let v = InstanceVars {
            process: "queue-default",
            instance: "queue-default-2",
            number: 2,
            port: Some(8082),
        };
        assert_eq!(
            expand_instance_vars(
                "${PHPEEK_PM_PROCESS_NAME}/${PHPEEK_PM_INSTANCE_ID}/${PHPEEK_PM_INSTANCE_NUMBER}:${PHPEEK_PM_INSTANCE_PORT}",
                &v
            ),
            "queue-default/queue-default-2/2:8082"
        );
        assert_eq!(expand_instance_vars("${OTHER} $$ ${", &v), "${OTHER} $$ ${");
        let no_port = InstanceVars { port: None, ..v };
        assert_eq!(
            expand_instance_vars("p=${PHPEEK_PM_INSTANCE_PORT}", &no_port),
            "p="
        );
        assert_eq!(
            expand_instance_vars("p=${PHPEEK_PM_INSTANCE_PORT:-9000}", &no_port),
            "p=9000"
        );
    }

    #[test]
    fn escape_round_trips() {
        let e = env(&[]);
        for s in [
            "a$b",
            "$$",
            "${X}",
            "x${PHPEEK_PM_INSTANCE_ID}y$",
            "${",
            "$",
        ] {
            assert_eq!(
                substitute(&escape_for_file(s), &e),
                Ok(s.to_string()),
                "{s}"
            );
        }
    }

    #[test]
    fn placeholders_keep_width_and_restore() {
        let raw = "env: { A: ${X:-a: b}, B: $${Y} }\ncmd: [${Z}]\n";
        let p = protect(raw);
        assert_eq!(p.text.chars().count(), raw.chars().count());
        assert!(!p.text.contains("${X"));
        assert!(p.text.contains("$${Y}"));
        for (a, b) in p.text.lines().zip(raw.lines()) {
            assert_eq!(a.chars().count(), b.chars().count());
        }
        assert_eq!(p.restore(&p.text), raw);
    }

    #[test]
    fn no_placeholders_when_file_has_private_use_chars() {
        let raw = "a: \u{E000} ${X}";
        let p = protect(raw);
        assert_eq!(p.text, raw);
        assert_eq!(p.restore(raw), raw);
    }
}
