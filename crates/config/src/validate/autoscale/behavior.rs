//! `autoscale.behavior`: tolerance, and the stabilization and rate limit
//! of each direction.

use std::time::Duration;

use super::{BEHAVIOR_KEYS, MAX_PERCENT, SCALE_BEHAVIOR_KEYS};
use crate::tree::Node;
use crate::validate::reader::{join, parse_uint, set, shorten, Ctx, Got};
use crate::validate::SCALE_LIMIT;
use crate::{AutoscaleBehavior, MaxStep, ScaleBehavior};

pub(super) fn read_behavior(node: &Node, path: &str, ctx: &mut Ctx<'_>, b: &mut AutoscaleBehavior) {
    let Some(entries) = ctx.map(node, path) else {
        return;
    };
    for e in entries {
        let kpath = join(path, &e.key);
        let n = &e.value;
        match e.key.as_str() {
            "tolerance" => match ctx.number(n, &kpath) {
                Got::Val(t) if (0.0..1.0).contains(&t) => b.tolerance = t,
                Got::Val(_) => ctx.err(
                    &n.origin,
                    &kpath,
                    "must be 0 or more and below 1 (a relative change, 0.1 = 10 %)",
                ),
                Got::Null | Got::Bad => {}
            },
            "scale_up" => read_scale_behavior(n, &kpath, ctx, &mut b.scale_up),
            "scale_down" => read_scale_behavior(n, &kpath, ctx, &mut b.scale_down),
            _ => ctx.unknown_key(e, path, BEHAVIOR_KEYS, ""),
        }
    }
}

fn read_scale_behavior(node: &Node, path: &str, ctx: &mut Ctx<'_>, s: &mut ScaleBehavior) {
    let Some(entries) = ctx.map(node, path) else {
        return;
    };
    for e in entries {
        let kpath = join(path, &e.key);
        let n = &e.value;
        match e.key.as_str() {
            "stabilization" => set(&mut s.stabilization, ctx.duration(n, &kpath)),
            "max_step" => set(
                &mut s.max_step,
                ctx.parsed(n, &kpath, "a count or a percent", parse_max_step),
            ),
            "period" => match ctx.duration(n, &kpath) {
                Got::Val(Duration::ZERO) => ctx.err(&n.origin, &kpath, "must be more than 0"),
                got => set(&mut s.period, got),
            },
            _ => ctx.unknown_key(e, path, SCALE_BEHAVIOR_KEYS, ""),
        }
    }
}

/// `4` (instances) or `100%` (of the current count, at most 1000 %).
fn parse_max_step(s: &str) -> Result<MaxStep, String> {
    let t = s.trim();
    match t.strip_suffix('%') {
        Some(p) => parse_uint(p.trim_end(), MAX_PERCENT)
            .map_err(|_| format!("`{}` is not a percent from 0% to 1000%", shorten(t)))
            .and_then(|v| u32::try_from(v).map_err(|e| e.to_string()))
            .map(MaxStep::Percent),
        None => parse_uint(t, SCALE_LIMIT)
            .map_err(|m| format!("{m} (or a percent like 100%)"))
            .and_then(|v| u32::try_from(v).map_err(|e| e.to_string()))
            .map(MaxStep::Instances),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_steps() {
        assert_eq!(parse_max_step("4"), Ok(MaxStep::Instances(4)));
        assert_eq!(parse_max_step("0"), Ok(MaxStep::Instances(0)));
        assert_eq!(parse_max_step("100%"), Ok(MaxStep::Percent(100)));
        assert_eq!(parse_max_step(" 50 %"), Ok(MaxStep::Percent(50)));
        assert_eq!(parse_max_step("1000%"), Ok(MaxStep::Percent(1000)));
        for bad in ["1001%", "-1", "%", "1.5", "x%", "-5%"] {
            assert!(parse_max_step(bad).is_err(), "{bad}");
        }
    }
}
