//! supervisord's quoting: a command split as its shlex does, and the
//! `environment` list.

use super::LineError;
use crate::import::ini::shorten;

/// Splits like Python's `shlex.split` (POSIX mode): whitespace separates,
/// `'…'` is literal, `"…"` allows `\"` and `\\`, a bare `\` escapes.
pub fn split_words(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(n) => cur.push(n),
                    None => return Err("a `\\` ends the text".into()),
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(n) => cur.push(n),
                        None => return Err("no closing `'`".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(n @ ('"' | '\\')) => cur.push(n),
                            Some(n) => {
                                cur.push('\\');
                                cur.push(n);
                            }
                            None => return Err("no closing `\"`".into()),
                        },
                        Some(n) => cur.push(n),
                        None => return Err("no closing `\"`".into()),
                    }
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// `KEY="value",KEY2=value2` (supervisord's `environment`), unexpanded.
pub fn parse_environment(s: &str, line: usize) -> Result<Vec<(String, String)>, LineError> {
    let mut pairs = Vec::new();
    for item in split_top_level(s, ',').map_err(|m| (line, format!("environment: {m}")))? {
        if item.trim().is_empty() {
            continue;
        }
        let Some((k, v)) = item.split_once('=') else {
            return Err((
                line,
                format!("environment: `{}` is not KEY=value", shorten(item.trim())),
            ));
        };
        let key = k.trim();
        let valid = key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err((
                line,
                format!("environment: `{}` is not a variable name", shorten(key)),
            ));
        }
        let words = split_words(v).map_err(|m| (line, format!("environment {key}: {m}")))?;
        if words.len() != 1 {
            return Err((
                line,
                format!("environment {key}: the value must be one word (quote it)"),
            ));
        }
        pairs.extend(words.into_iter().map(|w| (key.to_string(), w)));
    }
    Ok(pairs)
}

/// Splits on `sep` outside quotes (quotes are kept for [`split_words`]).
fn split_top_level(s: &str, sep: char) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match (quote, c) {
            (Some('"') | None, '\\') => escaped = true,
            (Some(q), c) if c == q => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            (None, c) if c == sep => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    if quote.is_some() {
        return Err("a quote is not closed".into());
    }
    parts.push(&s[start..]);
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shlex_like_splitting() {
        assert_eq!(
            split_words(r#"php -r 'echo "a b";' "x \" y" z\ w"#),
            Ok(vec![
                "php".to_string(),
                "-r".into(),
                "echo \"a b\";".into(),
                "x \" y".into(),
                "z w".into()
            ])
        );
        assert!(split_words("a 'b").is_err());
    }

    #[test]
    fn environment_pairs() {
        assert_eq!(
            parse_environment("A=\"1,2\",B=x, C='y z'", 3),
            Ok(vec![
                ("A".to_string(), "1,2".to_string()),
                ("B".into(), "x".into()),
                ("C".into(), "y z".into())
            ])
        );
        assert!(parse_environment("A", 3).is_err());
    }
}
