//! "Did you mean …?" hints for unknown keys, by edit distance.

/// Optimal string alignment distance (Levenshtein plus adjacent swaps), so
/// `scael` is one edit away from `scale`.
pub(crate) fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    let at = |i: usize, j: usize| i * width + j;
    for i in 0..=a.len() {
        d[at(i, 0)] = i;
    }
    for j in 0..=b.len() {
        d[at(0, j)] = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[at(i - 1, j)] + 1)
                .min(d[at(i, j - 1)] + 1)
                .min(d[at(i - 1, j - 1)] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[at(i - 2, j - 2)] + 1);
            }
            d[at(i, j)] = v;
        }
    }
    d[at(a.len(), b.len())]
}

/// The closest candidate, if it is close enough to be a plausible typo.
pub(crate) fn closest<'a>(input: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let lower = input.to_ascii_lowercase().replace('-', "_");
    let limit = match input.chars().count() {
        0..=3 => 1,
        4..=8 => 2,
        _ => 3,
    };
    candidates
        .iter()
        .map(|&c| (distance(&lower, c), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// ` (did you mean `scale`?)` or an empty string.
pub(crate) fn hint(input: &str, candidates: &[&str]) -> String {
    match closest(input, candidates) {
        Some(c) => format!(" (did you mean `{c}`?)"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(distance("scale", "scale"), 0);
        assert_eq!(distance("scael", "scale"), 1);
        assert_eq!(distance("scal", "scale"), 1);
        assert_eq!(distance("commmand", "command"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn suggestions() {
        let keys = [
            "command",
            "scale",
            "max_scale",
            "restart",
            "depends_on",
            "env",
        ];
        assert_eq!(closest("scael", &keys), Some("scale"));
        assert_eq!(closest("Scale", &keys), Some("scale"));
        assert_eq!(closest("max-scale", &keys), Some("max_scale"));
        assert_eq!(closest("dependson", &keys), Some("depends_on"));
        assert_eq!(closest("cmd", &keys), None);
        assert_eq!(closest("completely_else", &keys), None);
        assert_eq!(hint("restrat", &keys), " (did you mean `restart`?)");
        assert_eq!(hint("zzz", &keys), "");
    }
}
