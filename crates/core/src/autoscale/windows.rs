//! Time windows: cron-bounded periods that move a process's min and max.
//!
//! Invariants:
//! - A window is active at `now` when its most recent `start` tick at or
//!   before `now` (in the window's zone) is later than its most recent `end`
//!   tick at or before `now`. A tick exactly at `now` has happened. A window
//!   whose `start` never ticked is inactive; one whose `start` ticked and
//!   whose `end` never did is active. Equal patterns never make a window
//!   active.
//! - Ticks are wall-clock times in the zone, found by croner, so DST days
//!   behave as the schedules do: a start inside a spring-forward gap takes
//!   effect at the first instant after the gap, a start inside a fall-back
//!   overlap once.
//! - [`effective_bounds`] always returns `min <= max`, both within the
//!   process's own `[min, max]` (see its doc for the rule when they
//!   conflict). Nothing here panics or reads a clock: `now` is an argument.

use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds};
use croner::Cron;
use jiff::tz::TimeZone;

/// One window as written in the config (the config crate maps its YAML
/// onto this).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowConfig {
    /// Cron pattern (5 fields, or 6 with seconds first) that opens it.
    pub start: String,
    /// Cron pattern that closes it.
    pub end: String,
    /// IANA zone name; `None` is UTC (the config layer resolves `$TZ`).
    pub timezone: Option<String>,
    /// The least instance count while active.
    pub min: Option<u32>,
    /// The most instances while active.
    pub max: Option<u32>,
}

/// Why a window cannot be used. The config loader reports these too; here
/// they are returned, never a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("bad cron `{pattern}`: {message}")]
    Cron { pattern: String, message: String },
    #[error("unknown time zone `{0}`")]
    Zone(String),
}

/// A parsed window.
#[derive(Debug, Clone)]
pub struct Window {
    start: Cron,
    end: Cron,
    tz: TimeZone,
    /// The least instance count while active.
    pub min: Option<u32>,
    /// The most instances while active.
    pub max: Option<u32>,
}

fn parse_cron(pattern: &str) -> Result<Cron, WindowError> {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .build()
        .parse(pattern)
        .map_err(|e| WindowError::Cron {
            pattern: pattern.to_owned(),
            message: e.to_string(),
        })
}

impl Window {
    /// Parses both patterns and the zone.
    pub fn parse(config: &WindowConfig) -> Result<Window, WindowError> {
        let tz = match &config.timezone {
            None => TimeZone::UTC,
            // The loader's lookup: exact IANA names, the bundled database.
            Some(name) => {
                phpeek_config::zone_by_name(name).ok_or_else(|| WindowError::Zone(name.clone()))?
            }
        };
        Ok(Window {
            start: parse_cron(&config.start)?,
            end: parse_cron(&config.end)?,
            tz,
            min: config.min,
            max: config.max,
        })
    }

    /// The most recent tick of `cron` at or before `now`, if it ever ticked
    /// within croner's search range (about a year back for rare patterns).
    fn last_tick(&self, cron: &Cron, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        crate::zoned::previous_tick(cron, &self.tz, now, true)
    }
}

/// Whether `window` is active at `now` (see the module invariants).
pub fn active(window: &Window, now: DateTime<Utc>) -> bool {
    match (
        window.last_tick(&window.start, now),
        window.last_tick(&window.end, now),
    ) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(start), Some(end)) => start > end,
    }
}

/// The min and max in force now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub min: u32,
    pub max: u32,
}

impl Bounds {
    /// `value` moved into `[min, max]`.
    pub fn clamp(&self, value: u32) -> u32 {
        value.max(self.min).min(self.max)
    }
}

/// The effective bounds at `now` for a process whose own bounds are
/// `[min, max]`:
///
/// - min = the largest `min` of the active windows, max = the smallest
///   `max` of the active windows; a window without one leaves it alone;
/// - both are then kept within the process's `[min, max]` (a window cannot
///   lower the process's min or raise its max);
/// - when they still cross (one active window's min above another's max),
///   **the max wins**: a cap usually protects a resource (a database at
///   night), a floor only latency. The same holds for a process whose own
///   min is above its max (the config layer rejects that).
pub fn effective_bounds(min: u32, max: u32, windows: &[Window], now: DateTime<Utc>) -> Bounds {
    let process_max = max;
    let process_min = min.min(process_max);
    let mut lo = process_min;
    let mut hi = process_max;
    for w in windows.iter().filter(|w| active(w, now)) {
        if let Some(m) = w.min {
            lo = lo.max(m);
        }
        if let Some(m) = w.max {
            hi = hi.min(m);
        }
    }
    let hi = hi.max(process_min);
    let lo = lo.min(hi);
    Bounds { min: lo, max: hi }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn window(
        start: &str,
        end: &str,
        tz: Option<&str>,
        min: Option<u32>,
        max: Option<u32>,
    ) -> Window {
        Window::parse(&WindowConfig {
            start: start.into(),
            end: end.into(),
            timezone: tz.map(str::to_owned),
            min,
            max,
        })
        .unwrap()
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    fn office() -> Window {
        window(
            "0 9 * * 1-5",
            "0 18 * * 1-5",
            Some("Europe/Amsterdam"),
            Some(10),
            None,
        )
    }

    #[test]
    fn office_hours_on_weekdays_in_amsterdam() {
        let w = office();
        // 2026-03-02 is a Monday; Amsterdam is UTC+1 in winter.
        let cases = [
            (utc(2026, 3, 2, 7, 59), false, "Monday 08:59 local"),
            (
                utc(2026, 3, 2, 8, 0),
                true,
                "Monday 09:00 local: the start tick has happened",
            ),
            (utc(2026, 3, 2, 12, 0), true, "Monday noon"),
            (utc(2026, 3, 2, 16, 59), true, "Monday 17:59 local"),
            (utc(2026, 3, 2, 17, 0), false, "Monday 18:00 local: closed"),
            (utc(2026, 3, 2, 23, 0), false, "Monday night"),
            (utc(2026, 3, 6, 12, 0), true, "Friday noon"),
            (utc(2026, 3, 7, 12, 0), false, "Saturday noon"),
            (utc(2026, 3, 8, 12, 0), false, "Sunday noon"),
            (
                utc(2026, 3, 9, 7, 0),
                false,
                "Monday 08:00 local, after a weekend",
            ),
        ];
        for (at, want, what) in cases {
            assert_eq!(active(&w, at), want, "{what} ({at})");
        }
    }

    #[test]
    fn the_zone_decides_the_hour() {
        // 09:30 UTC on a summer Monday: 11:30 in Amsterdam, 05:30 in New York.
        let at = utc(2026, 6, 1, 9, 30);
        let ams = window(
            "0 9 * * 1-5",
            "0 18 * * 1-5",
            Some("Europe/Amsterdam"),
            None,
            None,
        );
        let nyc = window(
            "0 9 * * 1-5",
            "0 18 * * 1-5",
            Some("America/New_York"),
            None,
            None,
        );
        let plain = window("0 9 * * 1-5", "0 18 * * 1-5", None, None, None);
        assert!(active(&ams, at));
        assert!(!active(&nyc, at));
        assert!(active(&plain, at), "no zone is UTC");
        // 08:30 UTC: Amsterdam opened at 07:00 UTC, UTC itself not yet.
        let early = utc(2026, 6, 1, 8, 30);
        assert!(active(&ams, early));
        assert!(!active(&plain, early));
    }

    #[test]
    fn a_night_window_crosses_midnight() {
        let night = window("0 0 * * *", "0 6 * * *", None, None, Some(4));
        let cases = [
            (utc(2026, 5, 10, 23, 59), false),
            (utc(2026, 5, 11, 0, 0), true),
            (utc(2026, 5, 11, 3, 0), true),
            (utc(2026, 5, 11, 5, 59), true),
            (utc(2026, 5, 11, 6, 0), false),
            (utc(2026, 5, 11, 12, 0), false),
        ];
        for (at, want) in cases {
            assert_eq!(active(&night, at), want, "{at}");
        }
        // 22:00 → 06:00 crosses midnight with the start before it.
        let late = window("0 22 * * *", "0 6 * * *", None, None, None);
        assert!(active(&late, utc(2026, 5, 10, 23, 0)));
        assert!(active(&late, utc(2026, 5, 11, 1, 0)));
        assert!(!active(&late, utc(2026, 5, 11, 7, 0)));
    }

    #[test]
    fn dst_days_follow_the_wall_clock() {
        let w = office();
        // 2026-03-30 is the Monday after spring-forward (29 March):
        // Amsterdam is UTC+2, so 09:00 local is 07:00 UTC.
        assert!(!active(&w, utc(2026, 3, 30, 6, 59)));
        assert!(active(&w, utc(2026, 3, 30, 7, 0)));
        assert!(!active(&w, utc(2026, 3, 30, 16, 0)));
        // 2026-10-26, the Monday after fall-back: UTC+1 again.
        assert!(!active(&w, utc(2026, 10, 26, 7, 30)));
        assert!(active(&w, utc(2026, 10, 26, 8, 0)));

        // A window that opens at 02:30, a time that does not exist on
        // 2026-03-29 in Amsterdam (02:00 jumps to 03:00 = 01:00 UTC):
        // it opens at the first instant after the gap.
        let gap = window(
            "0 30 2 * * *",
            "0 0 5 * * *",
            Some("Europe/Amsterdam"),
            None,
            None,
        );
        assert!(!active(&gap, utc(2026, 3, 29, 0, 59)));
        assert!(active(&gap, utc(2026, 3, 29, 1, 0)));
        assert!(active(&gap, utc(2026, 3, 29, 2, 59)));
        assert!(
            !active(&gap, utc(2026, 3, 29, 3, 0)),
            "05:00 CEST closes it"
        );

        // 02:30 exists twice on 2026-10-25 (03:00 CEST → 02:00 CET): the
        // window opens at the first 02:30 (00:30 UTC) and stays open
        // through the repeat.
        assert!(!active(&gap, utc(2026, 10, 25, 0, 29)));
        assert!(active(&gap, utc(2026, 10, 25, 0, 30)));
        assert!(active(&gap, utc(2026, 10, 25, 1, 45)));
        assert!(active(&gap, utc(2026, 10, 25, 3, 59)));
        assert!(
            !active(&gap, utc(2026, 10, 25, 4, 0)),
            "05:00 CET closes it"
        );
    }

    #[test]
    fn odd_patterns() {
        let same = window("0 9 * * *", "0 9 * * *", None, None, None);
        assert!(!active(&same, utc(2026, 5, 11, 9, 0)));
        assert!(!active(&same, utc(2026, 5, 11, 12, 0)));
        // February 30th never comes: never active, and no panic.
        let never = window("0 0 30 2 *", "0 1 * * *", None, None, None);
        assert!(!active(&never, utc(2026, 5, 11, 12, 0)));
        // The end never comes: active once the start ticked.
        let open = window("0 0 * * *", "0 0 30 2 *", None, None, None);
        assert!(active(&open, utc(2026, 5, 11, 12, 0)));
    }

    #[test]
    fn parse_errors_are_returned() {
        let bad = |start: &str, tz: Option<&str>| {
            Window::parse(&WindowConfig {
                start: start.into(),
                end: "0 6 * * *".into(),
                timezone: tz.map(str::to_owned),
                min: None,
                max: None,
            })
        };
        assert!(matches!(
            bad("0 9 * *", None),
            Err(WindowError::Cron { .. })
        ));
        assert!(matches!(
            bad("99 9 * * *", None),
            Err(WindowError::Cron { .. })
        ));
        assert_eq!(
            bad("0 9 * * *", Some("Mars/Olympus")).unwrap_err(),
            WindowError::Zone("Mars/Olympus".into())
        );
    }

    #[test]
    fn effective_bounds_rules() {
        let office = office(); // min 10
        let night = window("0 0 * * *", "0 6 * * *", None, None, Some(4));
        let big = window("0 0 * * *", "0 23 * * *", None, Some(6), Some(30));
        let monday_noon = utc(2026, 3, 2, 11, 0);
        let monday_3am = utc(2026, 3, 2, 3, 0);
        let saturday_noon = utc(2026, 3, 7, 12, 0);
        let ws = [office.clone(), night.clone()];
        let b = |min, max, ws: &[Window], at| effective_bounds(min, max, ws, at);

        assert_eq!(
            b(2, 20, &ws, saturday_noon),
            Bounds { min: 2, max: 20 },
            "none active"
        );
        assert_eq!(b(2, 20, &ws, monday_noon), Bounds { min: 10, max: 20 });
        assert_eq!(b(2, 20, &ws, monday_3am), Bounds { min: 2, max: 4 });
        // Within the process's bounds.
        assert_eq!(b(2, 8, &ws, monday_noon), Bounds { min: 8, max: 8 });
        assert_eq!(b(5, 20, &ws, monday_3am), Bounds { min: 5, max: 5 });
        // Overlapping: the largest min and the smallest max.
        let both = [office.clone(), big.clone()];
        assert_eq!(b(2, 20, &both, monday_noon), Bounds { min: 10, max: 20 });
        assert_eq!(b(2, 20, &both, saturday_noon), Bounds { min: 6, max: 20 });
        // Crossing: the max wins.
        let crossing = [big, night];
        assert_eq!(b(1, 20, &crossing, monday_3am), Bounds { min: 4, max: 4 });
        // A process min above its max: the max wins, no panic.
        assert_eq!(b(9, 3, &[], monday_noon), Bounds { min: 3, max: 3 });
    }

    #[test]
    fn the_seeds_time_based_script() {
        // `if [ "$HOUR" -ge 9 ] && [ "$HOUR" -le 17 ]; then 10 else 2`,
        // with `date +%H` in UTC.
        let business = window("0 9 * * *", "0 18 * * *", None, Some(10), None);
        for hour in 0..24 {
            for minute in [0, 1, 30, 59] {
                let at = utc(2026, 4, 15, hour, minute);
                let script = if (9..=17).contains(&hour) { 10 } else { 2 };
                let b = effective_bounds(2, 20, std::slice::from_ref(&business), at);
                assert_eq!(b.min, script, "{at}");
            }
        }
    }
}
