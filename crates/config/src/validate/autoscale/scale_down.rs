//! A process's `scale_down:` block: which instances a scale-down stops.

use regex::RegexBuilder;

use super::{is_null, missing, required_text, IDLE_KEYS, SCALE_DOWN_KEYS};
use crate::tree::Node;
use crate::validate::reader::{join, shorten, Ctx, Got};
use crate::{IdleDetection, ScaleDown, ScaleDownOrder};

/// `scale_down:`: `order`, and `idle` (required by `idle_first`, checked
/// but unused with `highest`).
pub(in crate::validate) fn parse_scale_down(
    node: &Node,
    path: &str,
    ctx: &mut Ctx<'_>,
) -> ScaleDown {
    let mut sd = ScaleDown::default();
    let Some(entries) = ctx.map(node, path) else {
        return sd;
    };
    let mut order_origin = None;
    let mut order_ok = true;
    let mut idle_key = None;
    for e in entries {
        let kpath = join(path, &e.key);
        let n = &e.value;
        match e.key.as_str() {
            "order" => match ctx.choice(n, &kpath, ScaleDownOrder::NAMES) {
                Got::Val(o) => {
                    sd.order = o;
                    order_origin = Some(n.origin.clone());
                }
                Got::Bad => order_ok = false,
                Got::Null => {}
            },
            "idle" if is_null(n) => {}
            "idle" => {
                idle_key = Some(e.key_origin.clone());
                sd.idle = read_idle(n, &kpath, ctx);
            }
            _ => ctx.unknown_key(e, path, SCALE_DOWN_KEYS, ""),
        }
    }
    // `idle` with `highest` is checked but not used (SPEC 12's example
    // has both), so switching to idle_first later needs no other change.
    if order_ok && sd.order == ScaleDownOrder::IdleFirst && idle_key.is_none() {
        ctx.err(
            order_origin.as_ref().unwrap_or(&node.origin),
            &join(path, "order"),
            "idle_first needs `idle`: how busy and idle are told apart, e.g. idle: { laravel_json: true } or idle: { busy: REGEX, idle: REGEX }",
        );
    }
    sd
}

fn read_idle(node: &Node, path: &str, ctx: &mut Ctx<'_>) -> Option<IdleDetection> {
    let entries = ctx.map(node, path)?;
    let mut laravel = None;
    let (mut busy, mut idle) = (None, None);
    let mut ok = true;
    for e in entries {
        let kpath = join(path, &e.key);
        let n = &e.value;
        match e.key.as_str() {
            "laravel_json" => match ctx.bool(n, &kpath) {
                Got::Val(true) => laravel = Some(e.key_origin.clone()),
                Got::Val(false) | Got::Null => {}
                Got::Bad => ok = false,
            },
            k @ ("busy" | "idle") => {
                let re = required_text(n, &kpath, ctx).filter(|r| check_regex(n, &kpath, r, ctx));
                ok &= re.is_some();
                if k == "busy" {
                    busy = re.map(|r| (r, e.key_origin.clone()));
                } else {
                    idle = re.map(|r| (r, e.key_origin.clone()));
                }
            }
            _ => {
                ctx.unknown_key(e, path, IDLE_KEYS, "");
                ok = false;
            }
        }
    }
    if !ok {
        return None;
    }
    match (laravel, busy, idle) {
        (Some(_), None, None) => Some(IdleDetection::LaravelJson),
        (None, Some((busy, _)), Some((idle, _))) => Some(IdleDetection::Regex { busy, idle }),
        (Some(_), b, i) => {
            if let Some((_, origin)) = b.as_ref().or(i.as_ref()) {
                ctx.err(origin, path, "laravel_json or busy/idle regexes, not both");
            }
            None
        }
        (None, Some(_), None) | (None, None, Some(_)) => {
            let k = if entries.iter().any(|e| e.key == "busy") {
                "idle"
            } else {
                "busy"
            };
            missing(
                node,
                path,
                k,
                "{ busy: \"Processing\", idle: \"Processed|Failed\" }",
                ctx,
            );
            None
        }
        (None, None, None) => {
            ctx.err(
                &node.origin,
                path,
                "give laravel_json: true, or busy and idle regexes over the instance's output lines",
            );
            None
        }
    }
}

/// A regex as the manager will match it (the `regex` crate's syntax); the
/// error is the engine's one-line reason, at the value.
fn check_regex(node: &Node, path: &str, re: &str, ctx: &mut Ctx<'_>) -> bool {
    match RegexBuilder::new(re).size_limit(1 << 20).build() {
        Ok(_) => true,
        Err(e) => {
            let text = e.to_string();
            let reason = text
                .lines()
                .rev()
                .find_map(|l| l.trim().strip_prefix("error: "))
                .unwrap_or(text.trim());
            ctx.err(
                &node.origin,
                path,
                format!("`{}` is not a valid regex: {reason}", shorten(re)),
            );
            false
        }
    }
}
