//! supervisord's INI dialect (Python's `RawConfigParser` as supervisord
//! sets it up), read with line numbers.
//!
//! What is accepted, as supervisord accepts it:
//! - `[section]` headers; `key = value` or `key: value` (the first `=` or
//!   `:` splits; keys are case-insensitive and stored lower-case);
//! - whole-line comments starting with `;` or `#`, and inline comments: a
//!   `;` or `#` preceded by whitespace ends the value (even inside quotes,
//!   as in supervisord);
//! - continuation lines: a line indented more than its key continues the
//!   value (joined with a newline); blank lines between continuations are
//!   kept out;
//! - a repeated section or key: the later one wins (supervisord's
//!   `strict = False`).
//!
//! Anything else is an error naming its line.

/// One `key = value` with the line it started on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// One `[name]` section and its entries, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub line: usize,
    pub entries: Vec<Entry>,
}

impl Section {
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }
}

/// A line that is not INI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IniError {
    pub line: usize,
    pub message: String,
}

/// Parses the whole text; sections in file order (a repeated section is
/// merged into its first place).
pub fn parse_ini(text: &str) -> Result<Vec<Section>, IniError> {
    let mut sections: Vec<Section> = Vec::new();
    // (section index, entry index, indent of the key's line)
    let mut open: Option<(usize, usize, usize)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let trimmed = raw.trim_start();
        let indent = raw.len() - trimmed.len();
        if trimmed.starts_with(';') || trimmed.starts_with('#') {
            continue;
        }
        let content = strip_inline_comment(trimmed).trim_end();
        if content.is_empty() {
            continue;
        }
        if let Some((s, e, key_indent)) = open {
            if indent > key_indent {
                let entry = &mut sections[s].entries[e];
                if !entry.value.is_empty() {
                    entry.value.push('\n');
                }
                entry.value.push_str(content);
                continue;
            }
        }
        if let Some(rest) = content.strip_prefix('[') {
            let Some(end) = rest.find(']') else {
                return Err(IniError {
                    line,
                    message: format!(
                        "`{}`: a section header needs a closing `]`",
                        shorten(content)
                    ),
                });
            };
            let name = rest[..end].trim();
            if name.is_empty() || !rest[end + 1..].trim().is_empty() {
                return Err(IniError {
                    line,
                    message: format!(
                        "`{}` is not a section header like `[program:web]`",
                        shorten(content)
                    ),
                });
            }
            open = None;
            if !sections.iter().any(|s| s.name == name) {
                sections.push(Section {
                    name: name.to_string(),
                    line,
                    entries: Vec::new(),
                });
            }
            continue;
        }
        let Some(split) = content.find(['=', ':']) else {
            return Err(IniError {
                line,
                message: format!(
                    "`{}` is neither `key = value` nor a `[section]`",
                    shorten(content)
                ),
            });
        };
        let key = content[..split].trim().to_ascii_lowercase();
        let value = content[split + 1..].trim().to_string();
        if key.is_empty() {
            return Err(IniError {
                line,
                message: format!("`{}` has no key before `=`", shorten(content)),
            });
        }
        let Some(s) = sections.len().checked_sub(1) else {
            return Err(IniError {
                line,
                message: format!("`{}` comes before any `[section]` header", shorten(content)),
            });
        };
        let section = &mut sections[s];
        let e = match section.entries.iter().position(|e| e.key == key) {
            Some(e) => {
                section.entries[e] = Entry { key, value, line };
                e
            }
            None => {
                section.entries.push(Entry { key, value, line });
                section.entries.len() - 1
            }
        };
        open = Some((s, e, indent));
    }
    Ok(sections)
}

/// Cuts `value ; comment` / `value # comment` (the marker must follow
/// whitespace).
fn strip_inline_comment(s: &str) -> &str {
    let bytes = s.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if (*b == b';' || *b == b'#') && i > 0 && bytes[i - 1].is_ascii_whitespace() {
            return &s[..i];
        }
    }
    s
}

/// At most 60 characters of `s`, for messages.
pub fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(60).collect();
    if s.chars().count() > 60 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_continuations_and_repeats() {
        let text = "; head\n[program:a]\ncommand = sleep 1 ; why\nenvironment=A=\"1\",\n    B=\"2\"\n# x\nCommand: sleep 2#kept\n[program:a]\nuser=www\n";
        let s = parse_ini(text).unwrap_or_default();
        assert_eq!(s.len(), 1);
        let a = &s[0];
        assert_eq!(
            a.get("command").map(|e| e.value.as_str()),
            Some("sleep 2#kept")
        );
        assert_eq!(a.get("command").map(|e| e.line), Some(7));
        assert_eq!(
            a.get("environment").map(|e| e.value.as_str()),
            Some("A=\"1\",\nB=\"2\"")
        );
        assert_eq!(a.get("user").map(|e| e.line), Some(9));
    }

    #[test]
    fn errors_name_their_line() {
        let e = parse_ini("[program:a]\ncommand=x\nthis is not ini\n").err();
        assert_eq!(e.map(|e| e.line), Some(3));
        let e = parse_ini("command=x\n").err();
        assert_eq!(e.map(|e| e.line), Some(1));
        let e = parse_ini("\n[program:a\n").err();
        assert_eq!(e.map(|e| e.line), Some(2));
    }
}
