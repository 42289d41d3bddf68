//! Cron expressions of `schedule:` (SPEC 11), checked with the parser the
//! scheduler ticks with ([`cron_parser`]), field by field, so an error can
//! name the bad field and point at it.
//!
//! Accepted: 5 fields (`minute hour day-of-month month day-of-week`), or 6
//! with seconds first; the aliases in [`CRON_ALIASES`]; in any field `*`,
//! numbers, lists (`1,5`), ranges (`1-5`) and steps (`*/10`, `0-30/5`); in
//! day-of-month also `?`, `L` (last day) and `W` (`15W`, `LW`: nearest
//! weekday); in month also `JAN`..`DEC`; in day-of-week also `SUN`..`SAT`,
//! `7` for Sunday, `?`, `L` (`5L`: last Friday) and `#` (`1#2`: second
//! Monday). Names are case-insensitive. When both day fields are
//! restricted, a day matching either runs (as in vixie cron).
//!
//! Rejected: 7 fields (years), `@reboot` (see `run_on_start`), a single
//! number with a step (`5/10`; write `5-59/10`), a step of 0, reversed
//! ranges (`5-1`), and an expression that matches no date at all
//! (`0 0 30 2 *`).
//!
//! Invariant: [`check`] never panics and calls the parser only on ASCII
//! text it has already checked character by character.

use croner::parser::{CronParser, Seconds, Year};

/// The `@` forms, and what they stand for.
pub const CRON_ALIASES: &[(&str, &str)] = &[
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

/// The parser configuration of phpeek-pm: seconds optional (a sixth field,
/// first), no year field, day-of-month OR day-of-week.
pub fn cron_parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
}

/// A problem with an expression: where (characters into the text) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CronProblem {
    pub offset: usize,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Second,
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

const MONTHS: &[&str] = &[
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Second => "second",
            Field::Minute => "minute",
            Field::Hour => "hour",
            Field::DayOfMonth => "day of month",
            Field::Month => "month",
            Field::DayOfWeek => "day of week",
        }
    }

    fn range(self) -> (u64, u64) {
        match self {
            Field::Second | Field::Minute => (0, 59),
            Field::Hour => (0, 23),
            Field::DayOfMonth => (1, 31),
            Field::Month => (1, 12),
            Field::DayOfWeek => (0, 7),
        }
    }

    /// Punctuation allowed besides digits and `* , - /`.
    fn extra_chars(self) -> &'static [char] {
        match self {
            Field::DayOfMonth => &['?'],
            Field::DayOfWeek => &['?', '#'],
            _ => &[],
        }
    }

    /// Words allowed (upper case).
    fn words(self) -> &'static [&'static str] {
        match self {
            Field::DayOfMonth => &["L", "W", "LW"],
            Field::Month => MONTHS,
            Field::DayOfWeek => &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", "L"],
            _ => &[],
        }
    }

    /// What the field takes, for messages.
    fn takes(self) -> &'static str {
        match self {
            Field::Second | Field::Minute | Field::Hour => "numbers, *, lists, ranges and */steps",
            Field::DayOfMonth => "numbers 1-31, *, ?, L and W",
            Field::Month => "numbers 1-12 or JAN-DEC",
            Field::DayOfWeek => "numbers 0-7, SUN-SAT, L, # and ?",
        }
    }
}

/// One field of the expression: its text and where it starts.
struct Part<'a> {
    text: &'a str,
    offset: usize,
}

/// Splits on ASCII whitespace, keeping each field's offset in characters.
fn split(text: &str) -> Vec<Part<'_>> {
    let mut parts = Vec::new();
    let mut start: Option<(usize, usize)> = None; // (byte, char offset)
    for (chars, (byte, c)) in text.char_indices().enumerate() {
        if c.is_ascii_whitespace() {
            if let Some((b, o)) = start.take() {
                parts.push(Part {
                    text: text.get(b..byte).unwrap_or(""),
                    offset: o,
                });
            }
        } else if start.is_none() {
            start = Some((byte, chars));
        }
    }
    if let Some((b, o)) = start {
        parts.push(Part {
            text: text.get(b..).unwrap_or(""),
            offset: o,
        });
    }
    parts
}

fn fields_for(count: usize) -> &'static [Field] {
    const FIVE: &[Field] = &[
        Field::Minute,
        Field::Hour,
        Field::DayOfMonth,
        Field::Month,
        Field::DayOfWeek,
    ];
    const SIX: &[Field] = &[
        Field::Second,
        Field::Minute,
        Field::Hour,
        Field::DayOfMonth,
        Field::Month,
        Field::DayOfWeek,
    ];
    if count == 6 {
        SIX
    } else {
        FIVE
    }
}

const SHAPE: &str =
    "5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first";

/// Checks one expression (already substituted). `Ok` means the scheduler
/// will parse it and it matches at least one date.
pub(crate) fn check(text: &str) -> Result<(), CronProblem> {
    let parts = split(text);
    let at_start = parts.first().map_or(0, |p| p.offset);
    let problem = |offset: usize, message: String| Err(CronProblem { offset, message });
    let Some(first) = parts.first() else {
        return problem(
            0,
            format!("is empty: expected a cron expression like \"*/5 * * * *\": {SHAPE}"),
        );
    };
    if first.text.starts_with('@') {
        return check_alias(first.text, at_start, parts.len());
    }
    match parts.len() {
        5 | 6 => {}
        7 => {
            return problem(
                at_start,
                format!("has 7 fields: a year field is not supported; give {SHAPE}"),
            )
        }
        n => {
            return problem(
                at_start,
                format!("has {n} field{}: expected {SHAPE}", plural(n)),
            )
        }
    }
    let fields = fields_for(parts.len());
    for (i, (part, &field)) in parts.iter().zip(fields).enumerate() {
        let label = format!("field {} ({})", i + 1, field.name());
        if let Err(m) = lexical(part.text, field) {
            return problem(part.offset, format!("{label} `{}`: {m}", shown(part.text)));
        }
        let mut alone: Vec<&str> = vec!["*"; parts.len()];
        if let Some(slot) = alone.get_mut(i) {
            *slot = part.text;
        }
        if let Err(e) = cron_parser().parse(&alone.join(" ")) {
            return problem(part.offset, field_message(&label, part.text, field, &e));
        }
    }
    let words: Vec<&str> = parts.iter().map(|p| p.text).collect();
    let joined = words.join(" ");
    match cron_parser().parse(&joined) {
        Ok(cron) => {
            let dow = parts.last().map_or("*", |p| p.text);
            if never_fires(&cron, dow) {
                problem(
                    at_start,
                    format!(
                        "`{}` matches no date (e.g. day 30 of February): it would never run",
                        shown(&joined)
                    ),
                )
            } else {
                Ok(())
            }
        }
        Err(e) => problem(
            at_start,
            format!(
                "`{}` is not a valid cron expression: {}",
                shown(&joined),
                clean(&e)
            ),
        ),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn shown(s: &str) -> String {
    crate::text::shorten(s, 40)
}

fn check_alias(word: &str, offset: usize, count: usize) -> Result<(), CronProblem> {
    let lower = word.to_ascii_lowercase();
    let names: Vec<&str> = CRON_ALIASES.iter().map(|(n, _)| *n).collect();
    if names.contains(&lower.as_str()) {
        if count == 1 {
            return Ok(());
        }
        return Err(CronProblem {
            offset,
            message: format!("`{}` stands alone: nothing may follow it", shown(word)),
        });
    }
    let message = if lower == "@reboot" {
        "`@reboot` is not supported: use run_on_start: true (or a one-shot process)".to_string()
    } else {
        let hint = crate::suggest::hint(&lower, &names);
        format!(
            "unknown `{}`: expected one of {}{hint}",
            shown(word),
            names.join(", ")
        )
    };
    Err(CronProblem { offset, message })
}

/// Characters and words the field may hold; the error is a fragment.
fn lexical(text: &str, field: Field) -> Result<(), String> {
    let mut word = String::new();
    let flush = |word: &mut String| -> Result<(), String> {
        if word.is_empty() {
            return Ok(());
        }
        let w = std::mem::take(word);
        if field.words().contains(&w.as_str()) {
            return Ok(());
        }
        let names: &[&str] = match field {
            Field::Month => MONTHS,
            Field::DayOfWeek => DAYS,
            _ => &[],
        };
        let lower: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
        let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
        let hint = crate::suggest::closest(&w, &lower)
            .map(|n| format!(" (did you mean `{}`?)", n.to_ascii_uppercase()))
            .unwrap_or_default();
        Err(format!(
            "`{}` is not allowed here (this field takes {}){hint}",
            shown(&w),
            field.takes()
        ))
    };
    for c in text.chars() {
        if c.is_ascii_alphabetic() {
            word.push(c.to_ascii_uppercase());
            continue;
        }
        flush(&mut word)?;
        let ok = c.is_ascii_digit() || "*,-/".contains(c) || field.extra_chars().contains(&c);
        if !ok {
            let c = if c.is_control() {
                format!("{:?}", c)
            } else {
                c.to_string()
            };
            return Err(format!(
                "`{c}` is not allowed here (this field takes {})",
                field.takes()
            ));
        }
    }
    flush(&mut word)
}

/// The message for a field the parser rejected: a number out of range, a
/// zero step, a bad `#`, a reversed range, or the parser's own words.
fn field_message(label: &str, text: &str, field: Field, err: &croner::errors::CronError) -> String {
    let (lo, hi) = field.range();
    let f = shown(text);
    // Numbers with the character before them.
    let mut numbers: Vec<(Option<char>, &str)> = Vec::new();
    let mut prev: Option<char> = None;
    let mut start: Option<usize> = None;
    for (i, c) in text.char_indices() {
        if c.is_ascii_digit() {
            if start.is_none() {
                start = Some(i);
            }
        } else {
            if let Some(s) = start.take() {
                numbers.push((prev, text.get(s..i).unwrap_or("")));
            }
            prev = Some(c);
        }
    }
    if let Some(s) = start {
        numbers.push((prev, text.get(s..).unwrap_or("")));
    }
    for &(before, digits) in &numbers {
        let value = digits.parse::<u64>().unwrap_or(u64::MAX);
        match before {
            Some('/') if value == 0 => return format!("{label} `{f}`: a step of 0 never advances"),
            Some('/') => {}
            Some('#') if !(1..=5).contains(&value) => {
                return format!("{label} `{f}`: #{digits}: the nth weekday of a month is 1 to 5")
            }
            Some('#') => {}
            _ if value < lo || value > hi => {
                return if digits == text {
                    format!("{label} `{f}` is out of range {lo}-{hi}")
                } else {
                    format!("{label} `{f}`: {} is out of range {lo}-{hi}", shown(digits))
                };
            }
            _ => {}
        }
    }
    for piece in text.split(',') {
        let range = piece.split('/').next().unwrap_or("");
        if let Some((a, b)) = range.split_once('-') {
            if let (Ok(a), Ok(b)) = (a.parse::<u64>(), b.parse::<u64>()) {
                if a > b {
                    return format!(
                        "{label} `{f}`: the range {a}-{b} goes backwards (write the low end first)"
                    );
                }
            }
        }
    }
    format!("{label} `{f}` is not valid: {}", clean(err))
}

/// The parser's message as a sentence fragment.
fn clean(err: &croner::errors::CronError) -> String {
    use croner::errors::CronError;
    let text = match err {
        CronError::InvalidPattern(m)
        | CronError::IllegalCharacters(m)
        | CronError::ComponentError(m) => m.clone(),
        other => other.to_string(),
    };
    let text = text.trim().trim_end_matches('.');
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => "not a valid cron expression".to_string(),
    }
}

/// Whether the day fields can never match: day-of-week unrestricted, and
/// no day of month in any allowed month exists (`30 2`, `31 4,6,9,11`).
/// Searching for a next run would find the same, but far slower.
fn never_fires(cron: &croner::Cron, dow: &str) -> bool {
    if dow != "*" && dow != "?" {
        return false; // a weekday occurs every week
    }
    let days = &cron.pattern.days;
    if days.has_modifiers() {
        return false; // L and W always find a day
    }
    let longest = |month: u16| match month {
        2 => 29,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    let months = cron.pattern.months.values();
    !days
        .values()
        .iter()
        .any(|&d| months.iter().any(|&m| d <= longest(m)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> (usize, String) {
        match check(text) {
            Ok(()) => panic!("accepted {text:?}"),
            Err(p) => (p.offset, p.message),
        }
    }

    #[test]
    fn accepted() {
        for ok in [
            "* * * * *",
            "30 6 * * 1-5",
            "*/10 * * * * *",
            "0 0 L * *",
            "0 0 15W * *",
            "0 0 LW * *",
            "0 0 * * 5L",
            "0 0 * * 1#2",
            "0 9-17/2 * JAN-MAR mon-fri",
            "0,15,30,45 * ? * *",
            "0 0 29 2 *",
            "0 0 * * 7",
            "  5 4 * * sun  ",
            "@daily",
            "@YEARLY",
            "@annually",
            "@monthly",
            "@weekly",
            "@hourly",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn bad_fields_are_named_and_placed() {
        assert_eq!(
            err("30 25 * * *"),
            (3, "field 2 (hour) `25` is out of range 0-23".into())
        );
        assert_eq!(
            err("0 30 6 * * 8"),
            (11, "field 6 (day of week) `8` is out of range 0-7".into())
        );
        assert_eq!(
            err("0 1-25 * * *"),
            (2, "field 2 (hour) `1-25`: 25 is out of range 0-23".into())
        );
        assert_eq!(
            err("*/0 * * * *"),
            (
                0,
                "field 1 (minute) `*/0`: a step of 0 never advances".into()
            )
        );
        assert_eq!(
            err("0 0 * * 1#6").1,
            "field 5 (day of week) `1#6`: #6: the nth weekday of a month is 1 to 5"
        );
        assert_eq!(
            err("0 5-1 * * *").1,
            "field 2 (hour) `5-1`: the range 5-1 goes backwards (write the low end first)"
        );
        assert!(err("0 0 * * MOM").1.contains("(did you mean `MON`?)"));
        assert!(err("0 0 * JUNE *").1.contains("`JUNE` is not allowed here"));
        assert!(err("MON * * * *").1.starts_with("field 1 (minute) `MON`"));
        assert!(err("0 0 * * 1+2").1.contains("`+` is not allowed"));
        assert!(err("0 5/10 * * *")
            .1
            .starts_with("field 2 (hour) `5/10` is not valid"));
        assert_eq!(err("0 0 1 13 *").0, 6);
        assert!(err("é * * * *").1.contains("`é` is not allowed"));
    }

    #[test]
    fn shapes() {
        assert!(err("").1.starts_with("is empty"));
        assert!(err("   ").1.starts_with("is empty"));
        assert_eq!(
            err("* * * *").1,
            "has 4 fields: expected 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first"
        );
        assert!(err("0 0 0 1 1 * 2030")
            .1
            .starts_with("has 7 fields: a year field"));
        assert!(err("@reboot").1.contains("run_on_start"));
        assert!(err("@dayly").1.contains("(did you mean `@daily`?)"));
        assert!(err("@daily 5").1.contains("stands alone"));
        assert!(err("0 0 30 2 *").1.contains("matches no date"));
        assert!(err("0 0 31 4,6,9,11 *").1.contains("matches no date"));
    }

    #[test]
    fn aliases_are_what_the_parser_reads() {
        for (alias, long) in CRON_ALIASES {
            let a = cron_parser()
                .parse(alias)
                .map(|c| c.pattern.to_string())
                .ok();
            let b = cron_parser()
                .parse(long)
                .map(|c| c.pattern.to_string())
                .ok();
            assert!(a.is_some() && b.is_some(), "{alias}");
        }
    }

    #[test]
    fn never_panics() {
        use proptest::prelude::*;
        proptest!(|(s in "[0-9*,/#LW?A-Za-z\\- ]{0,40}")| {
            let _ = check(&s);
        });
    }
}
