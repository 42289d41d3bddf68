//! A process's `autoscale:` and `scale_down:` blocks (SPEC 12).
//!
//! Invariants:
//! * An autoscale is returned whenever the key holds a mapping, even with
//!   rejected values (they keep placeholders), so the cross checks still
//!   see an autoscaled process; the bounds checks that need `min` and
//!   `max` run only when both were accepted and `min <= max`
//!   ([`AutoscaleMeta::bounds_ok`]), so one mistake is one error.
//! * A metric is kept only when its source and its target were accepted;
//!   each metric entry has exactly one source key, and every source but
//!   `cpu` exactly one target (`per_instance` or `steps`).
//! * Key order is free: rules that relate keys (`timeout` default from
//!   `interval`, rows and windows against `min`/`max`) run after the whole
//!   mapping was read.
//! * Nothing here is expanded per instance (the autoscaler samples once
//!   per process), so per-instance variables are errors in its values.

mod behavior;
mod metrics;
mod scale_down;
mod windows;

use std::time::Duration;

use super::reader::{join, set, Ctx, Got};
use super::SCALE_LIMIT;
use crate::substitute::instance_var_used;
use crate::text::is_null_literal;
use crate::tree::{Node, Origin, Style, Value};
use crate::{Autoscale, AutoscaleBehavior, AutoscaleMetric, DEFAULT_AUTOSCALE_INTERVAL};
use behavior::read_behavior;
use metrics::{check_rows, read_metric};
pub(super) use scale_down::parse_scale_down;
use windows::{check_window_bounds, read_window};

pub(super) const AUTOSCALE_KEYS: &[&str] = &[
    "min", "max", "interval", "metrics", "windows", "behavior", "fallback", "dry_run",
];
/// The source keys of a metric, one per [`crate::MetricSource`] kind.
const SOURCE_KEYS: &[&str] = &["redis", "command", "http", "prometheus", "cpu"];
pub(super) const METRIC_KEYS: &[&str] = &[
    "redis",
    "command",
    "http",
    "prometheus",
    "cpu",
    "per_instance",
    "steps",
    "timeout",
];
pub(super) const REDIS_KEYS: &[&str] = &["url", "llen"];
pub(super) const HTTP_KEYS: &[&str] = &["url", "json"];
pub(super) const PROMETHEUS_KEYS: &[&str] = &["url", "metric", "labels"];
pub(super) const CPU_KEYS: &[&str] = &["utilization"];
pub(super) const STEP_KEYS: &[&str] = &["above", "instances"];
pub(super) const WINDOW_KEYS: &[&str] = &["start", "end", "timezone", "min", "max"];
pub(super) const BEHAVIOR_KEYS: &[&str] = &["tolerance", "scale_up", "scale_down"];
pub(super) const SCALE_BEHAVIOR_KEYS: &[&str] = &["stabilization", "max_step", "period"];
pub(super) const SCALE_DOWN_KEYS: &[&str] = &["order", "idle"];
pub(super) const IDLE_KEYS: &[&str] = &["laravel_json", "busy", "idle"];

/// Shortest `interval`.
const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// A metric's `timeout` default is the smaller of `interval` and this.
const DEFAULT_METRIC_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest `cpu.utilization` (% of one core) and `max_step` percent.
const MAX_PERCENT: u64 = 1000;

const STEPS_EXAMPLE: &str = "steps: [{ above: 100, instances: 5 }]";

/// Positions the cross checks need.
pub(crate) struct AutoscaleMeta {
    /// The `autoscale` key.
    pub(crate) key: Origin,
    pub(crate) max_origin: Origin,
    /// `min` and `max` were both accepted and `min <= max`.
    pub(crate) bounds_ok: bool,
}

/// A value that was accepted, with where it was written.
struct At<T> {
    value: T,
    origin: Origin,
}

/// `None` when the key is null (no autoscaling) or not a mapping
/// (reported).
pub(super) fn parse_autoscale(
    node: &Node,
    key: &Origin,
    path: &str,
    ctx: &mut Ctx<'_>,
) -> Option<(Autoscale, AutoscaleMeta)> {
    if is_null(node) {
        return None;
    }
    let entries = ctx.map(node, path)?;
    let mut a = Autoscale {
        min: 0,
        max: 0,
        interval: DEFAULT_AUTOSCALE_INTERVAL,
        metrics: Vec::new(),
        windows: Vec::new(),
        behavior: AutoscaleBehavior::default(),
        fallback: None,
        dry_run: false,
    };
    let (mut min, mut max) = (None, None);
    let (mut min_seen, mut max_seen) = (false, false);
    let mut metrics = Vec::new();
    let mut windows = Vec::new();
    let mut fallback = None;
    for e in entries {
        let kpath = join(path, &e.key);
        let n = &e.value;
        match e.key.as_str() {
            "min" => {
                let got = ctx.u32(n, &kpath, SCALE_LIMIT);
                min_seen |= !matches!(got, Got::Null);
                min = at(n, got);
            }
            "max" => {
                let got = ctx.u32(n, &kpath, SCALE_LIMIT);
                max_seen |= !matches!(got, Got::Null);
                match got {
                    Got::Val(0) => ctx.err(
                        &n.origin,
                        &kpath,
                        "must be at least 1 (for a process that never runs, use scale: 0 without autoscale)",
                    ),
                    got => max = at(n, got),
                }
            }
            "interval" => match ctx.duration(n, &kpath) {
                Got::Val(d) if d < MIN_INTERVAL => {
                    ctx.err(&n.origin, &kpath, "must be at least 1s")
                }
                got => set(&mut a.interval, got),
            },
            "metrics" => metrics = read_list(n, &kpath, ctx, read_metric),
            "windows" => windows = read_list(n, &kpath, ctx, read_window),
            "behavior" => read_behavior(n, &kpath, ctx, &mut a.behavior),
            "fallback" => fallback = at(n, ctx.u32(n, &kpath, SCALE_LIMIT)),
            "dry_run" => set(&mut a.dry_run, ctx.bool(n, &kpath)),
            _ => ctx.unknown_key(e, path, AUTOSCALE_KEYS, ""),
        }
    }
    for (given, k, example) in [(min_seen, "min", "min: 2"), (max_seen, "max", "max: 20")] {
        if !given {
            ctx.err(
                &node.origin,
                &join(path, k),
                format!("missing `{k}`: autoscale needs both bounds, e.g. {example}"),
            );
        }
    }
    let mut bounds_ok = false;
    if let (Some(lo), Some(hi)) = (&min, &max) {
        if lo.value > hi.value {
            ctx.err(
                &lo.origin,
                &join(path, "min"),
                format!("min {} is above max {}", lo.value, hi.value),
            );
        } else {
            bounds_ok = true;
            a.min = lo.value;
            a.max = hi.value;
        }
    }
    let default_timeout = a.interval.min(DEFAULT_METRIC_TIMEOUT);
    for m in metrics {
        if bounds_ok {
            check_rows(&m, &a, &format!("{path}.metrics[{}]", m.index), ctx);
        }
        a.metrics.push(AutoscaleMetric {
            source: m.source,
            target: m.target,
            timeout: m.timeout.unwrap_or(default_timeout),
        });
    }
    for w in windows {
        if bounds_ok {
            check_window_bounds(&w, &a, &format!("{path}.windows[{}]", w.index), ctx);
        }
        a.windows.push(w.window);
    }
    if let Some(f) = fallback {
        if bounds_ok && !(a.min..=a.max).contains(&f.value) {
            ctx.err(
                &f.origin,
                &join(path, "fallback"),
                format!(
                    "fallback {} is outside min..max ({} to {})",
                    f.value, a.min, a.max
                ),
            );
        } else {
            a.fallback = Some(f.value);
        }
    }
    let meta = AutoscaleMeta {
        key: key.clone(),
        max_origin: max.map_or_else(|| node.origin.clone(), |m| m.origin),
        bounds_ok,
    };
    Some((a, meta))
}

fn is_null(node: &Node) -> bool {
    matches!(&node.value, Value::Scalar { text, style: Style::Plain } if is_null_literal(text))
}

fn at<T>(node: &Node, got: Got<T>) -> Option<At<T>> {
    got.val().map(|value| At {
        value,
        origin: node.origin.clone(),
    })
}

/// A list of entries read by `item`; a null value is an empty list.
fn read_list<T>(
    node: &Node,
    path: &str,
    ctx: &mut Ctx<'_>,
    item: fn(&Node, &str, usize, &mut Ctx<'_>) -> Option<T>,
) -> Vec<T> {
    match &node.value {
        Value::Seq(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, n)| item(n, &format!("{path}[{i}]"), i, ctx))
            .collect(),
        _ if is_null(node) => Vec::new(),
        _ => {
            ctx.err(
                &node.origin,
                path,
                format!("expected a list, found {}", node.kind_name()),
            );
            Vec::new()
        }
    }
}

/// A string that may not use per-instance variables (not expanded here).
fn process_wide(node: &Node, path: &str, ctx: &mut Ctx<'_>, s: &str) -> bool {
    match instance_var_used(s) {
        Some(var) => {
            ctx.err(
                &node.origin,
                path,
                format!("`${{{var}}}` is per instance: the autoscaler samples once for the whole process"),
            );
            false
        }
        None => true,
    }
}

/// A non-empty, process-wide string.
fn required_text(node: &Node, path: &str, ctx: &mut Ctx<'_>) -> Option<String> {
    match ctx.string(node, path) {
        Got::Val(s) if !s.trim().is_empty() => process_wide(node, path, ctx, &s).then_some(s),
        Got::Val(_) | Got::Null => {
            ctx.err(&node.origin, path, "is empty");
            None
        }
        Got::Bad => None,
    }
}

/// A required value: null is an error ("is empty"), reported as `Bad`.
fn non_null<T>(
    node: &Node,
    path: &str,
    ctx: &mut Ctx<'_>,
    read: impl FnOnce(&mut Ctx<'_>) -> Got<T>,
) -> Got<T> {
    match read(ctx) {
        Got::Null => {
            ctx.err(&node.origin, path, "is empty");
            Got::Bad
        }
        got => got,
    }
}

/// "missing `key`, e.g. …" at the mapping.
fn missing(node: &Node, path: &str, key: &str, example: &str, ctx: &mut Ctx<'_>) {
    ctx.err(
        &node.origin,
        &join(path, key),
        format!("missing `{key}`, e.g. {example}"),
    );
}
