//! Cron schedules: the next tick in the schedule's zone, what waking up
//! means after the wall clock moved, and what a tick does while a run is
//! going. All pure: the wall time is an argument.
//!
//! Invariants:
//! - Ticks follow wall time in the zone, DST-correct (croner): a time that
//!   does not exist runs at the first instant after the gap, a time that
//!   exists twice runs once.
//! - After a forward clock jump or a suspended machine, the missed ticks
//!   run at most once: one run, the rest counted as missed, never a burst.
//! - After the clock is set back, the schedule follows the wall clock from
//!   the new time (ticks between the new and the old time run again).
//! - The supervisor never sleeps longer than [`MAX_SLEEP`] between wakes,
//!   so a clock change is noticed within that time; there is no polling
//!   loop otherwise.

use std::time::Duration;

use chrono::{DateTime, Utc};
use croner::Cron;
use phpeek_config::Concurrency;

/// Longest sleep between two looks at the wall clock.
pub(crate) const MAX_SLEEP: Duration = Duration::from_secs(30);
/// A wake this close before the tick counts as the tick (timers may fire
/// a hair early relative to the wall clock).
pub(crate) const EARLY: Duration = Duration::from_millis(2);
/// A wake this late after the tick is still the tick, not a jump.
const LATE: Duration = Duration::from_secs(1);
/// Ticks counted per wake at most (a jump over years of per-second ticks
/// must not spin).
const MISSED_CAP: u64 = 100_000;

/// A parsed `cron` in its zone.
#[derive(Debug, Clone)]
pub(crate) struct CronSpec {
    cron: Cron,
    tz: jiff::tz::TimeZone,
}

impl CronSpec {
    /// The config loader already checked both; an error here is reported,
    /// never a panic.
    pub(crate) fn parse(pattern: &str, timezone: &str) -> Result<CronSpec, String> {
        // The loader's parser: the scheduler reads exactly what it accepted.
        let cron = phpeek_config::cron_parser()
            .parse(pattern)
            .map_err(|e| format!("bad cron `{pattern}`: {e}"))?;
        let tz = phpeek_config::zone_by_name(timezone)
            .ok_or_else(|| format!("unknown time zone `{timezone}`"))?;
        Ok(CronSpec { cron, tz })
    }

    /// The first tick strictly after `t`.
    pub(crate) fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        crate::zoned::next_tick(&self.cron, &self.tz, t, false)
    }

    /// Ticks in `(from, to]`, at most [`MISSED_CAP`].
    pub(crate) fn ticks_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
        let mut n = 0;
        let mut t = from;
        while n < MISSED_CAP {
            match self.next_after(t) {
                Some(next) if next <= to => {
                    n += 1;
                    t = next;
                }
                _ => break,
            }
        }
        n
    }
}

/// What a wake of the schedule timer means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// The tick is due: run once; `missed` earlier ticks were jumped over.
    Fire {
        missed: u64,
        next: Option<DateTime<Utc>>,
    },
    /// Not yet: sleep again towards `next`.
    Wait { next: Option<DateTime<Utc>> },
}

/// Decides a wake at wall time `now`, with the tick that was `due` and the
/// wall time of the previous wake.
pub(crate) fn on_wake(
    spec: &CronSpec,
    due: Option<DateTime<Utc>>,
    last_wake: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Wake {
    let early = chrono::Duration::from_std(EARLY).unwrap_or_default();
    let late = chrono::Duration::from_std(LATE).unwrap_or_default();
    // The clock was set back: follow it from the new time.
    if now + late < last_wake {
        return Wake::Wait {
            next: spec.next_after(now),
        };
    }
    let Some(due) = due else {
        return Wake::Wait {
            next: spec.next_after(now),
        };
    };
    if now + early < due {
        return Wake::Wait { next: Some(due) };
    }
    // Due. Ticks after `due` that have also passed (a jump, a suspend, or
    // a run that started late) are counted, not run.
    let missed = if now > due + late {
        spec.ticks_between(due, now - late)
    } else {
        0
    };
    let after = if now > due { now } else { due };
    Wake::Fire {
        missed,
        next: spec.next_after(after),
    }
}

/// How long to sleep at `now` towards `next`.
pub(crate) fn sleep_for(next: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Duration {
    match next {
        Some(t) => (t - now).to_std().unwrap_or(Duration::ZERO).min(MAX_SLEEP),
        None => MAX_SLEEP,
    }
}

/// What a tick (or a manual run) does, given the runs going now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TickAction {
    Start,
    /// Skipped; counted as missed.
    Skip,
    /// `forbid` with a `starting_deadline`: start if the run ends in time.
    Defer,
    /// `replace`: stop the running ones, then start.
    Replace,
}

pub(crate) fn decide_tick(
    concurrency: Concurrency,
    running: u32,
    max_concurrent: u32,
    starting_deadline: Duration,
) -> TickAction {
    if running == 0 {
        return TickAction::Start;
    }
    match concurrency {
        Concurrency::Forbid if starting_deadline.is_zero() => TickAction::Skip,
        Concurrency::Forbid => TickAction::Defer,
        Concurrency::Allow if running < max_concurrent.max(1) => TickAction::Start,
        Concurrency::Allow => TickAction::Skip,
        Concurrency::Replace => TickAction::Replace,
    }
}

/// What the supervisor keeps for a scheduled process.
#[derive(Debug)]
pub(crate) struct ScheduleState {
    /// None when the pattern could not be read (reported once).
    pub spec: Option<CronSpec>,
    /// The tick the timer sleeps towards.
    pub next: Option<DateTime<Utc>>,
    /// Wall time of the last wake (to notice a clock set back).
    pub last_wake: DateTime<Utc>,
    pub suspended: bool,
    pub missed: u64,
    /// `forbid` with `starting_deadline`: a tick waits until this wall time
    /// for the running one to end.
    pub deferred_until: Option<DateTime<Utc>>,
    /// `replace`: a run to start once the stopped ones are gone.
    pub replace_pending: Option<phpeek_wire::RunTrigger>,
    /// Bumped when the pending wake becomes meaningless.
    pub gen: u64,
    /// `run_on_start` was honoured.
    pub started: bool,
}

impl ScheduleState {
    /// `stopped`: `initial_state: stopped` (starts suspended, as after a
    /// `stop`).
    pub(crate) fn new(process: &str, s: &phpeek_config::Schedule, stopped: bool) -> Self {
        let spec = match CronSpec::parse(&s.cron, &s.timezone) {
            Ok(spec) => Some(spec),
            Err(e) => {
                tracing::error!(process, "`{process}` will not run: {e}");
                None
            }
        };
        ScheduleState {
            spec,
            next: None,
            last_wake: DateTime::<Utc>::MIN_UTC,
            suspended: s.suspended || stopped,
            missed: 0,
            deferred_until: None,
            replace_pending: None,
            gen: 0,
            started: false,
        }
    }
}

/// For tests and the API: the spec of a pattern in UTC.
#[cfg(test)]
pub(crate) fn utc(pattern: &str) -> CronSpec {
    match CronSpec::parse(pattern, "UTC") {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(s: &str) -> DateTime<Utc> {
        match DateTime::parse_from_rfc3339(s) {
            Ok(t) => t.with_timezone(&Utc),
            Err(e) => panic!("{s}: {e}"),
        }
    }

    fn zoned(pattern: &str, tz: &str) -> CronSpec {
        match CronSpec::parse(pattern, tz) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn five_and_six_fields_and_aliases() {
        let t = at("2026-03-10T10:15:30Z");
        assert_eq!(
            utc("* * * * *").next_after(t),
            Some(at("2026-03-10T10:16:00Z"))
        );
        assert_eq!(
            utc("*/10 * * * * *").next_after(t),
            Some(at("2026-03-10T10:15:40Z"))
        );
        assert_eq!(
            utc("@hourly").next_after(t),
            Some(at("2026-03-10T11:00:00Z"))
        );
        assert_eq!(
            utc("@daily").next_after(t),
            Some(at("2026-03-11T00:00:00Z"))
        );
        // The last day of the month, the second Tuesday, the weekday
        // nearest the 15th (2026-03-15 is a Sunday: Monday the 16th).
        assert_eq!(
            utc("0 0 L * *").next_after(t),
            Some(at("2026-03-31T00:00:00Z"))
        );
        assert_eq!(
            utc("0 0 * * 2#2").next_after(t),
            Some(at("2026-04-14T00:00:00Z"))
        );
        assert_eq!(
            utc("0 0 15W * *").next_after(t),
            Some(at("2026-03-16T00:00:00Z"))
        );
    }

    #[test]
    fn weekday_schedule_in_amsterdam() {
        let spec = zoned("30 6 * * 1-5", "Europe/Amsterdam");
        // Friday 2026-03-13 after 06:30 CET: next is Monday 06:30 CET = 05:30 UTC.
        let next = spec.next_after(at("2026-03-13T06:00:00Z"));
        assert_eq!(next, Some(at("2026-03-16T05:30:00Z")));
    }

    #[test]
    fn a_time_in_the_spring_gap_runs_right_after_it() {
        // Amsterdam 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does
        // not exist, so the 02:30 job runs at 03:00 CEST = 01:00 UTC.
        let spec = zoned("30 2 * * *", "Europe/Amsterdam");
        let next = spec.next_after(at("2026-03-28T23:00:00Z"));
        assert_eq!(next, Some(at("2026-03-29T01:00:00Z")));
        // New York 2026-03-08: 02:00 EST jumps to 03:00 EDT.
        let ny = zoned("30 2 * * *", "America/New_York");
        let next = ny.next_after(at("2026-03-08T05:00:00Z"));
        assert_eq!(next, Some(at("2026-03-08T07:00:00Z")));
    }

    #[test]
    fn a_time_in_the_autumn_overlap_runs_once() {
        // Amsterdam 2026-10-25: 03:00 CEST goes back to 02:00 CET; 02:30
        // happens twice (00:30 and 01:30 UTC) and runs only at the first.
        let spec = zoned("30 2 * * *", "Europe/Amsterdam");
        let first = spec.next_after(at("2026-10-24T22:00:00Z"));
        assert_eq!(first, Some(at("2026-10-25T00:30:00Z")));
        let second = first.and_then(|t| spec.next_after(t));
        assert_eq!(second, Some(at("2026-10-26T01:30:00Z")));
        // New York 2026-11-01: 01:30 happens at 05:30 and 06:30 UTC.
        let ny = zoned("30 1 * * *", "America/New_York");
        let first = ny.next_after(at("2026-11-01T04:00:00Z"));
        assert_eq!(first, Some(at("2026-11-01T05:30:00Z")));
        let second = first.and_then(|t| ny.next_after(t));
        assert_eq!(second, Some(at("2026-11-02T06:30:00Z")));
    }

    #[test]
    fn hourly_jobs_keep_their_interval_across_dst() {
        let spec = zoned("0 * * * *", "Europe/Amsterdam");
        let mut t = at("2026-10-24T23:30:00Z");
        let mut seen = Vec::new();
        for _ in 0..4 {
            t = match spec.next_after(t) {
                Some(n) => n,
                None => panic!("no next tick"),
            };
            seen.push(t);
        }
        // Every UTC hour, none twice, none skipped.
        for w in seen.windows(2) {
            assert_eq!(w[1] - w[0], chrono::Duration::hours(1), "{seen:?}");
        }
    }

    #[test]
    fn a_wake_at_the_tick_fires_once_and_moves_on() {
        let spec = utc("* * * * *");
        let due = at("2026-01-01T00:01:00Z");
        let w = on_wake(&spec, Some(due), at("2026-01-01T00:00:30Z"), due);
        assert_eq!(
            w,
            Wake::Fire {
                missed: 0,
                next: Some(at("2026-01-01T00:02:00Z"))
            }
        );
        // A hair early still fires, and the next tick is not the same one.
        let early = due - chrono::Duration::milliseconds(1);
        let w = on_wake(&spec, Some(due), at("2026-01-01T00:00:30Z"), early);
        assert!(
            matches!(w, Wake::Fire { missed: 0, next: Some(n) } if n == at("2026-01-01T00:02:00Z"))
        );
    }

    #[test]
    fn an_early_wake_waits_for_the_same_tick() {
        let spec = utc("* * * * *");
        let due = at("2026-01-01T00:01:00Z");
        let w = on_wake(
            &spec,
            Some(due),
            at("2026-01-01T00:00:00Z"),
            at("2026-01-01T00:00:30Z"),
        );
        assert_eq!(w, Wake::Wait { next: Some(due) });
    }

    #[test]
    fn a_forward_jump_runs_once_and_counts_the_rest() {
        let spec = utc("* * * * *");
        let due = at("2026-01-01T00:01:00Z");
        // The clock jumped an hour (or the machine slept).
        let now = at("2026-01-01T01:00:30Z");
        let w = on_wake(&spec, Some(due), at("2026-01-01T00:00:50Z"), now);
        assert_eq!(
            w,
            Wake::Fire {
                missed: 59,
                next: Some(at("2026-01-01T01:01:00Z"))
            }
        );
    }

    #[test]
    fn a_backward_jump_follows_the_wall_clock() {
        let spec = utc("0 * * * *");
        let due = at("2026-01-01T10:00:00Z");
        let w = on_wake(
            &spec,
            Some(due),
            at("2026-01-01T09:59:00Z"),
            at("2026-01-01T07:10:00Z"),
        );
        assert_eq!(
            w,
            Wake::Wait {
                next: Some(at("2026-01-01T08:00:00Z"))
            }
        );
    }

    #[test]
    fn sleeps_are_bounded() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single();
        let Some(now) = now else { panic!("valid date") };
        assert_eq!(
            sleep_for(Some(now + chrono::Duration::hours(5)), now),
            MAX_SLEEP
        );
        assert_eq!(
            sleep_for(Some(now + chrono::Duration::milliseconds(250)), now),
            Duration::from_millis(250)
        );
        assert_eq!(
            sleep_for(Some(now - chrono::Duration::seconds(1)), now),
            Duration::ZERO
        );
    }

    #[test]
    fn tick_decisions() {
        use Concurrency::*;
        let zero = Duration::ZERO;
        assert_eq!(decide_tick(Forbid, 0, 1, zero), TickAction::Start);
        assert_eq!(decide_tick(Forbid, 1, 1, zero), TickAction::Skip);
        assert_eq!(
            decide_tick(Forbid, 1, 1, Duration::from_secs(5)),
            TickAction::Defer
        );
        assert_eq!(decide_tick(Allow, 2, 3, zero), TickAction::Start);
        assert_eq!(decide_tick(Allow, 3, 3, zero), TickAction::Skip);
        assert_eq!(decide_tick(Replace, 1, 1, zero), TickAction::Replace);
    }
}
