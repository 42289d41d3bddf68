//! Durations (`250ms`, `5s`, `1m`, `1h`, bare seconds) and signal names.
//!
//! A duration is a non-negative number (integer or decimal) followed by an
//! optional unit: `ms`, `s`, `m` or `h`; without a unit it means seconds.
//! The resolution is one millisecond: values are rounded to the nearest
//! millisecond, so that the effective config printed by `check-config`
//! (`250ms`, `5s`, `2m`) reads back as exactly the same value. The upper
//! bound is 10 years, far above any sensible timeout.

use std::time::Duration;

/// Upper bound for any duration, in milliseconds (10 years).
const MAX_MS: f64 = 10.0 * 365.0 * 24.0 * 3600.0 * 1000.0;

/// Parses a duration; the error is a sentence fragment for the user.
pub(crate) fn parse_duration(input: &str) -> Result<Duration, String> {
    let s = input.trim();
    let hint = "expected a duration like `250ms`, `5s`, `1m`, `1h` or a number of seconds";
    if s.is_empty() {
        return Err(format!("empty value: {hint}"));
    }
    if s.starts_with('-') {
        return Err(format!("`{s}` is negative: durations must be 0 or more"));
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let unit_ms = match unit.trim_start() {
        "" | "s" => 1000.0,
        "ms" => 1.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        other => {
            return Err(format!("`{s}` has an unknown unit `{other}`: {hint}"));
        }
    };
    let number = number.strip_prefix('+').unwrap_or(number);
    let well_formed = !number.is_empty()
        && number.chars().all(|c| c.is_ascii_digit() || c == '.')
        && number.chars().filter(|&c| c == '.').count() <= 1
        && number.chars().any(|c| c.is_ascii_digit());
    if !well_formed {
        return Err(format!("`{s}` is not a duration: {hint}"));
    }
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a duration: {hint}"))?;
    let ms = (value * unit_ms).round();
    if !ms.is_finite() || ms > MAX_MS {
        return Err(format!("`{s}` is too long (at most 10 years)"));
    }
    Ok(Duration::from_millis(ms as u64))
}

/// Parses a size in bytes: a plain number, or a number with a unit: `B`,
/// `KiB`/`K`, `MiB`/`M`, `GiB`/`G` (powers of 1024) or `KB`, `MB`, `GB`
/// (powers of 1000), any case. The error is a sentence fragment.
pub(crate) fn parse_size(input: &str) -> Result<u64, String> {
    let s = input.trim();
    let hint = "expected a size like `8MiB`, `512KiB`, `1GiB` or a number of bytes";
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    if number.is_empty() {
        return Err(format!("`{s}` is not a size: {hint}"));
    }
    let factor: u64 = match unit.trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => return Err(format!("`{s}` has an unknown unit `{other}`: {hint}")),
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .ok_or_else(|| format!("`{s}` is too large"))
}

/// The one signal table: names as printed (`SIGTERM`) and their numbers.
/// The file also accepts a name without `SIG` and in any case.
const SIGNALS: &[(&str, i32)] = &[
    ("SIGHUP", libc::SIGHUP),
    ("SIGINT", libc::SIGINT),
    ("SIGQUIT", libc::SIGQUIT),
    ("SIGILL", libc::SIGILL),
    ("SIGTRAP", libc::SIGTRAP),
    ("SIGABRT", libc::SIGABRT),
    ("SIGBUS", libc::SIGBUS),
    ("SIGFPE", libc::SIGFPE),
    ("SIGKILL", libc::SIGKILL),
    ("SIGUSR1", libc::SIGUSR1),
    ("SIGSEGV", libc::SIGSEGV),
    ("SIGUSR2", libc::SIGUSR2),
    ("SIGPIPE", libc::SIGPIPE),
    ("SIGALRM", libc::SIGALRM),
    ("SIGTERM", libc::SIGTERM),
    ("SIGCHLD", libc::SIGCHLD),
    ("SIGCONT", libc::SIGCONT),
    ("SIGSTOP", libc::SIGSTOP),
    ("SIGTSTP", libc::SIGTSTP),
    ("SIGTTIN", libc::SIGTTIN),
    ("SIGTTOU", libc::SIGTTOU),
    ("SIGURG", libc::SIGURG),
    ("SIGXCPU", libc::SIGXCPU),
    ("SIGXFSZ", libc::SIGXFSZ),
    ("SIGVTALRM", libc::SIGVTALRM),
    ("SIGPROF", libc::SIGPROF),
    ("SIGWINCH", libc::SIGWINCH),
    ("SIGIO", libc::SIGIO),
    ("SIGSYS", libc::SIGSYS),
];

/// `SIGTERM` for `libc::SIGTERM`, …; `None` for numbers not in the list.
pub(crate) fn signal_name(sig: i32) -> Option<&'static str> {
    SIGNALS
        .iter()
        .find(|&&(_, n)| n == sig)
        .map(|&(name, _)| name)
}

/// Parses `TERM`, `SIGTERM`, `sigterm`, or a known signal number (`15`).
pub(crate) fn parse_signal(input: &str) -> Result<i32, String> {
    let s = input.trim();
    if let Ok(n) = s.parse::<i32>() {
        return match signal_name(n) {
            Some(_) => Ok(n),
            None => Err(format!("unknown signal number {n}")),
        };
    }
    let upper = s.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    SIGNALS
        .iter()
        .find(|(name, _)| name.strip_prefix("SIG") == Some(bare))
        .map(|&(_, n)| n)
        .ok_or_else(|| {
            format!(
                "unknown signal `{s}` (expected a name like SIGTERM, TERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGWINCH or SIGKILL)"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Result<Duration, String> {
        Ok(Duration::from_millis(n))
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), ms(250));
        assert_eq!(parse_duration("5s"), ms(5000));
        assert_eq!(parse_duration("1m"), ms(60_000));
        assert_eq!(parse_duration("1h"), ms(3_600_000));
        assert_eq!(parse_duration("30"), ms(30_000));
        assert_eq!(parse_duration("1.5"), ms(1500));
        assert_eq!(parse_duration("0.25s"), ms(250));
        assert_eq!(parse_duration(" 2 m "), ms(120_000));
        assert_eq!(parse_duration("0"), ms(0));
        assert_eq!(parse_duration(".5"), ms(500));
        assert_eq!(parse_duration("1.0005"), ms(1001));
    }

    #[test]
    fn bad_durations() {
        for bad in [
            "",
            "-1",
            "-5s",
            "abc",
            "5x",
            "1d",
            "5 ss",
            "1.2.3",
            ".",
            "s",
            "1e3",
            "1m30s",
            "99999999999h",
            "nan",
            "inf",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should fail");
        }
        assert!(parse_duration("-3").unwrap_err().contains("negative"));
    }

    #[test]
    fn signals() {
        assert_eq!(parse_signal("SIGTERM"), Ok(libc::SIGTERM));
        assert_eq!(parse_signal("term"), Ok(libc::SIGTERM));
        assert_eq!(parse_signal("SigQuit"), Ok(libc::SIGQUIT));
        assert_eq!(parse_signal("USR1"), Ok(libc::SIGUSR1));
        assert_eq!(parse_signal("winch"), Ok(libc::SIGWINCH));
        assert_eq!(parse_signal("9"), Ok(libc::SIGKILL));
        assert!(parse_signal("SIGFOO").is_err());
        assert!(parse_signal("0").is_err());
        assert_eq!(signal_name(libc::SIGTERM), Some("SIGTERM"));
        assert_eq!(signal_name(libc::SIGUSR2), Some("SIGUSR2"));
        assert_eq!(signal_name(0), None);
        for &(name, n) in SIGNALS {
            assert_eq!(parse_signal(name), Ok(n));
            assert_eq!(signal_name(n), Some(name));
            let bare = name.strip_prefix("SIG").unwrap_or(name);
            assert_eq!(parse_signal(&bare.to_ascii_lowercase()), Ok(n));
            assert_eq!(parse_signal(&n.to_string()), Ok(n));
        }
    }
}
