//! Small text rules shared by the loader and the rest of phpeek-pm: what
//! counts as "null", how durations and long values are shown.

use std::time::Duration;

/// The plain scalars that mean "not set": `""`, `~`, `null`, `Null`,
/// `NULL` (YAML 1.2 core schema). Quoted scalars are never null; the
/// caller checks the style.
pub fn is_null_literal(s: &str) -> bool {
    matches!(s, "" | "~" | "null" | "Null" | "NULL")
}

/// A duration the way the file accepts it: `1m` for whole minutes, `5s`
/// for whole seconds, else `250ms` (the file's resolution is 1 ms).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(60_000) && ms > 0 {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// At most `max` characters of `s`; when cut, the last one is `…`.
pub fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    if max > 0 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn nulls() {
        for s in ["", "~", "null", "Null", "NULL"] {
            assert!(is_null_literal(s), "{s:?}");
        }
        for s in [" ", "nul", "nULL", "none", "0", "\"\""] {
            assert!(!is_null_literal(s), "{s:?}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_secs(5)), "5s");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
        assert_eq!(format_duration(Duration::from_secs(120)), "2m");
        assert_eq!(format_duration(Duration::from_secs(3600)), "60m");
    }

    #[test]
    fn shortening() {
        assert_eq!(shorten("short", 40), "short");
        assert_eq!(shorten("abcdef", 6), "abcdef");
        assert_eq!(shorten("abcdefg", 6), "abcde…");
        assert_eq!(shorten("ééééé", 3), "éé…");
        assert_eq!(shorten("abc", 1), "…");
        assert_eq!(shorten("abc", 0), "");
    }

    proptest! {
        #[test]
        fn shorten_keeps_a_prefix_within_max(s in "\\PC{0,60}", max in 0usize..50) {
            let out = shorten(&s, max);
            let len = s.chars().count();
            if len <= max {
                prop_assert_eq!(&out, &s);
            } else {
                prop_assert_eq!(out.chars().count(), max);
                let head = out.strip_suffix('…').unwrap_or(&out);
                prop_assert!(s.starts_with(head));
                prop_assert_eq!(max == 0, out.is_empty());
            }
        }

        #[test]
        fn formatted_durations_read_back(ms in 0u64..10_000_000) {
            let d = Duration::from_millis(ms);
            prop_assert_eq!(crate::duration::parse_duration(&format_duration(d)), Ok(d));
        }
    }
}
