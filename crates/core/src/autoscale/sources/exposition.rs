//! The `prometheus` source: one sample of a text exposition (the Prometheus
//! text format 0.0.4, and the OpenMetrics lines that look the same).
//!
//! Only the sample lines matter: `name{label="v",…} value [timestamp]`.
//! Comments (`# HELP`, `# TYPE`, `# EOF`) and blank lines are skipped;
//! label values may hold `\\`, `\"` and `\n`; the quoted-name form of
//! Prometheus 3 (`{"my.metric",label="v"} 1`) is read too. Histograms and
//! summaries are plain lines with suffixed names (`jobs_seconds_count`).
//! Exemplars (`# {…} 1.0` after the value) are ignored.
//!
//! The sample wanted is the one line whose name is the metric's and whose
//! labels include every configured label with the same value; other lines
//! may carry more labels. A line that may be the metric's but does not
//! parse fails the sample (Prometheus fails a whole scrape for less);
//! lines of other metrics are not even parsed.

use std::collections::BTreeMap;

use super::SampleFailure;

/// One parsed sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpositionSample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    /// As written (NaN and infinities parse; the selection rejects them).
    pub value: f64,
    pub value_text: String,
}

impl ExpositionSample {
    fn has_label(&self, name: &str, value: &str) -> bool {
        self.labels.iter().any(|(n, v)| n == name && v == value)
    }
}

/// Why no single sample was selected.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Miss {
    NotFound,
    Ambiguous(usize),
    Malformed { line: usize, reason: String },
    NotFinite(String),
}

/// The value of the one sample of `metric` carrying every label of
/// `labels`.
pub fn select_sample(
    text: &str,
    metric: &str,
    labels: &BTreeMap<String, String>,
) -> Result<f64, SelectError> {
    select(text, metric, labels).map_err(|error| SelectError {
        selector: selector(metric, labels),
        error,
    })
}

/// A selection error with the selector it was for (see
/// [`SelectError::into_failure`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SelectError {
    selector: String,
    error: Miss,
}

impl SelectError {
    /// The failure, naming the (redacted) URL.
    pub fn into_failure(self, url: &str) -> SampleFailure {
        let url = super::redact_url(url);
        let selector = self.selector;
        match self.error {
            Miss::NotFound => SampleFailure::MetricNotFound { url, selector },
            Miss::Ambiguous(count) => SampleFailure::AmbiguousMetric {
                url,
                selector,
                count,
            },
            Miss::Malformed { line, reason } => SampleFailure::BadExposition { url, line, reason },
            Miss::NotFinite(value) => SampleFailure::NotFinite {
                what: format!("{selector} at {url}"),
                value,
            },
        }
    }
}

fn select(text: &str, metric: &str, labels: &BTreeMap<String, String>) -> Result<f64, Miss> {
    let mut found: Option<ExpositionSample> = None;
    let mut count = 0usize;
    for (index, line) in text.lines().enumerate() {
        if !may_be(line, metric) {
            continue;
        }
        let parsed = parse_sample_line(line).map_err(|reason| Miss::Malformed {
            line: index + 1,
            reason,
        })?;
        let Some(sample) = parsed else { continue };
        if sample.name == metric && labels.iter().all(|(n, v)| sample.has_label(n, v)) {
            count += 1;
            found = Some(sample);
        }
    }
    match (count, found) {
        (1, Some(sample)) if sample.value.is_finite() => Ok(sample.value),
        (1, Some(sample)) => Err(Miss::NotFinite(sample.value_text)),
        (0, _) | (_, None) => Err(Miss::NotFound),
        (n, _) => Err(Miss::Ambiguous(n)),
    }
}

/// Whether `line` can be a sample of `metric` (cheap: no parsing).
fn may_be(line: &str, metric: &str) -> bool {
    let line = line.trim_start_matches([' ', '\t']);
    if line.starts_with('{') {
        return true;
    }
    match line.strip_prefix(metric) {
        Some(rest) => !rest.starts_with(is_name_char),
        None => false,
    }
}

/// `metric{a="1",b="x"}`, for messages.
fn selector(metric: &str, labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return metric.to_string();
    }
    let inner: Vec<String> = labels
        .iter()
        .map(|(n, v)| format!("{n}={}", quote(v)))
        .collect();
    format!("{metric}{{{}}}", inner.join(","))
}

fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// One line: `Ok(None)` for blank lines and comments, else the sample or
/// why the line is not one.
pub fn parse_sample_line(line: &str) -> Result<Option<ExpositionSample>, String> {
    let mut cur = Cursor {
        rest: line.trim_start_matches(is_blank),
    };
    if cur.rest.is_empty() || cur.rest.starts_with('#') {
        return Ok(None);
    }
    let mut name = cur.take_name();
    let mut spaced = cur.skip_blanks();
    let mut labels = Vec::new();
    if cur.eat('{') {
        cur.read_labels(&mut name, &mut labels)?;
        spaced = cur.skip_blanks();
    }
    let name = name.ok_or_else(|| "no metric name".to_string())?;
    if !spaced || cur.rest.is_empty() {
        return Err(match cur.rest.chars().next() {
            None => format!("`{name}` has no value"),
            Some(c) => format!("unexpected {c:?} after `{name}`"),
        });
    }
    let value_text = cur.take_token();
    let value = parse_value(value_text)
        .ok_or_else(|| format!("value `{value_text}` of `{name}` is not a number"))?;
    cur.skip_blanks();
    if !cur.rest.is_empty() && !cur.rest.starts_with('#') {
        let timestamp = cur.take_token();
        if !timestamp.parse::<f64>().is_ok_and(f64::is_finite) {
            return Err(format!("timestamp `{timestamp}` is not a number"));
        }
        cur.skip_blanks();
        if !cur.rest.is_empty() && !cur.rest.starts_with('#') {
            return Err(format!("unexpected `{}` after the timestamp", cur.rest));
        }
    }
    Ok(Some(ExpositionSample {
        name,
        labels,
        value,
        value_text: value_text.to_string(),
    }))
}

/// Go's float syntax as Prometheus writes it, `NaN`, `+Inf`, `-Inf`
/// included (Rust's parser takes those case-insensitively).
fn parse_value(text: &str) -> Option<f64> {
    text.parse::<f64>().ok()
}

struct Cursor<'a> {
    rest: &'a str,
}

impl<'a> Cursor<'a> {
    /// Skips spaces and tabs; true when there were any.
    fn skip_blanks(&mut self) -> bool {
        let before = self.rest.len();
        self.rest = self.rest.trim_start_matches(is_blank);
        self.rest.len() != before
    }

    fn eat(&mut self, c: char) -> bool {
        match self.rest.strip_prefix(c) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    fn take_name(&mut self) -> Option<String> {
        if !self.rest.starts_with(is_name_start) {
            return None;
        }
        let end = self
            .rest
            .find(|c| !is_name_char(c))
            .unwrap_or(self.rest.len());
        let (name, rest) = self.rest.split_at(end);
        self.rest = rest;
        Some(name.to_string())
    }

    fn take_token(&mut self) -> &'a str {
        let end = self.rest.find(is_blank).unwrap_or(self.rest.len());
        let (token, rest) = self.rest.split_at(end);
        self.rest = rest;
        token
    }

    /// A `"…"` string with its escapes resolved; the cursor is at the
    /// opening quote.
    fn take_quoted(&mut self) -> Result<String, String> {
        if !self.eat('"') {
            return Err("expected a quoted string".to_string());
        }
        let mut out = String::new();
        let mut chars = self.rest.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.rest = &self.rest[i + 1..];
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, '\\')) => out.push('\\'),
                    Some((_, '"')) => out.push('"'),
                    // Not an escape of the format: kept as written.
                    Some((_, other)) => {
                        out.push('\\');
                        out.push(other);
                    }
                    None => break,
                },
                c => out.push(c),
            }
        }
        Err("a label value is not closed".to_string())
    }

    /// The labels after `{`, up to and including `}`. A quoted string
    /// without `=` is the metric's name (Prometheus 3's quoted form).
    fn read_labels(
        &mut self,
        name: &mut Option<String>,
        labels: &mut Vec<(String, String)>,
    ) -> Result<(), String> {
        loop {
            self.skip_blanks();
            if self.eat('}') {
                return Ok(());
            }
            let label = if self.rest.starts_with('"') {
                self.take_quoted()?
            } else {
                self.take_name()
                    .ok_or_else(|| match self.rest.chars().next() {
                        None => "the labels are not closed".to_string(),
                        Some(c) => format!("unexpected {c:?} in the labels"),
                    })?
            };
            self.skip_blanks();
            if self.eat('=') {
                self.skip_blanks();
                let value = self.take_quoted()?;
                labels.push((label, value));
            } else if name.is_none() && labels.is_empty() {
                *name = Some(label);
            } else {
                return Err(format!("label `{label}` has no value"));
            }
            self.skip_blanks();
            if self.eat('}') {
                return Ok(());
            }
            if !self.eat(',') {
                return Err(match self.rest.chars().next() {
                    None => "the labels are not closed".to_string(),
                    Some(c) => format!("unexpected {c:?} in the labels"),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn one(line: &str) -> ExpositionSample {
        match parse_sample_line(line) {
            Ok(Some(s)) => s,
            other => panic!("{line:?}: {other:?}"),
        }
    }

    #[test]
    fn parses_plain_and_labelled_lines() {
        let s = one("jobs_pending 42");
        assert_eq!((s.name.as_str(), s.value), ("jobs_pending", 42.0));
        assert!(s.labels.is_empty());

        let s = one(r#"jobs_pending{queue="default",host="a"} 7 1712345678901"#);
        assert_eq!(s.value, 7.0);
        assert_eq!(
            s.labels,
            vec![
                ("queue".to_string(), "default".to_string()),
                ("host".to_string(), "a".to_string())
            ]
        );

        let s = one("  jobs_pending { queue = \"x\" , } \t -1.5e3  ");
        assert_eq!(s.value, -1500.0);
        assert_eq!(s.labels, vec![("queue".to_string(), "x".to_string())]);

        let s = one("up{} 1");
        assert!(s.labels.is_empty());
        assert_eq!(one("a:b_c 0.25").name, "a:b_c");
    }

    #[test]
    fn resolves_escapes_in_label_values() {
        let s = one(r#"m{path="C:\\dir\\",msg="say \"hi\"\nbye",brace="}{,="} 1"#);
        assert_eq!(s.labels[0].1, r"C:\dir\");
        assert_eq!(s.labels[1].1, "say \"hi\"\nbye");
        assert_eq!(s.labels[2].1, "}{,=");
        let s = one(r#"m{odd="a\tb",utf="ünï"} 1"#);
        assert_eq!(s.labels[0].1, r"a\tb");
        assert_eq!(s.labels[1].1, "ünï");
    }

    #[test]
    fn reads_quoted_names_and_exemplars() {
        let s = one(r#"{"my.metric", "label.x"="v"} 3"#);
        assert_eq!(s.name, "my.metric");
        assert_eq!(s.labels, vec![("label.x".to_string(), "v".to_string())]);
        let s = one(r#"jobs_seconds_bucket{le="0.5"} 12 # {trace_id="abc"} 0.3 1.7e9"#);
        assert_eq!(s.value, 12.0);
        let s = one("jobs_total 5 1712345678.5 # {a=\"b\"} 1");
        assert_eq!(s.value, 5.0);
    }

    #[test]
    fn skips_comments_and_blank_lines() {
        for line in [
            "",
            "   ",
            "# HELP jobs_pending Jobs.",
            "# TYPE x gauge",
            "# EOF",
            "\t# x",
        ] {
            assert_eq!(parse_sample_line(line), Ok(None), "{line:?}");
        }
    }

    #[test]
    fn keeps_nan_and_infinities_as_written() {
        assert!(one("m NaN").value.is_nan());
        assert_eq!(one("m +Inf").value, f64::INFINITY);
        assert_eq!(one("m -Inf").value, f64::NEG_INFINITY);
    }

    #[test]
    fn rejects_malformed_lines() {
        for line in [
            "m",
            "m{",
            "m{a=\"1\"",
            "m{a=\"1} 2",
            "m{a} 1",
            "m{a=1} 1",
            "m{=\"x\"} 1",
            "m{a=\"1\" b=\"2\"} 1",
            "m{a=\"1\"}1",
            "m abc",
            "m 1 later",
            "m 1 2 3",
            "9m 1",
            "m{\"x\"=\"1\",\"name\"} 1",
            "m{a=\"\\",
        ] {
            assert!(parse_sample_line(line).is_err(), "{line:?}");
        }
    }

    const TEXT: &str = r#"# HELP jobs_pending Pending jobs.
# TYPE jobs_pending gauge
jobs_pending{queue="default",host="a"} 12
jobs_pending{queue="low",host="a"} 3
jobs_pending_total 99
jobs_pending_other{queue="default"} 1000
# TYPE jobs_seconds histogram
jobs_seconds_bucket{le="+Inf"} 8
jobs_seconds_count 8
jobs_seconds_sum 2.5
broken_line{ 1
weird{queue="default"} NaN
"#;

    #[test]
    fn selects_the_one_matching_sample() {
        let pick = |metric: &str, l: &[(&str, &str)]| select(TEXT, metric, &labels(l));
        assert_eq!(pick("jobs_pending", &[("queue", "default")]), Ok(12.0));
        assert_eq!(
            pick("jobs_pending", &[("queue", "low"), ("host", "a")]),
            Ok(3.0)
        );
        assert_eq!(pick("jobs_pending_total", &[]), Ok(99.0));
        assert_eq!(pick("jobs_seconds_count", &[]), Ok(8.0));
        assert_eq!(pick("jobs_seconds_bucket", &[("le", "+Inf")]), Ok(8.0));
        assert_eq!(pick("jobs_pending", &[]), Err(Miss::Ambiguous(2)));
        assert_eq!(
            pick("jobs_pending", &[("queue", "high")]),
            Err(Miss::NotFound)
        );
        assert_eq!(pick("absent", &[]), Err(Miss::NotFound));
        assert_eq!(pick("weird", &[]), Err(Miss::NotFinite("NaN".to_string())));
        assert!(matches!(
            pick("broken_line", &[]),
            Err(Miss::Malformed { line: 11, .. })
        ));
    }

    #[test]
    fn messages_name_the_selector_and_url() {
        let err = select_sample(TEXT, "jobs_pending", &labels(&[]))
            .unwrap_err()
            .into_failure("http://u:pw@127.0.0.1:9/metrics");
        assert_eq!(
            err.to_string(),
            "2 samples match jobs_pending at http://u:***@127.0.0.1:9/metrics; add labels to pick one"
        );
        let err = select_sample(TEXT, "jobs_pending", &labels(&[("queue", "a\"b")]))
            .unwrap_err()
            .into_failure("http://h/m");
        assert_eq!(
            err.to_string(),
            r#"no sample jobs_pending{queue="a\"b"} in the exposition of http://h/m"#
        );
        let err = select_sample(TEXT, "weird", &labels(&[]))
            .unwrap_err()
            .into_failure("http://h/m");
        assert_eq!(
            err.to_string(),
            "weird at http://h/m is NaN, not a finite number"
        );
    }

    #[test]
    fn crlf_and_garbage_do_not_panic() {
        let text = "m{a=\"1\"} 4\r\n\u{0}\u{ffff}\r\n";
        assert_eq!(select(text, "m", &labels(&[("a", "1")])), Ok(4.0));
        let junk = "{{{{\n}\n{\"\n\\\n{a=\"\\\"\n";
        let _ = select(junk, "m", &labels(&[]));
        let _ = select(junk, "", &labels(&[]));
    }
}
