//! `autoscale.windows`: time windows that move `min` and `max`.

use super::{at, is_null, missing, non_null, WINDOW_KEYS};
use crate::tree::{Node, Origin};
use crate::validate::reader::{join, Ctx, Got};
use crate::validate::schedule::read_cron;
use crate::validate::SCALE_LIMIT;
use crate::{zone, Autoscale, AutoscaleWindow};

pub(super) struct Window {
    pub(super) index: usize,
    pub(super) window: AutoscaleWindow,
    min_origin: Option<Origin>,
    max_origin: Option<Origin>,
}

pub(super) fn read_window(
    node: &Node,
    path: &str,
    index: usize,
    ctx: &mut Ctx<'_>,
) -> Option<Window> {
    let entries = ctx.map(node, path)?;
    let mut w = AutoscaleWindow {
        start: String::new(),
        end: String::new(),
        timezone: zone::default_zone(ctx.env_var("TZ")),
        min: None,
        max: None,
    };
    let (mut min, mut max) = (None, None);
    let mut ok = true;
    let mut end_origin = None;
    for e in entries {
        let kpath = join(path, &e.key);
        let n = &e.value;
        match e.key.as_str() {
            k @ ("start" | "end") => match non_null(n, &kpath, ctx, |c| read_cron(n, &kpath, c)) {
                Got::Val(c) if k == "start" => w.start = c,
                Got::Val(c) => {
                    w.end = c;
                    end_origin = Some(n.origin.clone());
                }
                Got::Null | Got::Bad => ok = false,
            },
            "timezone" => match ctx.opt_string(n, &kpath) {
                Got::Val(Some(name)) => match zone::resolve(&name) {
                    Ok(tz) => w.timezone = tz,
                    Err(m) => {
                        ctx.err(&n.origin, &kpath, m);
                        ok = false;
                    }
                },
                Got::Val(None) | Got::Null => {}
                Got::Bad => ok = false,
            },
            "min" | "max" => {
                let got = at(n, ctx.u32(n, &kpath, SCALE_LIMIT));
                ok &= got.is_some() || is_null(n);
                if e.key == "min" {
                    min = got;
                } else {
                    max = got;
                }
            }
            _ => {
                ctx.unknown_key(e, path, WINDOW_KEYS, "");
                ok = false;
            }
        }
    }
    for (k, example) in [
        ("start", "start: \"0 9 * * 1-5\""),
        ("end", "end: \"0 18 * * 1-5\""),
    ] {
        if !entries.iter().any(|e| e.key == k) {
            missing(node, path, k, example, ctx);
            ok = false;
        }
    }
    if ok && min.is_none() && max.is_none() {
        ctx.err(
            &node.origin,
            path,
            "a window without `min` or `max` changes nothing: give one or both",
        );
        ok = false;
    }
    if let (Some(lo), Some(hi)) = (&min, &max) {
        if lo.value > hi.value {
            ctx.err(
                &lo.origin,
                &join(path, "min"),
                format!("min {} is above this window's max {}", lo.value, hi.value),
            );
            ok = false;
        }
    }
    if let Some(origin) = end_origin.filter(|_| !w.start.is_empty() && w.start == w.end) {
        ctx.err(
            &origin,
            &join(path, "end"),
            "is the same as `start`: the window would never be active",
        );
        ok = false;
    }
    if !ok {
        return None;
    }
    w.min = min.as_ref().map(|m| m.value);
    w.max = max.as_ref().map(|m| m.value);
    Some(Window {
        index,
        window: w,
        min_origin: min.map(|m| m.origin),
        max_origin: max.map(|m| m.origin),
    })
}

/// A window may raise the lower bound or lower the upper one, but only
/// within the process's `min..max`.
pub(super) fn check_window_bounds(w: &Window, a: &Autoscale, path: &str, ctx: &mut Ctx<'_>) {
    if let (Some(m), Some(origin)) = (w.window.min, &w.min_origin) {
        if m > a.max {
            ctx.err(
                origin,
                &join(path, "min"),
                format!("min {m} is above autoscale max {}", a.max),
            );
        }
    }
    if let (Some(m), Some(origin)) = (w.window.max, &w.max_origin) {
        if m < a.min {
            ctx.err(
                origin,
                &join(path, "max"),
                format!("max {m} is below autoscale min {}", a.min),
            );
        }
    }
}
