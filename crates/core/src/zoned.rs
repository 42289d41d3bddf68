//! Cron ticks in a time zone, for callers that keep time as
//! `chrono::DateTime<Utc>`: the instant goes to croner as a `jiff::Zoned`
//! in the zone and the tick comes back as UTC.
//!
//! Instants outside jiff's range (years -9999..=9999) are clamped to its
//! ends before the search, so `DateTime::<Utc>::MIN_UTC` as "never" still
//! finds the first tick; a tick that does not fit chrono is no tick.

use chrono::{DateTime, Utc};
use croner::Cron;
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};

fn to_zoned(t: DateTime<Utc>, tz: &TimeZone) -> Zoned {
    let secs = t.timestamp();
    // chrono's sub-second part is below 10^9, within i32.
    let nanos = i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0);
    let ts = Timestamp::new(secs, nanos).unwrap_or(if secs < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    });
    ts.to_zoned(tz.clone())
}

fn to_utc(z: &Zoned) -> Option<DateTime<Utc>> {
    let ts = z.timestamp();
    let (mut secs, mut nanos) = (ts.as_second(), ts.subsec_nanosecond());
    // jiff's fraction has the sign of the instant; chrono's is never negative.
    if nanos < 0 {
        secs -= 1;
        nanos += 1_000_000_000;
    }
    DateTime::from_timestamp(secs, u32::try_from(nanos).ok()?)
}

/// The first tick of `cron` in `tz` after `t` (at `t` too when `inclusive`).
pub(crate) fn next_tick(
    cron: &Cron,
    tz: &TimeZone,
    t: DateTime<Utc>,
    inclusive: bool,
) -> Option<DateTime<Utc>> {
    let z = cron
        .find_next_occurrence(&to_zoned(t, tz), inclusive)
        .ok()?;
    to_utc(&z)
}

/// The last tick of `cron` in `tz` before `t` (at `t` too when `inclusive`).
pub(crate) fn previous_tick(
    cron: &Cron,
    tz: &TimeZone,
    t: DateTime<Utc>,
    inclusive: bool,
) -> Option<DateTime<Utc>> {
    let z = cron
        .find_previous_occurrence(&to_zoned(t, tz), inclusive)
        .ok()?;
    to_utc(&z)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any instant chrono and jiff both hold goes there and back.
        #[test]
        fn instants_round_trip(secs in -200_000_000_000i64..200_000_000_000, nanos in 0u32..1_000_000_000) {
            let Some(t) = DateTime::from_timestamp(secs, nanos) else { return Ok(()) };
            let z = to_zoned(t, &TimeZone::UTC);
            prop_assert_eq!(to_utc(&z), Some(t));
        }
    }

    #[test]
    fn out_of_range_instants_clamp() {
        let z = to_zoned(DateTime::<Utc>::MIN_UTC, &TimeZone::UTC);
        assert_eq!(z.timestamp(), Timestamp::MIN);
        let z = to_zoned(DateTime::<Utc>::MAX_UTC, &TimeZone::UTC);
        assert_eq!(z.timestamp(), Timestamp::MAX);
    }
}
