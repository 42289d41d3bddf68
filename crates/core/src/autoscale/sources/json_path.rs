//! The `http` source's dotted path: `queues.default.pending`, `items.0.size`.
//!
//! Each segment is an object key, or an index (decimal digits) into an
//! array. The empty path is the whole document. Keys that contain a dot
//! cannot be named. The value found must be a number, or a string holding
//! a finite number (`"42"`, `" 1.5 "`).

use serde_json::Value;

/// Why a path does not lead to a number.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JsonPathError {
    #[error("no key `{segment}` in the object at {}", place(.at))]
    MissingKey { at: String, segment: String },
    #[error("no index {segment} in the array of {len} at {}", place(.at))]
    MissingIndex {
        at: String,
        segment: String,
        len: usize,
    },
    #[error("{} is {found}, which has no `{segment}`", place(.at))]
    NotAContainer {
        at: String,
        found: String,
        segment: String,
    },
    #[error("the value is {found}, not a number")]
    NotANumber { found: String },
    /// A numeric string that is NaN or infinite.
    #[error("the value is {0}, not a finite number")]
    NotFinite(String),
}

fn place(at: &str) -> String {
    if at.is_empty() {
        "the top".to_string()
    } else {
        format!("`{at}`")
    }
}

/// The number at `path` in `doc`.
pub fn number_at(doc: &Value, path: &str) -> Result<f64, JsonPathError> {
    let mut here = doc;
    let mut walked = 0usize;
    if !path.is_empty() {
        for segment in path.split('.') {
            let at = path.get(..walked.saturating_sub(1)).unwrap_or("");
            here = step(here, segment, at)?;
            walked += segment.len() + 1;
        }
    }
    number_of(here)
}

fn step<'v>(here: &'v Value, segment: &str, at: &str) -> Result<&'v Value, JsonPathError> {
    match here {
        Value::Object(map) => map.get(segment).ok_or_else(|| JsonPathError::MissingKey {
            at: at.to_string(),
            segment: segment.to_string(),
        }),
        Value::Array(items) if is_index(segment) => segment
            .parse::<usize>()
            .ok()
            .and_then(|i| items.get(i))
            .ok_or_else(|| JsonPathError::MissingIndex {
                at: at.to_string(),
                segment: segment.to_string(),
                len: items.len(),
            }),
        other => Err(JsonPathError::NotAContainer {
            at: at.to_string(),
            found: describe(other),
            segment: segment.to_string(),
        }),
    }
}

fn is_index(segment: &str) -> bool {
    !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit())
}

fn number_of(value: &Value) -> Result<f64, JsonPathError> {
    match value {
        Value::Number(n) => match n.as_f64() {
            Some(v) if v.is_finite() => Ok(v),
            _ => Err(JsonPathError::NotFinite(n.to_string())),
        },
        Value::String(s) => match s.trim().parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            Ok(_) => Err(JsonPathError::NotFinite(shown_string(s))),
            Err(_) => Err(JsonPathError::NotANumber {
                found: describe(value),
            }),
        },
        other => Err(JsonPathError::NotANumber {
            found: describe(other),
        }),
    }
}

fn shown_string(s: &str) -> String {
    format!("{:?}", phpeek_config::shorten(s, 40))
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("the string {}", shown_string(s)),
        Value::Array(items) => format!("an array of {}", items.len()),
        Value::Object(_) => "an object".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({
            "queues": {
                "default": { "pending": 42, "text": " 7.5 ", "nan": "NaN", "inf": "+Inf", "word": "many" },
                "0": { "pending": 3 }
            },
            "workers": [ { "busy": 1 }, { "busy": -2.5 } ],
            "flag": true,
            "nothing": null,
            "big": 18446744073709551615u64,
            "a.b": 9
        })
    }

    #[test]
    fn walks_objects_and_arrays() {
        let d = doc();
        assert_eq!(number_at(&d, "queues.default.pending"), Ok(42.0));
        assert_eq!(number_at(&d, "workers.1.busy"), Ok(-2.5));
        assert_eq!(number_at(&d, "workers.0.busy"), Ok(1.0));
        // A numeric segment on an object is a key.
        assert_eq!(number_at(&d, "queues.0.pending"), Ok(3.0));
        assert_eq!(number_at(&d, "big"), Ok(18446744073709551615.0));
        assert_eq!(number_at(&json!(5), ""), Ok(5.0));
        assert_eq!(number_at(&json!([1, [2, 3]]), "1.1"), Ok(3.0));
    }

    #[test]
    fn numeric_strings_count_but_not_nan_or_infinity() {
        let d = doc();
        assert_eq!(number_at(&d, "queues.default.text"), Ok(7.5));
        assert!(matches!(
            number_at(&d, "queues.default.nan"),
            Err(JsonPathError::NotFinite(_))
        ));
        assert!(matches!(
            number_at(&d, "queues.default.inf"),
            Err(JsonPathError::NotFinite(_))
        ));
        let e = number_at(&d, "queues.default.word").unwrap_err();
        assert_eq!(
            e.to_string(),
            "the value is the string \"many\", not a number"
        );
    }

    #[test]
    fn says_where_the_path_ends() {
        let d = doc();
        let e = number_at(&d, "queues.low.pending").unwrap_err();
        assert_eq!(e.to_string(), "no key `low` in the object at `queues`");
        let e = number_at(&d, "nope").unwrap_err();
        assert_eq!(e.to_string(), "no key `nope` in the object at the top");
        let e = number_at(&d, "workers.2.busy").unwrap_err();
        assert_eq!(e.to_string(), "no index 2 in the array of 2 at `workers`");
        let e = number_at(&d, "workers.first").unwrap_err();
        assert_eq!(
            e.to_string(),
            "`workers` is an array of 2, which has no `first`"
        );
        let e = number_at(&d, "queues.default.pending.x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "`queues.default.pending` is 42, which has no `x`"
        );
        // Keys with dots cannot be named.
        assert!(number_at(&d, "a.b").is_err());
        assert!(number_at(&d, "workers.99999999999999999999999").is_err());
    }

    #[test]
    fn rejects_values_that_are_not_numbers() {
        let d = doc();
        for path in ["flag", "nothing", "queues", "workers", "queues.default"] {
            assert!(
                matches!(number_at(&d, path), Err(JsonPathError::NotANumber { .. })),
                "{path}"
            );
        }
    }

    #[test]
    fn odd_paths_do_not_panic() {
        let d = doc();
        for path in [
            ".",
            "..",
            ".queues",
            "queues.",
            "é.ü",
            "workers..busy",
            "\u{0}",
        ] {
            assert!(number_at(&d, path).is_err(), "{path}");
        }
    }
}
