//! A process's `schedule:`: a cron string (short form) or a mapping.
//!
//! Invariants: a schedule is returned whenever the key holds a string or a
//! mapping, even with rejected values (they keep their defaults, the cron
//! its text), so the cross checks still see a scheduled process and do not
//! report follow-up errors; keys that only make sense with one
//! `concurrency` are errors with the others, checked after the whole
//! mapping was read (key order is free).

use std::time::Duration;

use super::reader::{join, origin_within, set, Ctx, Got};
use super::SCALE_LIMIT;
use crate::tree::{Node, Origin, Style, Value};
use crate::{cron, text::is_null_literal, zone};
use crate::{Concurrency, Schedule, DEFAULT_SCHEDULE_HISTORY};

pub(super) const SCHEDULE_KEYS: &[&str] = &[
    "cron",
    "timezone",
    "concurrency",
    "max_concurrent",
    "timeout",
    "starting_deadline",
    "run_on_start",
    "history",
    "suspended",
];

/// Largest `history` accepted.
const HISTORY_MAX: u64 = 1000;

/// Positions the cross checks need.
pub(crate) struct ScheduleMeta {
    pub(crate) max_concurrent_origin: Option<Origin>,
}

fn default_schedule(cron: String, timezone: String) -> Schedule {
    Schedule {
        cron,
        timezone,
        concurrency: Concurrency::Forbid,
        max_concurrent: 1,
        timeout: None,
        starting_deadline: Duration::ZERO,
        run_on_start: false,
        history: DEFAULT_SCHEDULE_HISTORY,
        suspended: false,
    }
}

/// `None` when the key is null (no schedule) or not a string or mapping
/// (reported).
pub(super) fn parse_schedule(
    node: &Node,
    path: &str,
    ctx: &mut Ctx<'_>,
) -> Option<(Schedule, ScheduleMeta)> {
    let default_zone = zone::default_zone(ctx.env_var("TZ"));
    let mut meta = ScheduleMeta {
        max_concurrent_origin: None,
    };
    match &node.value {
        Value::Scalar { text, style } => {
            if *style == Style::Plain && is_null_literal(text) {
                return None;
            }
            match read_cron(node, path, ctx) {
                Got::Val(cron) => Some((default_schedule(cron, default_zone), meta)),
                // Rejected (reported): still a scheduled process.
                Got::Bad => Some((default_schedule(String::new(), default_zone), meta)),
                Got::Null => None,
            }
        }
        Value::Seq(_) => {
            ctx.err(
                &node.origin,
                path,
                "expected a cron string (schedule: \"*/5 * * * *\") or a mapping with `cron`, found a list",
            );
            None
        }
        Value::Map(entries) => {
            let mut s = default_schedule(String::new(), default_zone);
            let mut cron_given = false;
            let mut concurrency_ok = true;
            let mut deadline_key = None;
            let mut max_key = None;
            for e in entries {
                let kpath = join(path, &e.key);
                let n = &e.value;
                match e.key.as_str() {
                    "cron" => match read_cron(n, &kpath, ctx) {
                        Got::Val(c) => {
                            s.cron = c;
                            cron_given = true;
                        }
                        Got::Bad => cron_given = true, // reported
                        Got::Null => {}
                    },
                    "timezone" => match ctx.opt_string(n, &kpath) {
                        Got::Val(Some(name)) => match zone::resolve(&name) {
                            Ok(tz) => s.timezone = tz,
                            Err(m) => ctx.err(&n.origin, &kpath, m),
                        },
                        Got::Val(None) | Got::Null | Got::Bad => {}
                    },
                    "concurrency" => match ctx.choice(n, &kpath, Concurrency::NAMES) {
                        Got::Bad => concurrency_ok = false,
                        got => set(&mut s.concurrency, got),
                    },
                    "max_concurrent" => match ctx.u32(n, &kpath, SCALE_LIMIT) {
                        Got::Val(0) => ctx.err(&n.origin, &kpath, "must be at least 1"),
                        Got::Val(v) => {
                            s.max_concurrent = v;
                            max_key = Some(e.key_origin.clone());
                            meta.max_concurrent_origin = Some(n.origin.clone());
                        }
                        Got::Null | Got::Bad => {}
                    },
                    "timeout" => match ctx.duration(n, &kpath) {
                        Got::Val(Duration::ZERO) => ctx.err(
                            &n.origin,
                            &kpath,
                            "must be more than 0 (leave it out for no limit)",
                        ),
                        Got::Val(d) => s.timeout = Some(d),
                        Got::Null | Got::Bad => {}
                    },
                    "starting_deadline" => match ctx.duration(n, &kpath) {
                        Got::Val(d) => {
                            s.starting_deadline = d;
                            deadline_key = Some(e.key_origin.clone());
                        }
                        Got::Null | Got::Bad => {}
                    },
                    "run_on_start" => set(&mut s.run_on_start, ctx.bool(n, &kpath)),
                    "history" => match ctx.u32(n, &kpath, HISTORY_MAX) {
                        Got::Val(0) => ctx.err(&n.origin, &kpath, "must be at least 1"),
                        got => set(&mut s.history, got),
                    },
                    "suspended" => set(&mut s.suspended, ctx.bool(n, &kpath)),
                    _ => ctx.unknown_key(e, path, SCHEDULE_KEYS, ""),
                }
            }
            if !cron_given {
                ctx.err(
                    &node.origin,
                    &join(path, "cron"),
                    "missing `cron`: e.g. cron: \"30 6 * * 1-5\"",
                );
            }
            if concurrency_ok {
                if let (Some(origin), false) = (&max_key, s.concurrency == Concurrency::Allow) {
                    ctx.err(
                        origin,
                        &join(path, "max_concurrent"),
                        format!(
                            "only with concurrency: allow (this schedule has {}: one run at a time)",
                            s.concurrency
                        ),
                    );
                }
                if let (Some(origin), false) = (&deadline_key, s.concurrency == Concurrency::Forbid)
                {
                    ctx.err(
                        origin,
                        &join(path, "starting_deadline"),
                        format!(
                            "only with concurrency: forbid (with {} a tick never waits for the previous run)",
                            s.concurrency
                        ),
                    );
                }
            }
            Some((s, meta))
        }
    }
}

/// A cron expression, checked and reported at the bad field; kept trimmed.
pub(super) fn read_cron(node: &Node, path: &str, ctx: &mut Ctx<'_>) -> Got<String> {
    match ctx.text(node, path, "a cron expression") {
        Got::Val(text) => match cron::check(&text) {
            Ok(()) => Got::Val(text.trim().to_string()),
            Err(p) => {
                let origin = origin_within(node, &text, p.offset);
                ctx.err(&origin, path, p.message);
                Got::Bad
            }
        },
        Got::Null => Got::Null,
        Got::Bad => Got::Bad,
    }
}
